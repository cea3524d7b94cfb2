import json

import numpy as np
import pytest
import torch

from mimetic.algos import bc
from mimetic.algos.run_dir import read_metrics
from mimetic.data import Dataset
from mimetic.evaluate import evaluate
from mimetic.policies.base import PolicyActor, load_policy


def test_metrics_log(reach_demos, tmp_path):
    # that every head learns reach: tests/test_learning.py
    ds = Dataset.load(reach_demos)
    bc.train(bc.Config(hidden=[64, 64], steps=300, log_every=100), ds, tmp_path / "run", progress=False)
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [100, 200, 300]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] and "val_loss" in rows[-1]


def test_chunks_and_history(reach_demos, tmp_path):
    ds = Dataset.load(reach_demos)
    bc.train(bc.Config(hidden=[256, 256], steps=1500, n_obs_steps=2, horizon=4, n_action_steps=2, log_every=1500), ds, tmp_path / "r", progress=False)
    policy = load_policy(tmp_path / "r")
    assert policy.config.horizon == 4 and policy.config.n_obs_steps == 2
    assert evaluate(PolicyActor(policy), "reach", 100).ci95[0] > 0.8


def test_checkpoint_holds_normalization(reach_demos, tmp_path):
    ds = Dataset.load(reach_demos)
    policy = bc.train(bc.Config(steps=50), ds, tmp_path / "run", progress=False)
    loaded = load_policy(tmp_path / "run")
    assert torch.allclose(loaded.obs_norm.shift, torch.as_tensor(ds.observations.mean(0), dtype=torch.float32), atol=0.1)
    obs = torch.as_tensor(ds.observations[:8, None])
    assert torch.allclose(policy.predict(obs), loaded.predict(obs))
    meta = json.loads((tmp_path / "run/config.json").read_text())
    assert meta["type"] == "mlp" and meta["config"]["env"] == "reach"


def test_resume_after_kill_matches_uninterrupted(reach_demos, tmp_path, monkeypatch):
    from mimetic.data import windows

    ds = Dataset.load(reach_demos)
    cfg = dict(hidden=[64, 64], steps=300, ckpt_every=100, log_every=50)
    ref = bc.train(bc.Config(**cfg), ds, tmp_path / "ref", progress=False)

    real_sample, calls = windows.WindowSampler.sample, {"n": 0}

    def dying_sample(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 251:
            raise KeyboardInterrupt  # killed between checkpoints: steps 201..250 are lost
        return real_sample(self, *a, **k)

    monkeypatch.setattr(windows.WindowSampler, "sample", dying_sample)
    with pytest.raises(KeyboardInterrupt):
        bc.train(bc.Config(**cfg), ds, tmp_path / "run", progress=False)
    monkeypatch.setattr(windows.WindowSampler, "sample", real_sample)
    assert [r["step"] for r in read_metrics(tmp_path / "run")][-1] == 250
    resumed = bc.train(bc.Config(**cfg), ds, tmp_path / "run", progress=False, resume=True)
    steps = [r["step"] for r in read_metrics(tmp_path / "run")]
    assert steps == [50, 100, 150, 200, 250, 300]  # no duplicates after the resume
    times = [r["time_s"] for r in read_metrics(tmp_path / "run")]
    assert times == sorted(times) and times[4] > times[3]  # training time so far: the resumed process goes on from it
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
