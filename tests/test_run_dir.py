"""The run directory shared by every training loop: one checkpoint commit point, metrics without duplicates."""

from __future__ import annotations

import json
import os

import pytest
import torch

from mimetic.algos import bc
from mimetic.algos.run_dir import RunDir, load_state, read_metrics, save_state
from mimetic.data import Dataset
from mimetic.errors import MimeticError


def _die_on_commit(monkeypatch, nth: int):
    """Make the nth atomic rename onto a checkpoint's state.json raise, as a kill right after the
    tensors of that checkpoint were written would."""
    real, calls = os.replace, {"n": 0}

    def replace(src, dst, *a, **k):
        if os.path.basename(str(dst)) == "state.json":
            calls["n"] += 1
            if calls["n"] == nth:
                raise KeyboardInterrupt
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    return lambda: monkeypatch.setattr(os, "replace", real)


def test_kill_between_tensors_and_json_keeps_the_old_state(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint/state"
    save_state(path, {"step": 1, "w": torch.full((3,), 1.0), "inner": {"b": torch.zeros(2)}})
    restore = _die_on_commit(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        save_state(path, {"step": 2, "w": torch.full((3,), 2.0), "inner": {"b": torch.ones(2)}})
    restore()
    state = load_state(path)  # the old state, whole: its step and its tensors
    assert state["step"] == 1 and torch.equal(state["w"], torch.full((3,), 1.0)) and torch.equal(state["inner"]["b"], torch.zeros(2))
    save_state(path, {"step": 3, "w": torch.full((3,), 3.0), "inner": {"b": torch.ones(2)}})
    assert load_state(path)["step"] == 3 and torch.equal(load_state(path)["w"], torch.full((3,), 3.0))
    assert len(list(path.parent.glob("*.safetensors"))) == 1  # superseded tensor files are removed after the commit


def test_trainer_resumes_exactly_after_a_kill_inside_a_checkpoint_write(reach_demos, tmp_path, monkeypatch):
    ds = Dataset.load(reach_demos)
    cfg = dict(hidden=[32, 32], steps=300, ckpt_every=100, log_every=50)
    ref = bc.train(bc.Config(**cfg), ds, tmp_path / "ref", progress=False)
    restore = _die_on_commit(monkeypatch, 2)  # killed while committing the step-200 checkpoint
    with pytest.raises(KeyboardInterrupt):
        bc.train(bc.Config(**cfg), ds, tmp_path / "run", progress=False)
    restore()
    resumed = bc.train(bc.Config(**cfg), ds, tmp_path / "run", progress=False, resume=True)
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [50, 100, 150, 200, 250, 300]
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name  # the resumed run is the uninterrupted one


def test_run_dir_refuses_to_overwrite_and_truncates_metrics(tmp_path):
    rd = RunDir(tmp_path / "run", "test run")
    assert rd.start(resume=False) is None
    for s in (10, 20, 30):
        rd.append_metrics({"step": s, "loss": 1.0 / s})
    rd.save_checkpoint({"step": 20, "w": torch.ones(2)})
    with open(rd.metrics, "a") as f:
        f.write('{"step": 40, "lo')  # a line cut by a kill
    with pytest.raises(MimeticError, match="already holds a test run: pass --resume"):
        RunDir(tmp_path / "run", "test run").start(resume=False)
    state = RunDir(tmp_path / "run", "test run").start(resume=True)
    assert state["step"] == 20 and torch.equal(state["w"], torch.ones(2))
    assert [r["step"] for r in rd.read_metrics()] == [10, 20]
    with pytest.raises(ValueError, match="step"):
        rd.append_metrics({"loss": 0.0})
    # resuming a run killed before its first checkpoint starts it over
    assert RunDir(tmp_path / "fresh").start(resume=True) is None


def test_checkpoints_written_before_the_commit_point_still_load(tmp_path):
    from safetensors.torch import save_file

    from mimetic.algos.run_dir import _flatten

    tensors: dict = {}
    skeleton = _flatten({"step": 7, "w": torch.arange(3.0)}, "", tensors)
    (tmp_path / "checkpoint").mkdir()
    save_file(tensors, str(tmp_path / "checkpoint/state.safetensors"))  # the old layout: state.safetensors + state.json
    (tmp_path / "checkpoint/state.json").write_text(json.dumps(skeleton))
    state = RunDir(tmp_path).start(resume=True)
    assert state["step"] == 7 and torch.equal(state["w"], torch.arange(3.0))
    RunDir(tmp_path).save_checkpoint({"step": 8, "w": torch.zeros(3)})
    assert not (tmp_path / "checkpoint/state.safetensors").exists() and RunDir(tmp_path).load_checkpoint()["step"] == 8


def test_a_run_of_another_method_is_never_written_over(tmp_path):
    """A maxent-irl or DAgger run keeps no checkpoint: another method's fresh run used to write its train.json
    and metrics into that folder (leaving a mix); a run with a checkpoint was reported as the new method's."""
    irl = RunDir(tmp_path / "irl", "maxent-irl run", method="maxent-irl")
    irl.start(resume=False)
    irl.write_info({"method": "maxent-irl"})
    with pytest.raises(MimeticError, match="holds a maxent-irl run, not bc: choose another --out"):
        RunDir(tmp_path / "irl", "training run", method="bc").start(resume=False)
    assert RunDir(tmp_path / "irl", "maxent-irl run", method="maxent-irl").start(resume=False) is None  # a refit
    bc_run = RunDir(tmp_path / "bc", "training run", method="bc")
    bc_run.start(resume=False)
    bc_run.write_info({"method": "bc"})
    bc_run.save_checkpoint({"step": 1, "w": torch.ones(1)})
    with pytest.raises(MimeticError, match="holds a bc run, not maxent-irl"):
        RunDir(tmp_path / "bc", "maxent-irl run", method="maxent-irl").start(resume=False)
    with pytest.raises(MimeticError, match="already holds a bc run: pass --resume"):
        RunDir(tmp_path / "bc", "training run", method="bc").start(resume=False)
