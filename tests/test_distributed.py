"""Training under torch.distributed (issue 13): 2 CPU processes with gloo, on this machine.

- N=2 processes with a per-rank batch B follow the parameters of one process with batch 2B (same data order).
- `mimetic train --nproc 2` whose rank 1 is killed after a checkpoint stops with one line; `--resume` ends
  with exactly the weights of an uninterrupted 2-process run (dropout on: every rank's RNG is restored).
- What cannot work is one line, exit status 2: --nproc larger than the machine, a batch the ranks cannot share,
  methods that do not run distributed.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mimetic.algos import bc, flow
from mimetic.algos.run_dir import read_metrics
from mimetic.cli import main
from mimetic.data import Dataset
from mimetic.distributed import exit_rank
from mimetic.errors import MimeticError

SMALL = dict(hidden=[32, 32], batch_size=16, lr=3e-3, warmup_steps=10, val_fraction=0.0, device="cpu")
EXACT = dict(SMALL, steps=120, log_every=40, ckpt_every=120, obs_noise=0.1)  # deterministic head: N=1 and N=2 agree
RESUME = dict(SMALL, steps=400, log_every=100, ckpt_every=20, dropout=0.1)  # dropout draws from each rank's generator
# flow whose first steps train only the encoder side (regression warm-up): steps that leave parameters unused
WARMUP = dict(down_dims=[16, 32], horizon=8, batch_size=16, steps=20, regression_warmup=0.5, log_every=10,
              ckpt_every=20, val_fraction=0.0, device="cpu")
ALGOS = {"bc": bc, "flow": flow}


def _cli_args(cfg: dict) -> list[str]:
    out = []
    for k, v in cfg.items():
        out += [f"--{k.replace('_', '-')}", *map(str, v if isinstance(v, list) else [v])]
    return out


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    from mimetic.collect import collect

    root = tmp_path_factory.mktemp("dist") / "demos"
    collect("reach", root, 10, seed=0, progress=False)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, data: str, runs: list) -> None:
    """One rank of a 2-process job started by torch.multiprocessing (what torchrun would set in the environment)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ds = Dataset.load(data)
    for out, method, cfg in runs:
        ALGOS[method].train(ALGOS[method].Config(**cfg), ds, out, progress=False)
    exit_rank(0)  # as `python -m mimetic` ends a rank: no teardown that can abort a rank whose peer has exited


@pytest.fixture(scope="module")
def ddp_runs(demos, tmp_path_factory):
    """Runs of one 2-process job: EXACT (per-rank batch 8), RESUME, uninterrupted, and flow's WARMUP."""
    root = tmp_path_factory.mktemp("ddp")
    runs = [(str(root / "exact"), "bc", EXACT), (str(root / "resume"), "bc", RESUME), (str(root / "warmup"), "flow", WARMUP)]
    torch.multiprocessing.spawn(_rank, args=(2, _free_port(), str(demos), runs), nprocs=2)
    return root


def _weights(run) -> dict:
    return load_file(str(Path(run) / "model.safetensors"))


def test_two_processes_follow_one_process_with_the_global_batch(demos, ddp_runs, tmp_path):
    one = bc.train(bc.Config(**EXACT), Dataset.load(demos), tmp_path / "one", progress=False)
    two = _weights(ddp_runs / "exact")
    for k, v in one.state_dict().items():
        torch.testing.assert_close(two[k], v, rtol=1e-4, atol=1e-5, msg=lambda m: f"{k}: {m}")
    rows_one, rows_two = read_metrics(tmp_path / "one"), read_metrics(ddp_runs / "exact")
    assert [r["step"] for r in rows_two] == [40, 80, 120]
    for a, b in zip(rows_one, rows_two):  # rank 0 logs the loss over the whole global batch
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4) and b["lr"] == a["lr"]
    assert rows_two[-1]["train_loss"] < 0.5 * rows_two[0]["train_loss"]  # it learned something


