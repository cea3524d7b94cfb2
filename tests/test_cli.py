"""The command line end to end: collect -> train -> eval, and every bad-input rule."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mimetic.cli import main


def run(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_collect_train_eval(tmp_path, capsys):
    code, out, _ = run(capsys, "collect", "reach", "--episodes", 20, "--out", tmp_path / "d")
    assert code == 0 and "20 episodes" in out
    code, out, _ = run(capsys, "collect", "reach", "--episodes", 5, "--out", tmp_path / "d")
    assert code == 0 and "25 episodes" in out  # appended with fresh seeds
    from mimetic.data import Dataset

    ds = Dataset.load(tmp_path / "d")
    assert ds.info["mimetic"]["next_seed"] == 25
    assert len({tuple(ep.observations[0]) for ep in ds.episodes()}) == 25  # no seed was reused
    code, out, _ = run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r", "--steps", 200,
                       "--hidden", 64, 64, "--head", "gmm")
    assert code == 0, out
    assert json.loads((tmp_path / "r/config.json").read_text())["config"]["head"] == "gmm"
    code, out, _ = run(capsys, "eval", tmp_path / "r", "--episodes", 20, "--json", tmp_path / "e.json")
    assert code == 0 and "on reach" in out  # the env defaults to the one the data came from
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["episodes"] == 20 and 0 <= res["ci95"][0] <= res["success_rate"] <= res["ci95"][1] <= 1
    assert {"mean_return", "success_rate"} <= set(res)
    code, out, _ = run(capsys, "eval", "--expert", "--env", "reach", "--episodes", 20, "--json", tmp_path / "x.json")
    assert code == 0 and json.loads((tmp_path / "x.json").read_text())["success_rate"] == 1.0
    # resume a finished run with more steps
    code, _, _ = run(capsys, "train", "bc", "--out", tmp_path / "r", "--resume", "--steps", 300)
    assert code == 0
    steps = [json.loads(l)["step"] for l in (tmp_path / "r/metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 300 and len(steps) == len(set(steps))


def test_only_success(tmp_path, capsys):
    code, out, _ = run(capsys, "collect", "reach", "--episodes", 6, "--out", tmp_path / "d", "--only-success",
                       "--env-option", "max_steps=15")
    from mimetic.data import Dataset

    ds = Dataset.load(tmp_path / "d")
    assert code == 0 and ds.num_episodes == 6 and ds.episode_success().all()
    assert ds.info["mimetic"]["next_seed"] > 6  # some short episodes failed and were dropped
    assert ds.env_options == {"max_steps": 15}


def one_line_error(code, err, *needles):
    assert code != 0
    lines = [l for l in err.strip().splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith("mimetic: error:"), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_bad_inputs(tmp_path, capsys):
    one_line_error(*run(capsys, "collect", "no-such-env", "--episodes", 2, "--out", tmp_path / "a")[::2], "no-such-env")
    assert not (tmp_path / "a").exists()
    one_line_error(*run(capsys, "train", "bc", "--data", tmp_path / "missing", "--out", tmp_path / "r")[::2], "missing", "not found")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk/meta").mkdir()
    (tmp_path / "junk/meta/info.json").write_text("{")
    one_line_error(*run(capsys, "train", "bc", "--data", tmp_path / "junk", "--out", tmp_path / "r")[::2], "info.json", "JSON")
    # a checkpoint trained on reach cannot drive a Meta-World arm
    assert run(capsys, "collect", "reach", "--episodes", 4, "--out", tmp_path / "d")[0] == 0
    assert run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r", "--steps", 20)[0] == 0
    one_line_error(*run(capsys, "eval", tmp_path / "r", "--env", "metaworld/reach-v3", "--episodes", 2)[::2], "size 6", "39")
    one_line_error(*run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r2", "--env", "metaworld/reach-v3")[::2], "size 6", "39")
    # training into an existing run without --resume is refused, and the run is untouched
    before = (tmp_path / "r/model.safetensors").read_bytes()
    one_line_error(*run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r")[::2], "--resume")
    assert (tmp_path / "r/model.safetensors").read_bytes() == before
    # collecting a different env into an existing dataset is refused
    one_line_error(*run(capsys, "collect", "metaworld/reach-v3", "--episodes", 1, "--out", tmp_path / "d")[::2], "reach")
    # a damaged checkpoint
    (tmp_path / "r/model.safetensors").write_bytes(b"xx")
    one_line_error(*run(capsys, "eval", tmp_path / "r", "--episodes", 2)[::2], "model.safetensors")


@pytest.mark.parametrize("option", [["--steps", -5], ["--log-every", 0], ["--ckpt-every", 0], ["--batch-size", 0],
                                    ["--val-fraction", 1.5], ["--lr-schedule", "linear"]])
def test_bad_training_option_values_are_one_line_errors(tmp_path, capsys, option):
    """Option values the training loop cannot run with are refused in one line, before anything is written
    (they used to train nothing and report success, or end in a ZeroDivisionError / RuntimeError traceback)."""
    assert run(capsys, "collect", "reach", "--episodes", 3, "--out", tmp_path / "d")[0] == 0
    one_line_error(*run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r", *option)[::2], option[0])
    assert not (tmp_path / "r").exists()


def test_bad_values_of_env_and_policy_options_are_one_line_errors(tmp_path, capsys):
    """--env-option max_steps=abc was a ValueError traceback; bc --horizon 0 trained a policy with no outputs."""
    one_line_error(*run(capsys, "collect", "reach", "--episodes", 2, "--out", tmp_path / "d",
                        "--env-option", "max_steps=abc")[::2], "bad options", "max_steps")
    assert run(capsys, "collect", "reach", "--episodes", 2, "--out", tmp_path / "d")[0] == 0
    for method, option, message in [("bc", ["--horizon", 0], "horizon must be >= 1"),
                                    ("act", ["--horizon", 0], "horizon must be >= 1"),
                                    ("act", ["--n-obs-steps", 0], "n_obs_steps and horizon"),
                                    ("bc", ["--hidden", 0], "hidden layer sizes"),
                                    ("bc", ["--head", "gmm", "--components", 0], "--components"),
                                    ("bc", ["--dropout", 1.5], "dropout must be in [0, 1)")]:
        one_line_error(*run(capsys, "train", method, "--data", tmp_path / "d", "--out", tmp_path / "r", "--steps", 5,
                            *option)[::2], message)
        assert not (tmp_path / "r").exists()


def test_eval_with_no_episodes_is_refused(capsys):
    one_line_error(*run(capsys, "eval", "--expert", "--env", "reach", "--episodes", 0)[::2], "--episodes")


def test_compare_refuses_a_dataset_of_another_task_before_training(tmp_path, capsys):
    assert run(capsys, "collect", "objectworld", "--episodes", 2, "--out", tmp_path / "d")[0] == 0
    one_line_error(*run(capsys, "compare", "reach", "--methods", "bc", "--data", tmp_path / "d", "--seeds", 0,
                        "--steps", 10, "--out", tmp_path / "c")[::2], "dataset", "'reach'")
    assert not (tmp_path / "c").exists()  # nothing was trained


def test_compare_evaluates_again_under_other_env_options(tmp_path, capsys):
    """A re-run of compare with other --env-option values used to reuse eval.json made under the old ones."""
    assert run(capsys, "collect", "reach", "--episodes", 3, "--out", tmp_path / "d")[0] == 0
    argv = ["compare", "reach", "--methods", "bc", "--data", tmp_path / "d", "--seeds", 0, "--episodes", 4,
            "--steps", 5, "--out", tmp_path / "c"]
    ev = tmp_path / "c/runs/bc-seed0/eval.json"

    def evaluated(*extra) -> bool:
        before = ev.stat().st_mtime_ns if ev.exists() else None
        assert run(capsys, *argv, *extra)[0] == 0
        return ev.stat().st_mtime_ns != before

    assert evaluated()
    assert not evaluated()  # the same command reuses it
    assert evaluated("--env-option", "tolerance=0.5")
    assert json.loads(ev.read_text())["env_options"] == {"tolerance": 0.5}
    assert not evaluated("--env-option", "tolerance=0.5")
    assert evaluated()  # back to the dataset's options
    saved = json.loads(ev.read_text())
    del saved["env_options"]  # an eval.json written before env options were recorded
    ev.write_text(json.dumps(saved))
    assert evaluated()

def test_resume_with_another_method_is_a_one_line_error(tmp_path, capsys):
    """`train act --out BC_RUN --resume` used to load the bc checkpoint into ACT (a state_dict traceback)."""
    assert run(capsys, "collect", "reach", "--episodes", 3, "--out", tmp_path / "d")[0] == 0
    assert run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r", "--steps", 5)[0] == 0
    one_line_error(*run(capsys, "train", "act", "--out", tmp_path / "r", "--resume")[::2], "holds a bc run, not act",
                   "mimetic train bc")
    # and a fresh run of another method does not write into it
    one_line_error(*run(capsys, "train", "flow", "--data", tmp_path / "d", "--out", tmp_path / "r", "--steps", 5)[::2],
                   "holds a bc run, not flow")


def test_resume_refuses_options_that_would_be_ignored(tmp_path, capsys):
    """`train bc --out RUN --resume --lr 0.5` used to resume with the saved lr without a word; the same values
    as the run's (re-running the original command with --resume) and --steps are fine."""
    assert run(capsys, "collect", "reach", "--episodes", 3, "--out", tmp_path / "d")[0] == 0
    assert run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r", "--steps", 5,
               "--hidden", 16, 16)[0] == 0
    one_line_error(*run(capsys, "train", "bc", "--out", tmp_path / "r", "--resume", "--lr", 0.5, "--no-sample")[::2],
                   "--lr 0.5 (the run has 0.001)", "only --steps")
    assert run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r", "--resume", "--steps", 8,
               "--hidden", 16, 16, "--no-sample")[0] == 0
    steps = [json.loads(l)["step"] for l in (tmp_path / "r/metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 8


def test_resume_on_another_dataset_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    """`train bc --out RUN --resume --data OTHER` used to resume silently on OTHER; the run's own dataset,
    given by any path that resolves to it, is fine."""
    assert run(capsys, "collect", "reach", "--episodes", 3, "--out", tmp_path / "d")[0] == 0
    assert run(capsys, "collect", "reach", "--episodes", 3, "--out", tmp_path / "other")[0] == 0
    assert run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r", "--steps", 5)[0] == 0
    code, _, err = run(capsys, "train", "bc", "--out", tmp_path / "r", "--resume", "--data", tmp_path / "other",
                       "--steps", 8)
    assert code == 2
    one_line_error(code, err, str((tmp_path / "d").resolve()), str((tmp_path / "other").resolve()))
    assert [json.loads(l)["step"] for l in (tmp_path / "r/metrics.jsonl").read_text().splitlines()][-1] == 5
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "train", "bc", "--out", "r", "--resume", "--data", "./d/", "--steps", 8)[0] == 0

def test_nan_in_demonstrations(tmp_path, capsys):
    assert run(capsys, "collect", "reach", "--episodes", 3, "--out", tmp_path / "d")[0] == 0
    f = tmp_path / "d/data/chunk-000/file-000.parquet"
    t = pq.read_table(f)
    act = np.array(t.column("action").to_pylist(), dtype=np.float32)
    act[7, 1] = np.nan
    t = t.set_column(t.column_names.index("action"), "action", pa.FixedSizeListArray.from_arrays(pa.array(act.reshape(-1)), 2))
    pq.write_table(t, f)
    one_line_error(*run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r")[::2], "NaN", "frame 7")
    assert not (tmp_path / "r").exists()


def test_empty_dataset(tmp_path, capsys):
    from mimetic.data.io import atomic_write_json

    assert run(capsys, "collect", "reach", "--episodes", 2, "--out", tmp_path / "d")[0] == 0
    info = json.loads((tmp_path / "d/meta/info.json").read_text())
    info["total_episodes"], info["total_frames"] = 0, 0
    atomic_write_json(tmp_path / "d/meta/info.json", info)
    one_line_error(*run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r")[::2], "no episodes")


def test_quickstart_refuses_existing_folder(tmp_path, capsys):
    (tmp_path / "q").mkdir()
    (tmp_path / "q/mine").write_text("x")
    one_line_error(*run(capsys, "quickstart", "--out", tmp_path / "q")[::2], "not empty")


def test_eval_on_a_discrete_action_env(tmp_path, capsys):
    """objectworld has Discrete(5) actions: train bc on its demos, then `mimetic eval RUN` runs
    (it used to crash with an IndexError in the size check of cli.py)."""
    assert run(capsys, "collect", "objectworld", "--episodes", 10, "--out", tmp_path / "d")[0] == 0
    code, out, err = run(capsys, "train", "bc", "--data", tmp_path / "d", "--out", tmp_path / "r", "--steps", 30)
    assert code == 0, err
    code, out, err = run(capsys, "eval", tmp_path / "r", "--episodes", 6, "--json", tmp_path / "e.json")
    assert code == 0, err
    assert "on objectworld" in out
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["episodes"] == 6 and len(res["lengths"]) == 6 and 0.0 <= res["success_rate"] <= 1.0


HEAVY = ("torch", "scipy", "metaworld", "ray")


@pytest.mark.parametrize("argv", [["--help"], ["envs"], ["train", "--help"], ["-q", "--threads", "2", "envs"]])
def test_parser_and_envs_listing_import_nothing_heavy(argv):
    """Building the parser, `--help`, `train --help` and `envs` import no torch, scipy, metaworld or
    method module (they used to take seconds)."""
    import subprocess
    import sys

    probe = ("import sys\nfrom mimetic.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print('IMPORTED:' + ' '.join(sorted(m for m in sys.modules if m.split('.')[0] in %r"
             " or m.startswith('mimetic.algos.'))), file=sys.stderr)" % (HEAVY,))
    r = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "the command printed nothing"
    assert r.stderr.strip().splitlines()[-1] == "IMPORTED:", r.stderr


def test_train_method_help_imports_that_method_only(capsys):
    from mimetic.cli import _train_method

    assert _train_method(["-q", "--threads", "2", "train", "act", "--help"]) == "act"
    assert _train_method(["train", "--help"]) == "--help"  # not a method: no method options are added
    assert _train_method(["eval", "run"]) is None
    with pytest.raises(SystemExit):
        main(["train", "bc", "--help"])
    out = capsys.readouterr().out
    assert "--hidden" in out and "--lr" in out  # bc's Config options are there


def test_eval_reports_return_only_where_it_compares_policies(tmp_path, capsys):
    """Meta-World episodes end at the first success (a faster success earns less): eval says the return
    does not compare there, and reports it with fixed-length episodes (terminate_on_success=false)."""
    env = "metaworld/reach-v3"
    code, out, err = run(capsys, "eval", "--expert", "--env", env, "--episodes", 2, "--num-envs", 2, "--json", tmp_path / "a.json")
    assert code == 0, err
    res = json.loads((tmp_path / "a.json").read_text())
    assert res["return_comparable"] is False and "first success" in res["return_note"]
    assert "return not comparable (episodes end at the first success" in out
    code, out, err = run(capsys, "eval", "--expert", "--env", env, "--episodes", 2, "--num-envs", 2, "--env-option",
                         "terminate_on_success=false", "--env-option", "max_steps=30", "--json", tmp_path / "b.json")
    res = json.loads((tmp_path / "b.json").read_text())
    assert code == 0 and res["return_comparable"] is True and res["lengths"] == [30, 30]
    assert f"return {res['mean_return']:.2f} (fixed 30-step episodes)" in out
    code, out, err = run(capsys, "eval", "--expert", "--env", "reach-fork", "--episodes", 2, "--json", tmp_path / "c.json")
    assert code == 0 and json.loads((tmp_path / "c.json").read_text())["return_comparable"] is False  # crashes end early
    code, out, err = run(capsys, "eval", "--expert", "--env", "reach", "--episodes", 2, "--json", tmp_path / "d.json")
    assert code == 0 and json.loads((tmp_path / "d.json").read_text())["return_comparable"] is True
    assert "return -" in out and "until success" in out
