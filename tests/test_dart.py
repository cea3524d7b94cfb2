"""DART demonstrations (`mimetic collect --expert-noise`): the noise is executed, the expert's own action is recorded,
the collection is repeatable, and a dataset never mixes noise levels (fast)."""

import json

import numpy as np
import pytest

from mimetic.actors import NoisyExpert
from mimetic.cli import main
from mimetic.collect import collect
from mimetic.data import Dataset
from mimetic.envs import make_expert
from mimetic.errors import MimeticError


def test_noisy_collection_records_the_experts_action_not_the_executed_one(tmp_path):
    clean = collect("reach", tmp_path / "clean", 6, seed=0, progress=False)
    noisy = collect("reach", tmp_path / "noisy", 6, seed=0, progress=False, expert_noise=0.3)
    assert noisy.info["mimetic"]["expert_noise"] == 0.3 and "expert_noise" not in clean.info["mimetic"]
    expert = make_expert("reach")
    for c, n in zip(clean.episodes(), noisy.episodes()):
        assert np.array_equal(c.observations[0], n.observations[0])  # the same seed: the same start
        expert.reset(len(n), None)
        assert np.allclose(expert.act(n.observations), n.actions, atol=1e-6)  # the label of each state visited
        executed = n.extras["executed_action"]
        assert executed.shape == n.actions.shape and np.abs(executed - n.actions).mean() > 0.05
        assert not np.array_equal(c.observations[1:len(n)], n.observations[1:len(c)][:len(n) - 1])
    again = collect("reach", tmp_path / "again", 6, seed=0, progress=False, expert_noise=0.3)
    assert all(np.array_equal(a.observations, b.observations) for a, b in zip(again.episodes(), noisy.episodes()))


def test_noise_is_the_fraction_of_each_half_range_and_clipped():
    class Zero:
        def reset(self, num_envs=1, seeds=None):
            pass

        def act(self, obs):
            return np.zeros((len(obs), 2), np.float32)

    actor = NoisyExpert(Zero(), 0.1, low=np.array([-1.0, -10.0]), high=np.array([1.0, 10.0]))
    actor.reset(2000, seeds=range(2000))
    a = actor.act(np.zeros((2000, 3), np.float32))
    assert np.allclose(a.std(0), [0.1, 1.0], rtol=0.1) and np.allclose(a.mean(0), 0, atol=0.1)
    assert np.array_equal(actor.last_extras["label"], np.zeros((2000, 2)))
    wide = NoisyExpert(Zero(), 5.0, low=np.array([-1.0, -1.0]), high=np.array([1.0, 1.0]))
    wide.reset(100, seeds=range(100))
    assert np.abs(wide.act(np.zeros((100, 3)))).max() == 1.0


def test_expert_noise_bad_input(tmp_path, capsys):
    collect("reach", tmp_path / "d", 2, seed=0, progress=False)
    with pytest.raises(MimeticError, match="collected with --expert-noise 0.0, not 0.2"):
        collect("reach", tmp_path / "d", 2, progress=False, expert_noise=0.2)
    assert Dataset.load(tmp_path / "d").num_episodes == 2  # nothing appended
    assert main(["collect", "reach", "--episodes", "2", "--out", str(tmp_path / "e"), "--expert-noise", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--expert-noise must be in [0, 10)" in err[0] and not (tmp_path / "e").exists()