def test_two_processes_train_through_a_regression_warmup(ddp_runs):
    """DDP must allow the steps in which part of the network is out of the loss (flow's regression warm-up, then the
    regression head): the job reaches its last step."""
    assert [r["step"] for r in read_metrics(ddp_runs / "warmup")] == [10, 20]
    assert any(k.startswith("aux_head.") for k in _weights(ddp_runs / "warmup"))


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds rank 1's process through /proc")
def test_a_killed_rank_stops_the_job_in_one_line_and_resume_continues_exactly(demos, ddp_runs, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "mimetic", "-q", "train", "bc", "--data", str(demos), "--out", str(run), "--nproc", "2",
           *_cli_args(RESUME)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (run / "checkpoint" / "state.json").exists() and p.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        rank1 = [c for c in _children(p.pid) if b"RANK=1" in Path(f"/proc/{c}/environ").read_bytes().split(b"\0")]
        assert len(rank1) == 1, "rank 1's process not found"
        os.kill(rank1[0], signal.SIGKILL)
        _, err = p.communicate(timeout=300)
    finally:
        p.kill()
    assert p.returncode == 2
    assert err.strip().splitlines() == [err.strip()] and "rank 1 was killed by SIGKILL" in err, err
    done = subprocess.run([sys.executable, "-m", "mimetic", "-q", "train", "bc", "--out", str(run), "--resume",
                           "--nproc", "2"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    ref, got = _weights(ddp_runs / "resume"), _weights(run)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    steps = [r["step"] for r in read_metrics(run)]
    assert steps == [r["step"] for r in read_metrics(ddp_runs / "resume")] == [100, 200, 300, 400]


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_nproc_and_batch_are_one_line(demos, ddp_runs, tmp_path, capsys):
    shutil.copytree(ddp_runs / "resume", tmp_path / "two")  # a run checkpointed by 2 processes: resumed by 2 only
    assert "written by 2 training process(es)" in _one_line_error(capsys, ["train", "bc", "--out", str(tmp_path / "two"),
                                                                        "--resume", "--steps", "500"])
    base = ["train", "bc", "--data", str(demos), "--out", str(tmp_path / "r"), "--device", "cpu"]
    cores = len(os.sched_getaffinity(0))
    assert f"this machine has {cores} CPU cores" in _one_line_error(capsys, [*base, "--nproc", str(cores + 1)])
    assert "must be divisible by 2" in _one_line_error(capsys, [*base, "--nproc", "2", "--batch-size", "15"])
    assert "at least 1" in _one_line_error(capsys, [*base, "--nproc", "0"])
    assert "--nproc trains bc, act, diffusion, flow" in _one_line_error(
        capsys, ["train", "gail", "--data", str(demos), "--out", str(tmp_path / "g"), "--nproc", "2"])
    assert not (tmp_path / "r").exists()


def test_under_torchrun_a_batch_the_ranks_cannot_share_and_single_process_loops_are_refused(demos, tmp_path,
                                                                                            monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(MimeticError, match="--batch-size 15 is the global batch.*divisible by 2"):
        bc.train(bc.Config(**dict(EXACT, batch_size=15)), Dataset.load(demos), tmp_path / "r", progress=False)
    assert "train gail runs in one process" in _one_line_error(
        capsys, ["train", "gail", "--data", str(demos), "--out", str(tmp_path / "g")])
    assert "dagger --expert keyboard: a human at this machine labels the rollouts, so it runs in one process" in \
        _one_line_error(capsys, ["dagger", "reach", "--out", str(tmp_path / "d"), "--expert", "keyboard"])
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_ranks_go_down_with_a_killed_launcher(demos, tmp_path):
    """SIGKILL on `--nproc`'s launcher (it cannot stop its ranks) must not leave them waiting in a collective."""
    cmd = [sys.executable, "-m", "mimetic", "-q", "train", "bc", "--data", str(demos), "--out", str(tmp_path / "run"),
           "--nproc", "2", *_cli_args(dict(SMALL, steps=100000, log_every=100000, ckpt_every=100000))]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, ranks = time.time() + 300, []
        while len(ranks) < 2 and p.poll() is None and time.time() < deadline:
            time.sleep(0.2)
            ranks = [c for c in _children(p.pid) if b"RANK=" in Path(f"/proc/{c}/environ").read_bytes()]
        assert len(ranks) == 2, "the two ranks did not start"
        time.sleep(2)  # let them reach training
    finally:
        p.kill()
        p.wait()
    deadline = time.time() + 60
    while any(Path(f"/proc/{r}").exists() and b"State:\tZ" not in Path(f"/proc/{r}/status").read_bytes()
              for r in ranks) and time.time() < deadline:
        time.sleep(0.2)
    alive = [r for r in ranks if Path(f"/proc/{r}").exists() and b"State:\tZ" not in Path(f"/proc/{r}/status").read_bytes()]
    for r in alive:
        os.kill(r, signal.SIGKILL)
    assert not alive, f"ranks {alive} outlived their launcher"


@pytest.mark.parametrize("abort_first", [True, False])
def test_the_launcher_names_the_rank_that_failed_not_one_aborted_by_its_loss(monkeypatch, capsys, tmp_path, abort_first):
    """A rank killed mid-collective can take a peer down with SIGABRT (gloo, from C++) in the same second: the
    launcher names the killed rank, whichever failure it saw first; a rank that only lost the others is never named."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
    import torch.distributed.launcher.api as launcher_api
    from mimetic import distributed

    def failure(rank: int, code: int) -> ProcessFailure:
        return ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=code, error_file=str(tmp_path / "none.json"))

    failures = [(0, failure(0, -signal.SIGABRT)), (1, failure(1, -signal.SIGKILL)), (2, failure(2, distributed.LOST_STATUS))]
    if not abort_first:
        failures = failures[::-1]
    for _, f in failures:
        f.timestamp = 0  # the same second, as the launcher records them

    def launched(config, entrypoint):
        def run(*args):
            raise ChildFailedError("mimetic", dict(failures))
        return run

    monkeypatch.setattr(launcher_api, "elastic_launch", launched)
    assert distributed.launch(["train"], 3) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "rank 1 was killed by SIGKILL" in err, err
