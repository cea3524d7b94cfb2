"""Datasets and checkpoints written by the release before typed features and cameras (tests/data/release-0.1)
still load, evaluate, take appends and train, and the checkpoints predict exactly what they predicted then."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mimetic.cli import main
from mimetic.data import Dataset
from mimetic.policies.base import load_policy

OLD = Path(__file__).parent / "data" / "release-0.1"


@pytest.mark.parametrize("method", ["bc", "act", "diffusion"])
def test_old_checkpoints_predict_as_before(method):
    expected = json.loads((OLD / "predictions.json").read_text())
    obs = np.asarray(expected["obs"], np.float32)
    policy = load_policy(OLD / f"run-{method}")
    assert list(policy.config.input_features) == ["observation.state"]
    x = torch.as_tensor(np.repeat(obs[:, None], policy.config.n_obs_steps, 1))
    np.testing.assert_allclose(policy.predict(x).numpy(), np.asarray(expected[method]), atol=1e-5)


def test_old_checkpoint_evaluates(tmp_path, capsys):
    code = main(["-q", "eval", str(OLD / "run-bc"), "--episodes", "4", "--json", str(tmp_path / "e.json")])
    assert code == 0 and json.loads((tmp_path / "e.json").read_text())["episodes"] == 4


def test_old_dataset_loads_appends_and_trains(tmp_path, capsys):
    ds = Dataset.load(OLD / "dataset")
    assert ds.num_episodes == 6 and ds.observation_keys == ["observation.state"] and ds.obs_dim == 6
    copy = tmp_path / "dataset"
    shutil.copytree(OLD / "dataset", copy)
    before = (copy / "data/chunk-000/file-000.parquet").read_bytes()
    assert main(["-q", "collect", "reach", "--episodes", "2", "--out", str(copy)]) == 0
    back = Dataset.load(copy)
    assert back.num_episodes == 8 and (copy / "data/chunk-000/file-000.parquet").read_bytes() == before
    np.testing.assert_array_equal(back.observations[: ds.num_frames], ds.observations)
    stats = json.loads((copy / "meta/stats.json").read_text())
    assert stats["observation.state"]["count"] == [back.num_frames]
    np.testing.assert_allclose(stats["observation.state"]["mean"], back.observations.mean(0), atol=1e-5)
    assert main(["-q", "train", "bc", "--data", str(copy), "--out", str(tmp_path / "run"), "--steps", "5"]) == 0
