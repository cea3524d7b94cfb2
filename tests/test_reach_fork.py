"""The multimodal task `reach-fork`: its design, MLP regression failing on it, and (slow) the
default ACT / diffusion / flow solving it.

The slow tests train each method with its `Config()` defaults (what `mimetic train METHOD` runs:
about 3 minutes per policy on an idle core, 10-13 on the shared 2-core machine) and evaluate 100
episodes; they run only with MIMETIC_SLOW_TESTS=1. benchmarks/expressive.py measures the same
thing with all variants (benchmarks/results/expressive.md).
"""

import os

import numpy as np
import pytest

from mimetic.actors import FunctionActor
from mimetic.algos import act as act_algo
from mimetic.algos import bc
from mimetic.algos import diffusion as diffusion_algo
from mimetic.algos import flow as flow_algo
from mimetic.data import Dataset
from mimetic.envs import make_env, make_expert
from mimetic.envs.reach import expert_action as straight_to_goal
from mimetic.envs.reach_fork import late_swerve
from mimetic.evaluate import VAL_SEED, evaluate
from mimetic.policies.base import PolicyActor
from mimetic.rollout import rollout

ENV = "reach-fork"
SLOW = os.environ.get("MIMETIC_SLOW_TESTS") == "1"


@pytest.fixture(scope="module")
def fork_demos(tmp_path_factory):
    from mimetic.collect import collect

    root = tmp_path_factory.mktemp("fork") / "demos"
    collect(ENV, root, 100, seed=0, progress=False)
    return root


def test_fork_modes_share_states_then_split():
    expert = make_expert(ENV)
    eps = rollout(ENV, expert, range(VAL_SEED, VAL_SEED + 100))
    assert all(ep.successes.any() for ep in eps)
    sides = [float(np.sign(ep.observations[12, 0])) for ep in eps]
    assert 30 <= sides.count(1.0) <= 70  # a fair coin per episode (p = 1/2: [30, 70] with prob > 0.9999)
    left, right = next(e for e, s in zip(eps, sides) if s < 0), next(e for e, s in zip(eps, sides) if s > 0)
    # the start is fixed and the choice independent of it: both modes pass through the same states ...
    shared = int(np.argmax(np.any(left.observations[:20] != right.observations[:20], axis=1)))
    assert shared >= 5 and np.array_equal(left.observations[:shared], right.observations[:shared])
    # ... and then take opposite actions in the same state: their average drives on into the obstacle
    assert np.allclose(left.actions[shared - 1, 0], -right.actions[shared - 1, 0]) and abs(left.actions[shared - 1, 0]) > 0.5
    straight = FunctionActor(straight_to_goal, act_dim=2)
    eps = rollout(ENV, straight, range(VAL_SEED, VAL_SEED + 20))
    assert all(ep.terminated and not ep.successes.any() and len(ep.observations) < 20 for ep in eps)


def test_fork_punishes_a_late_swerve():
    """The expert swerves close to the last moment: on time it always succeeds, four steps late never."""
    env = make_env(ENV)
    seeds = range(VAL_SEED, VAL_SEED + 40)
    assert all(late_swerve(0, s, env)[0] for s in seeds) and not any(late_swerve(4, s, env)[0] for s in seeds)


def test_fork_env_options():
    env = make_env(ENV, seed=3, radius=0.3, max_steps=7)
    assert env.observation_space.shape == (6,) and env.radius == 0.3
    obs, _ = env.reset(seed=4)
    assert np.allclose(obs[:2], [0.0, -0.9]) and np.allclose(obs[4:6], [0.0, 0.9])  # fixed start and goal by default
    done, t = False, 0
    while not done:
        _, _, term, trunc, info = env.step(np.array([1.0, 0.0]))  # sideways, never reaches the goal
        done, t = term or trunc, t + 1
    assert t == 7 and trunc and not info["success"]


def test_mlp_regression_fails_on_fork(fork_demos, tmp_path):
    # The start is fixed and a deterministic policy acts the same in every episode: its episodes are one
    # trial, not independent ones. So the test checks one trajectory per training seed (and that the
    # episodes are indeed identical), for two training seeds. It is not a claim about every budget: an
    # under-trained regressor (400 steps on 20 demos) can break the tie towards one side and succeed
    # (found in review, issue 10's note).
    for seed in (0, 1):
        policy = bc.train(bc.Config(hidden=[256, 256], steps=1000, log_every=1000, seed=seed), Dataset.load(fork_demos),
                          tmp_path / f"bc{seed}", progress=False)
        eps = rollout(ENV, PolicyActor(policy), range(VAL_SEED, VAL_SEED + 3))
        assert all(e.observations.shape == eps[0].observations.shape and np.allclose(e.observations, eps[0].observations, atol=1e-4)
                   for e in eps)  # one trajectory, repeated (up to batched float arithmetic)
        assert not eps[0].success, seed  # the average of the two swerves comes too late: it hits the obstacle


# Measured at the defaults on these 100 validation seeds (benchmarks/results/expressive.md, same demos, seed 0).
# Caveat (issue 10's review): ACT is deterministic at test time and the start is fixed, so its 100 episodes are
# one trial repeated and the Wilson bound below means something only for diffusion and flow (per-episode noise);
# ACT at its defaults solves it for training seed 0 (the one trained here) but not for seeds 1, 2, 3:
# ACT 1.00 [0.96, 1.00], diffusion 0.90 [0.83, 0.94] and flow 0.96 [0.90, 0.98] with the defaults before commit
# ef93fde; with today's (4 actions per chunk, a conditioning MLP, diffusion predicting the clean chunk) diffusion
# 1.00 [0.96, 1.00] and flow 0.91 [0.84, 0.95] (benchmarks/expressive.py --seeds val, 2026-11-28);
# deterministic BC 0.00 [0.00, 0.04] at 3000 and at 30000 steps. Required: Wilson lower bound >= 0.75 over 100
# episodes (>= 83 successes), which leaves room for another initial draw and is far above MLP regression.
@pytest.mark.skipif(not SLOW, reason="trains a chunk policy at its defaults for minutes; set MIMETIC_SLOW_TESTS=1")
@pytest.mark.parametrize("module", [act_algo, diffusion_algo, flow_algo], ids=["act", "diffusion", "flow"])
def test_default_chunk_policies_solve_fork(module, fork_demos, tmp_path):
    policy = module.train(module.Config(log_every=500), Dataset.load(fork_demos), tmp_path / "run", progress=False)
    res = evaluate(PolicyActor(policy), ENV, 100, seed=VAL_SEED)
    assert res.ci95[0] >= 0.75, res
