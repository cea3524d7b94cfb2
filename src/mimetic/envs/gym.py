"""`gym/<id>`: any registered gymnasium environment.

The environment is wrapped so that `info["success"]` is always present (False unless the
environment reports its own). Scripted experts for some ids live in `EXPERTS`.
"""

from __future__ import annotations

import importlib

import gymnasium as gym

from mimetic.errors import MimeticError

# gymnasium id -> "module:function" building its scripted expert (imported lazily)
EXPERTS: dict[str, str] = {
    "Pendulum-v1": "mimetic.envs.pendulum:make_expert",
}


class SuccessInfo(gym.Wrapper):
    """Guarantees `info["success"]` at reset and at every step."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        info.setdefault("success", False)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["success"] = bool(info.get("success", info.get("is_success", False)))
        return obs, reward, terminated, truncated, info


def make_env(env_id: str, **kwargs) -> gym.Env:
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise MimeticError(f"gymnasium environment {env_id!r}: {e}") from None
    return SuccessInfo(env)


def make_expert(env_id: str, **options):
    if env_id not in EXPERTS:
        raise MimeticError(f"environment 'gym/{env_id}' has no scripted expert")
    module, fn = EXPERTS[env_id].split(":")
    return getattr(importlib.import_module(module), fn)(**options)
