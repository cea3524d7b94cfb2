"""DAgger under torch.distributed (issue 13): 2 CPU processes with gloo, on this machine.

- A 2-process DAgger run (per-rank batch B) collects the same dataset, iteration by iteration, as one process with
  batch 2B, and trains the same learners to float tolerance; both ranks end every iteration with identical weights,
  and rank 1 writes nothing in the run folder (an audit hook records its file writes there).
- `mimetic dagger --nproc 2` runs the command as 2 processes of torch's launcher; rank 0 alone prints.
- What cannot run as several processes is one line, exit status 2: a human expert (--nproc or torchrun), --nproc
  larger than the machine, a batch the ranks cannot share.
"""

import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_distributed import _free_port, _one_line_error

from mimetic.algos import dagger
from mimetic.algos.dagger import DaggerConfig, read_log, run_dagger
from mimetic.data import Dataset
from mimetic.distributed import exit_rank

# a deterministic BC head: one process and two agree to float tolerance; val_fraction 0: every episode trains
LEARNER = dict(hidden=[32, 32], batch_size=16, lr=3e-3, warmup_steps=5, val_fraction=0.0, log_every=20, ckpt_every=40)
CFG = DaggerConfig(env="reach", env_options={"max_steps": 30}, policy_options=LEARNER, steps=40, iterations=2,
                   episodes_per_iter=3, initial_episodes=4, eval_episodes=2, num_envs=3, beta0=0.5, device="cpu")
WRITES = ("open", "os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.truncate", "shutil.rmtree", "os.link",
          "os.symlink", "shutil.copyfile")


def _rank(rank: int, world: int, port: int, run: str, probe: str) -> None:
    """One rank of a 2-process DAgger job started by torch.multiprocessing (the environment torchrun would set)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    written: list[str] = []
    if rank > 0:  # every file this rank creates, changes or removes under the run folder
        def audit(event, args):
            if event not in WRITES or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
                return
            if event == "open":
                mode, flags = args[1], args[2] if len(args) > 2 else 0
                if not (any(c in (mode or "") for c in "wax+") or (isinstance(flags, int) and
                                                                  flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))):
                    return
            paths = [os.path.abspath(os.fsdecode(a)) for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
            written.extend(f"{event} {p}" for p in paths if p.startswith(run))
        sys.addaudithook(audit)
    train = dagger._train_iteration

    def recorded(cfg, ds, out, iteration, progress):  # this rank's learner at the end of each iteration
        policies = train(cfg, ds, out, iteration, progress)
        save_file({k: v.contiguous() for k, v in policies[0].state_dict().items()},
                  f"{probe}/rank{rank}_it{iteration}.safetensors")
        return policies

    dagger._train_iteration = recorded
    rows = run_dagger(dataclasses.replace(CFG), run, progress=False)
    Path(f"{probe}/rank{rank}.json").write_text(json.dumps({"rows": len(rows), "written": written}))
    exit_rank(0)  # as `python -m mimetic` ends a rank: no teardown that can abort a rank whose peer has exited


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same DAgger run as 2 processes (per-rank batch 8) and as one process (batch 16)."""
    root = tmp_path_factory.mktemp("dagger_ddp")
    probe = root / "probe"
    probe.mkdir()
    torch.multiprocessing.spawn(_rank, args=(2, _free_port(), str(root / "two"), str(probe)), nprocs=2)
    run_dagger(dataclasses.replace(CFG), root / "one", progress=False)
    return root


def _by_iteration(run: Path) -> dict:
    ds = Dataset.load(run / "data")
    it, starts = ds.extra("iteration"), ds.episode_starts
    return {i: {"lengths": (ds.episode_ends - starts)[it[starts] == i], "actions": ds.actions[it == i],
                "actor": ds.extra("actor")[it == i]} for i in range(CFG.iterations + 1)}


