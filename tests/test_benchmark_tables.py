"""benchmarks/multitask.py's tables: the training-seed table averages each method's seeds over complete runs only,
and pairs each seed's one policy with that seed's own specialists; --gather builds a results file from others, each
row once, and never overwrites one. benchmarks/bc_heads_reach.py's table lists every training seed. benchmarks/aux_state_readout.py's linear readout and
per-position errors."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def multitask():
    spec = importlib.util.spec_from_file_location("bench_multitask", ROOT / "benchmarks" / "multitask.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(task, method, rate, kind="multi"):
    return {"suite": "S", "task": task, "instruction": task, "method": method, "kind": kind, "condition": "task",
            "success_rate": rate, "ci95": [0.0, 1.0], "episodes": 50, "steps": 10, "batch_size": 8, "train_s": 1.0}


def test_seed_table_means_complete_seeds_and_marks_the_target(multitask):
    rows = [row("a", "bc", 1.0), row("b", "bc", 0.8),              # seed 0: 0.900
            row("a", "bc+seed1", 0.9), row("b", "bc+seed1", 0.8),  # seed 1: 0.850
            row("a", "bc+seed2", 0.2),                               # seed 2: one task of two, left out of the mean
            row("a", "flow", 1.0), row("b", "flow", 1.0),            # one seed only: no seed row
            row("a", "bc+gmm", 0.0), row("b", "bc+gmm", 0.0)]        # a tag is another method, not a seed
    text = "\n".join(multitask.seed_table(rows, {multitask.key(r): r for r in rows}))
    lines = [l for l in text.splitlines() if l.startswith("| bc ")]
    assert len(lines) == 1, text
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[2:5] == ["0.900", "0.850", "0.200 (1/2 tasks)"]
    assert cells[5] == "**0.875** (2 seeds)" and cells[6] == "0.850–0.900" and cells[7] == "not met"
    assert "| flow " not in text and "bc+gmm" not in text


def test_seed_table_empty_without_a_second_seed(multitask):
    rows = [row("a", "bc", 1.0), row("a", "act", 0.5)]
    assert multitask.seed_table(rows, {multitask.key(r): r for r in rows}) == []


def test_specialists_by_seed_pairs_each_seed_with_its_own_specialists(multitask):
    def single(task, method, rate):
        return {**row(task, method, rate, kind="single"), "condition": "none"}
    rows = [row("a", "bc", 1.0), row("b", "bc", 0.8), single("a", "bc", 0.9), single("b", "bc", 0.9),  # 0.90 / 0.90
            row("a", "bc+seed1", 0.8), row("b", "bc+seed1", 0.8),                                   # multi 0.80
            single("a", "bc+seed1", 1.0), single("b", "bc+seed1", 0.9),                             # single 0.95
            row("a", "bc+seed2", 0.9), row("b", "bc+seed2", 0.9), single("a", "bc+seed2", 0.9)]     # incomplete
    text = "\n".join(multitask.seed_table(rows, {multitask.key(r): r for r in rows}))
    lines = [[c.strip() for c in l.strip("|").split("|")] for l in text.splitlines() if l.startswith("| bc | ")
             and l.count("|") == 7]
    assert lines == [["bc", "0", "0.900", "0.900", "+0.0", "met"], ["bc", "1", "0.950", "0.800", "-15.0", "not met"]], text


def test_bc_heads_reach_table_lists_every_training_seed_and_the_mean():
    spec = importlib.util.spec_from_file_location("bench_bc_heads_reach", ROOT / "benchmarks" / "bc_heads_reach.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = [{"candidate": c, "demos": n, "train_seed": s, "success_rate": r}
            for c, n, s, r in [("mse", 5, 1, 0.3), ("mse", 5, 0, 0.5), ("gmm", 5, 0, 0.1), ("mse", 10, 0, 0.9)]]
    lines = module.table(rows).splitlines()
    assert lines[0] == "| head | 5 demos (per training seed) | 10 demos (per training seed) |"
    assert lines[2] == "| mse | 0.50 / 0.30 (mean 0.40) | 0.90 |"  # seeds in order, a mean only over several
    assert lines[3] == "| gmm | 0.10 |  |" and len(lines) == 4


def test_gather_keeps_each_row_once_filters_and_renames(multitask, tmp_path, monkeypatch, capsys):
    import json

    def write(name, rows):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(tmp_path / name)

    expert = {**row("a", "expert", 1.0, kind="expert"), "condition": None}
    published = write("pub.jsonl", [expert, row("a", "bc", 0.5), {**row("a", "bc", 0.1), "condition": "none"},
                                    row("a", "flow", 0.7)])
    seed1 = write("s1.jsonl", [{**expert, "success_rate": 0.0}, row("a", "bc+seed1", 0.6)])
    rerun = write("rerun.jsonl", [row("a", "bc", 0.4), row("a", "flow", 0.9)])
    rows = multitask.gather([f"{published}:bc", seed1, f"{rerun}:bc=bc+rerun"], ["task"])
    got = [(r["method"], r["condition"], r["success_rate"], Path(r["gathered_from"]).name) for r in rows]
    assert got == [("expert", None, 1.0, "pub.jsonl"),  # the first expert row; seed1's repeat is dropped
                   ("bc", "task", 0.5, "pub.jsonl"),  # not the "none" condition, not flow (another method)
                   ("bc+seed1", "task", 0.6, "s1.jsonl"),
                   ("bc+rerun", "task", 0.4, "rerun.jsonl")]  # renamed; the rerun file's flow row left out
    # --out is never overwritten, and a missing file is named: one line, exit status 2 each
    out = tmp_path / "gathered.jsonl"

    def refused(*argv) -> str:
        monkeypatch.setattr("sys.argv", ["multitask.py", "--out", str(out), "--gather", *argv])
        with pytest.raises(SystemExit) as e:
            multitask.main()
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and len(err.splitlines()) == 1, err
        return err

    assert "no results file" in refused(str(tmp_path / "nope.jsonl")) and not out.exists()
    out.write_text("keep\n")
    assert "gathered.jsonl exists" in refused(seed1) and out.read_text() == "keep\n"


def test_aux_state_readout_recovers_a_linear_map_and_measures_each_position_in_mm():
    """benchmarks/aux_state_readout.py: the linear readout of frozen encodings and the per-position errors."""
    spec = importlib.util.spec_from_file_location("bench_readout", ROOT / "benchmarks" / "aux_state_readout.py")
    readout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(readout)
    import numpy as np

    rng = np.random.default_rng(0)
    enc = rng.normal(size=(400, 6))
    W = rng.normal(size=(6, 35))
    state = enc @ W + 0.3  # a state that is exactly linear in the encodings (with an offset)
    pred = readout.linear_readout(enc[:300], state[:300], enc[300:], ridge=1e-9)
    np.testing.assert_allclose(pred, state[300:], atol=1e-5)
    true = np.zeros((2, 35))
    guess = true.copy()
    guess[:, 0:3] = [0.003, 0.004, 0.0]   # the object (Meta-World state 4:7) off by 5 mm
    guess[:, 32:35] = [0.0, 0.0, 0.012]   # the goal (state 36:39) off by 12 mm
    mean = np.zeros(35)
    mean[32] = 0.1                        # the blind guess's goal 100 mm off, its object exact
    assert readout.errors_mm(guess, true, mean) == {"object_mm": 5.0, "object_blind_mm": 0.0, "goal_mm": 12.0,
                                                    "goal_blind_mm": 100.0}
