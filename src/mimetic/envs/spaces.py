"""What size an environment's observations and actions are: the one place that reads gymnasium spaces.

Every command that checks a dataset or a policy against an environment (train, eval, dagger,
teleop, gail/airl, rollout) asks `env_sizes` / `sizes_of` instead of probing the spaces itself, so
discrete action spaces (`objectworld`: one integer per step, stored as a 1-d action) and Box
spaces are treated the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from mimetic.errors import MimeticError


@dataclass(frozen=True)
class EnvSizes:
    obs_dim: int  # flattened observation size
    act_dim: int  # flattened action size; 1 for a Discrete space (the action index)
    discrete: bool  # Discrete action space: actions are integers 0 .. n_actions - 1
    n_actions: int | None  # number of discrete actions (None for Box)
    low: np.ndarray | None  # Box action bounds (None for Discrete)
    high: np.ndarray | None
    fps: int  # control rate from the env's metadata (10 if it does not say)

    def require_continuous(self, who: str, env_name: str) -> None:
        """Raise a one-line error if the actions are discrete (methods that regress continuous actions)."""
        if self.discrete:
            raise MimeticError(f"{who}: environment {env_name!r} has discrete actions ({self.n_actions} choices); "
                               f"{who} needs continuous (Box) actions")

    def check_data(self, obs_dim: int, act_dim: int, what: str, env_name: str) -> None:
        """Raise a one-line error if `what` (a dataset or policy) was made for other sizes."""
        if (obs_dim, act_dim) != (self.obs_dim, self.act_dim):
            raise MimeticError(f"{what} has observations of size {obs_dim} and actions of size {act_dim}, "
                               f"but environment {env_name!r} has {self.obs_dim} and {self.act_dim}")


def sizes_of(env: gym.Env) -> EnvSizes:
    """The sizes of a built environment's spaces."""
    obs_space, act_space = env.observation_space, env.action_space
    obs_dim = int(np.prod(obs_space.shape)) if obs_space.shape else 1
    fps = int((getattr(env, "metadata", None) or {}).get("render_fps") or 10)
    if isinstance(act_space, gym.spaces.Discrete):
        return EnvSizes(obs_dim, 1, True, int(act_space.n), None, None, fps)
    if isinstance(act_space, gym.spaces.Box):
        low = np.asarray(act_space.low, dtype=np.float32).reshape(-1)
        high = np.asarray(act_space.high, dtype=np.float32).reshape(-1)
        return EnvSizes(obs_dim, int(np.prod(act_space.shape)), False, None, low, high, fps)
    raise MimeticError(f"unsupported action space {act_space}: mimetic handles Box and Discrete actions")


def env_sizes(name: str, env_options: dict | None = None) -> EnvSizes:
    """Build environment `name` once, read its sizes, close it."""
    from mimetic.envs import make_env

    env = make_env(name, **(env_options or {}))
    try:
        return sizes_of(env)
    finally:
        env.close()


def return_meaning(env: gym.Env) -> tuple[bool, str]:
    """Whether the mean return compares policies on `env`, and a short note saying why (for tables).

    A return compares policies when episodes run a fixed length, or when ending early can only be
    earned by doing better (e.g. a reward <= 0 per step until success). It does not when a good
    outcome ends the episode early while rewards are positive (Meta-World ending at the first
    success: a faster success earns less), or when a failure ends it early (a crash that stops the
    costs). A task says which with the attributes `return_comparable` and `return_note`; a task
    that says nothing (a gymnasium environment) is taken to define its return as its objective.
    """
    task = getattr(env, "unwrapped", env)
    comparable = getattr(task, "return_comparable", None)
    if comparable is None:
        return True, "the environment's own return"
    return bool(comparable), str(getattr(task, "return_note", ""))