def test_two_processes_collect_and_train_as_one_process_with_the_global_batch(runs):
    one, two = _by_iteration(runs / "one"), _by_iteration(runs / "two")
    for i in one:  # the same episodes, the same mixture draws, the same expert labels
        assert len(one[i]["lengths"]) == len(two[i]["lengths"]) == (CFG.initial_episodes if i == 0 else CFG.episodes_per_iter)
        np.testing.assert_array_equal(two[i]["lengths"], one[i]["lengths"])
        np.testing.assert_array_equal(two[i]["actor"], one[i]["actor"])
        if i == 0:  # the expert's demonstrations: bit for bit
            np.testing.assert_array_equal(two[i]["actions"], one[i]["actions"])
        else:  # labels of states the learners reached: those learners agree to float tolerance only
            np.testing.assert_allclose(two[i]["actions"], one[i]["actions"], rtol=0, atol=1e-4)
    for i in range(CFG.iterations + 1):
        ref = load_file(str(runs / "one" / "iters" / f"{i:03d}" / "model.safetensors"))
        rank0 = load_file(str(runs / "probe" / f"rank0_it{i}.safetensors"))
        rank1 = load_file(str(runs / "probe" / f"rank1_it{i}.safetensors"))
        got = load_file(str(runs / "two" / "iters" / f"{i:03d}" / "model.safetensors"))
        for k, v in ref.items():
            assert torch.equal(rank0[k], rank1[k]), f"iteration {i}: the ranks' {k} differ"
            torch.testing.assert_close(got[k], v, rtol=1e-4, atol=1e-5, msg=lambda m: f"iteration {i}, {k}: {m}")
    rows_one, rows_two = read_log(runs / "one"), read_log(runs / "two")
    keys = ("iteration", "dataset_episodes", "expert_labels", "new_labels", "rollout_expert_fraction", "train_steps")
    assert [{k: r.get(k) for k in keys} for r in rows_two] == [{k: r.get(k) for k in keys} for r in rows_one]
    assert [r["iteration"] for r in rows_two] == [0, 1, 2]
    for rank in (0, 1):  # every rank saw the whole run; rank 1 wrote nothing in it
        report = json.loads((runs / "probe" / f"rank{rank}.json").read_text())
        assert report["rows"] == CFG.iterations + 1
        assert report["written"] == [], report["written"][:5]


def test_what_cannot_run_as_several_processes_is_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "d"
    base = ["dagger", "reach", "--out", str(out), "--device", "cpu"]
    assert "--expert keyboard: a human at this machine labels the rollouts, so it runs in one process" in \
        _one_line_error(capsys, [*base, "--expert", "keyboard", "--nproc", "2"])
    cores = len(os.sched_getaffinity(0))
    assert f"this machine has {cores} CPU cores" in _one_line_error(capsys, [*base, "--nproc", str(cores + 1)])
    assert "--batch-size 15 is the global batch" in _one_line_error(
        capsys, [*base, "--nproc", "2", "--policy-option", "batch_size=15"])
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun starts rank 0: refused before a window opens or a rank joins
    monkeypatch.setenv("RANK", "0")
    assert "--expert gamepad: a human at this machine" in _one_line_error(capsys, [*base, "--expert", "gamepad"])
    assert "leave --nproc out under torchrun" in _one_line_error(capsys, [*base, "--nproc", "2"])
    assert not out.exists()


def test_dagger_nproc_runs_the_command_as_two_processes(tmp_path):
    """`mimetic dagger --nproc 2`: torch's launcher, as `train --nproc`; rank 0 alone prints and writes the run."""
    import subprocess

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mimetic", "-q", "dagger", "reach", "--out", str(out), "--nproc", "2", "--device", "cpu",
           "--steps", "20", "--iterations", "1", "--episodes-per-iter", "2", "--initial-episodes", "2",
           "--eval-episodes", "1", "--num-envs", "2", "--env-option", "max_steps=20",
           "--policy-option", "hidden=[16]", "--policy-option", "batch_size=8"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # a guard against a hang; ~30 s idle
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("deployed: iteration") == 1 and done.stdout.count("iteration 1: expert labels") == 1, done.stdout
    assert [r["iteration"] for r in read_log(out)] == [0, 1]
    assert (out / "model.safetensors").exists() and (out / "iters" / "001" / "model.safetensors").exists()
