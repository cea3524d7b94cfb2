"""`metaworld/<task>-v3`: the 50 Meta-World v3 tasks, single task, goal observable.

39-d state, 4-d action in [-1, 1], 500-step limit, success = info["success"]. Each reset draws the
task variation (object and goal positions) from the reset seed, so a seed always gives the same
initial state. With `terminate_on_success=True` (the default) an episode ends at the first success:
the protocol counts success at any step, so this only saves time. The expert is Meta-World's own
scripted policy for the task.
"""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import numpy as np

from mimetic.actors import FunctionActor
from mimetic.errors import MimeticError

MAX_STEPS = 500


def _all_envs():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    return ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE


# The 50 Meta-World v3 task names, written out so that listing them (`mimetic envs`) does not import
# metaworld (a second); tests/test_envs.py checks this list against metaworld's own.
TASKS: tuple[str, ...] = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3",
    "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3",
    "door-open-v3", "door-unlock-v3", "drawer-close-v3", "drawer-open-v3", "faucet-close-v3", "faucet-open-v3",
    "hammer-v3", "hand-insert-v3", "handle-press-side-v3", "handle-press-v3", "handle-pull-side-v3",
    "handle-pull-v3", "lever-pull-v3", "peg-insert-side-v3", "peg-unplug-side-v3", "pick-out-of-hole-v3",
    "pick-place-v3", "pick-place-wall-v3", "plate-slide-back-side-v3", "plate-slide-back-v3",
    "plate-slide-side-v3", "plate-slide-v3", "push-back-v3", "push-v3", "push-wall-v3", "reach-v3",
    "reach-wall-v3", "shelf-place-v3", "soccer-v3", "stick-pull-v3", "stick-push-v3", "sweep-into-v3",
    "sweep-v3", "window-close-v3", "window-open-v3",
)


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise MimeticError(
            f"unknown Meta-World task {task!r}: expected one of the 50 v3 tasks, e.g. 'pick-place-v3'"
        )
    return task


class MetaWorldEnv(gym.Env):
    metadata = {"render_modes": [], "render_fps": 80}

    def __init__(self, task: str, max_steps: int = MAX_STEPS, terminate_on_success: bool = True):
        self.task = _check_task(task)
        self._env = _all_envs()[f"{task}-goal-observable"]()
        self._env._freeze_rand_vec = False  # draw a new variation at every reset ...
        self._env.seeded_rand_vec = True  # ... from the env's own seeded generator
        self.max_steps = min(int(max_steps), self._env.max_path_length)
        self.terminate_on_success = bool(terminate_on_success)
        # rewards are >= 0, so an episode that ends at its first success earns less the sooner it succeeds
        self.return_comparable = not self.terminate_on_success
        self.return_note = (f"fixed {self.max_steps}-step episodes" if not self.terminate_on_success else
                            "episodes end at the first success, so a faster success earns less; "
                            "terminate_on_success=false gives fixed-length episodes")
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(39,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # Meta-World ignores reset(seed=...); seed its generator from ours so seeds are reproducible.
        self._env.seed(int(self.np_random.integers(2**31 - 1)))
        obs, _ = self._env.reset()
        self._t = 0
        return obs.astype(np.float32), {"success": False}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float32).reshape(4), -1.0, 1.0)
        obs, reward, _, _, info = self._env.step(a)
        self._t += 1
        success = bool(info.get("success", 0.0))
        terminated = success and self.terminate_on_success
        truncated = self._t >= self.max_steps and not terminated
        return obs.astype(np.float32), float(reward), terminated, truncated, {"success": success}

    def close(self):
        self._env.close()


def _policy_class_name(task: str) -> str:
    base = task[: -len("-v3")] if task.endswith("-v3") else task
    camel = "".join(p.capitalize() for p in re.split(r"-", base))
    camel = camel.replace("PegInsertSide", "PegInsertionSide")
    return f"Sawyer{camel}V3Policy"


def make_env(task: str, max_steps: int = MAX_STEPS, terminate_on_success: bool = True) -> gym.Env:
    return MetaWorldEnv(task, max_steps=max_steps, terminate_on_success=terminate_on_success)


def make_expert(task: str, **_options) -> FunctionActor:
    import metaworld.policies as policies

    _check_task(task)
    policy = getattr(policies, _policy_class_name(task))()

    def act(obs: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.clip(policy.get_action(np.asarray(obs, dtype=np.float64)), -1.0, 1.0)

    return FunctionActor(act, act_dim=4)
