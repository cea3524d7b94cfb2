"""Rollout with typed observations and environment workers (mimetic.rollout, mimetic.workers, mimetic.actors).

The Dict-observation environment below stands in for a task with a camera: its observation carries
`observation.state` (reduced), `observation.images.top` (uint8) and `privileged.state` (the full
state a scripted expert reads), like `reach` with cameras=top, state=proprio.
"""

import functools
import os
import time

import gymnasium as gym
import numpy as np
import pytest

from mimetic.actors import FunctionActor, RandomActor, batch_size
from mimetic.envs.spaces import env_sizes, sizes_of
from mimetic.errors import MimeticError
from mimetic.evaluate import evaluate
from mimetic.features import PRIVILEGED_STATE, STATE
from mimetic.rollout import rollout

IMG = "observation.images.top"


class CameraReach(gym.Env):
    """2-D reach with a tiny 'camera': the goal is only in the image and in privileged.state."""

    metadata = {"render_fps": 7}
    feature_names = {STATE: ["x", "y", "vx", "vy"]}

    def __init__(self, max_steps=20, crash_seed=None, die_seed=None):
        self.max_steps, self.crash_seed, self.die_seed = max_steps, crash_seed, die_seed
        self.observation_space = gym.spaces.Dict({
            STATE: gym.spaces.Box(-2, 2, (4,), np.float32),
            IMG: gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
            PRIVILEGED_STATE: gym.spaces.Box(-2, 2, (6,), np.float32),
        })
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def _obs(self):
        img = np.zeros((8, 8, 3), np.uint8)
        gx, gy = ((self.goal + 1) * 3.5).astype(int)
        img[gy, gx] = 255
        img[..., 1] = self.t
        full = np.concatenate([self.pos, self.vel, self.goal]).astype(np.float32)
        return {STATE: full[:4], IMG: img, PRIVILEGED_STATE: full}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seed_ = seed
        self.pos, self.goal = self.np_random.uniform(-0.9, 0.9, 2), self.np_random.uniform(-0.9, 0.9, 2)
        self.vel, self.t = np.zeros(2), 0
        return self._obs(), {}

    def step(self, action):
        if self.seed_ == self.crash_seed and self.t == 3:
            raise ValueError("the simulator blew up")
        if self.seed_ == self.die_seed and self.t == 3:
            os._exit(3)
        a = np.clip(np.asarray(action, np.float64), -1, 1)
        self.vel = 0.8 * self.vel + 0.2 * a
        self.pos = np.clip(self.pos + 0.1 * self.vel, -1, 1)
        self.t += 1
        dist = float(np.linalg.norm(self.goal - self.pos))
        success = dist < 0.05
        return self._obs(), -dist, success, self.t >= self.max_steps and not success, {"success": success}


def expert(state):  # reads the full state: position, velocity, goal
    return np.clip(4.0 * (state[4:6] - state[0:2]) - 1.5 * state[2:4], -1, 1)


def make_camera_reach(**kw):
    return CameraReach(**kw)


def test_dict_rollout_records_uint8_images_and_never_privileged_keys():
    seen = []

    class Spy(FunctionActor):
        def act(self, obs):
            seen.append(obs)
            return super().act(obs)

    eps = rollout(make_camera_reach, Spy(expert, 2), [0, 1, 2], num_envs=2, workers=1)
    batch = seen[0]
    assert set(batch) == {STATE, IMG, PRIVILEGED_STATE} and batch_size(batch) == 2
    assert batch[IMG].dtype == np.uint8 and batch[IMG].shape == (2, 8, 8, 3)
    assert batch[STATE].dtype == np.float32 and batch[STATE].shape == (2, 4)
    for ep in eps:
        assert set(ep.obs) == {STATE, IMG}
        assert ep.obs[IMG].dtype == np.uint8 and ep.obs[IMG].shape == (len(ep), 8, 8, 3)
        assert np.array_equal(ep.obs[IMG][:, 0, 0, 1], np.arange(len(ep)))  # frame t is the observation at step t
        assert ep.observations.shape == (len(ep), 4)
        assert set(ep.final_obs) == {STATE, IMG} and ep.final_obs[IMG][0, 0, 1] == len(ep)
    # the expert read privileged.state (the goal is not in observation.state) and reaches the goal
    assert sum(ep.success for ep in eps) == 3


def test_function_actor_reads_privileged_state_and_random_actor_takes_dicts():
    obs = {STATE: np.zeros((2, 4), np.float32), PRIVILEGED_STATE: np.array([[0, 0, 0, 0, 0.1, 0], [0, 0, 0, 0, 0, -0.1]], np.float32)}
    a = FunctionActor(expert, 2).act(obs)
    assert np.allclose(a, [[0.4, 0], [0, -0.4]])
    assert np.allclose(FunctionActor(lambda s: s[:2], 2).act({STATE: np.ones((3, 4), np.float32)}), 1)
    r = RandomActor(gym.spaces.Box(-1, 1, (2,), np.float32))
    assert r.act(obs).shape == (2, 2)
    with pytest.raises(MimeticError, match="observation.state"):
        FunctionActor(expert, 2).act({IMG: np.zeros((1, 8, 8, 3), np.uint8)})


def test_array_actors_still_work_on_box_envs():
    seen = []

    class OldActor:  # a user's actor written for arrays, with the old reset signature
        def reset(self, num_envs):
            pass

        def act(self, obs):
            seen.append(obs)
            return np.clip(4.0 * (obs[:, 4:6] - obs[:, 0:2]) - 1.5 * obs[:, 2:4], -1, 1)

    eps = rollout("reach", OldActor(), [0, 1, 2], num_envs=3)
    assert isinstance(seen[0], np.ndarray) and seen[0].dtype == np.float32 and seen[0].shape == (3, 6)
    assert all(ep.success for ep in eps) and set(eps[0].obs) == {STATE}
    assert eps[0].final_observation.shape == (6,)


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.obs.keys() == y.obs.keys() and x.extras.keys() == y.extras.keys()
        for k in x.obs:
            assert x.obs[k].dtype == y.obs[k].dtype and np.array_equal(x.obs[k], y.obs[k])
        for k in x.final_obs:
            assert np.array_equal(x.final_obs[k], y.final_obs[k])
        for f in ("actions", "rewards", "successes"):
            assert np.array_equal(getattr(x, f), getattr(y, f))
        assert x.terminated == y.terminated


def test_workers_give_bit_identical_episodes():
    seeds = list(range(7))  # two batches of 4, the second partial; a stochastic actor
    actor = RandomActor(gym.spaces.Box(-1, 1, (2,), np.float32), seed=3)
    one = rollout("reach", actor, seeds, num_envs=4, workers=1)
    two = rollout("reach", actor, seeds, num_envs=4, workers=2)
    _assert_same(one, two)
    assert len({len(e) for e in one}) > 1  # episodes of several lengths: finished slots wait for the batch
    cams = dict(cameras="top", state="proprio")
    _assert_same(rollout("reach", actor, seeds, env_options=cams, num_envs=4, workers=1),
                 rollout("reach", actor, seeds, env_options=cams, num_envs=4, workers=2))
    # dict observations from a picklable factory, with the privileged-state expert
    factory = functools.partial(make_camera_reach, max_steps=15)
    _assert_same(rollout(factory, FunctionActor(expert, 2), seeds, num_envs=3, workers=1),
                 rollout(factory, FunctionActor(expert, 2), seeds, num_envs=3, workers=2))


def test_a_crashing_env_in_a_worker_is_a_one_line_error_naming_env_and_seed():
    t0 = time.monotonic()
    crash = functools.partial(make_camera_reach, crash_seed=12)
    with pytest.raises(MimeticError) as e:
        rollout(crash, FunctionActor(expert, 2), [10, 11, 12, 13], num_envs=4, workers=2)
    msg = str(e.value)
    assert "\n" not in msg and "seed 12" in msg and "make_camera_reach" in msg and "blew up" in msg
    die = functools.partial(make_camera_reach, die_seed=11)
    with pytest.raises(MimeticError, match=r"seed 11\).*died \(exit code 3\)"):
        rollout(die, FunctionActor(expert, 2), [10, 11, 12, 13], num_envs=4, workers=2)
    assert time.monotonic() - t0 < 20


def test_reach_with_a_camera_and_reduced_state():
    from mimetic.envs import make_expert

    opts = dict(cameras="top", state="proprio")
    eps = rollout("reach", make_expert("reach", **opts), range(4), env_options=opts)
    assert all(ep.success for ep in eps)  # the expert reads privileged.state: the goal is not in observation.state
    for ep in eps:
        assert set(ep.obs) == {STATE, IMG} and ep.obs[STATE].shape == (len(ep), 4)
        assert ep.obs[IMG].dtype == np.uint8 and ep.obs[IMG].shape[1:] == (64, 64, 3)
    sizes = env_sizes("reach", opts)
    assert sizes.obs_dim == 4 and sizes.features[IMG].shape == (64, 64, 3)
    with pytest.raises(MimeticError, match="observation.images.top 84x84x3 but environment 'reach' gives 64x64x3"):
        sizes.check_features({STATE: (4,), IMG: (84, 84, 3)}, "policy RUN", "reach")


def test_unpicklable_factory_with_workers_is_a_one_line_error_and_runs_in_process_by_default():
    with pytest.raises(MimeticError, match="cannot be pickled.*workers=1"):
        rollout(lambda: CameraReach(), FunctionActor(expert, 2), [0, 1], num_envs=2, workers=2)
    assert len(rollout(lambda: CameraReach(), FunctionActor(expert, 2), [0, 1], num_envs=2)) == 2


def test_evaluate_and_sizes_with_workers():
    res1 = evaluate(FunctionActor(expert, 2), "reach", 6, num_envs=3, workers=1)
    res2 = evaluate(FunctionActor(expert, 2), "reach", 6, num_envs=3, workers=2)
    assert res1.to_json() == res2.to_json() and res1.success_rate == 1.0
    sizes = sizes_of(CameraReach())
    assert sizes.obs_dim == 4 and sizes.fps == 7 and set(sizes.features) == {STATE, IMG}
    assert sizes.features[STATE].names == ("x", "y", "vx", "vy") and sizes.has_images
    sizes.check_features({STATE: (4,), IMG: (8, 8, 3), "action": (2,)}, "policy RUN", "cam")
    with pytest.raises(MimeticError, match=r"^policy RUN was made for observation.images.top 64x64x3 but environment 'cam' gives 8x8x3$"):
        sizes.check_features({IMG: (64, 64, 3)}, "policy RUN", "cam")
    with pytest.raises(MimeticError, match="observation.images.wrist.*does not give it"):
        sizes.check_features(["observation.images.wrist"], "dataset D", "cam")
    with pytest.raises(MimeticError, match="^dataset D was made for observation.state of size 5 but environment 'reach' gives size 6$"):
        env_sizes("reach").check_features({STATE: (5,)}, "dataset D", "reach")
    with pytest.raises(MimeticError, match="action of size 3 but environment 'reach' gives size 2"):
        env_sizes("reach").check_features({STATE: {"shape": [6]}, "action": {"shape": [3]}}, "dataset D", "reach")
