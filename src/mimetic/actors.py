"""Actors: anything that maps observations to actions.

Experts, trained policies, the DAgger mixture and a human at a keyboard are all actors, and rollout
code knows only this interface. Actors are batched: `act` takes observations of shape
(num_envs, obs_dim) and returns actions of shape (num_envs, act_dim). `reset(num_envs)` starts new
episodes in every environment (it clears histories and queued action chunks).
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np


class Actor(Protocol):
    def reset(self, num_envs: int = 1) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


class FunctionActor:
    """A stateless actor from a function of one observation (e.g. a scripted expert)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], act_dim: int):
        self.fn = fn
        self.act_dim = act_dim

    def reset(self, num_envs: int = 1) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        return np.stack([np.asarray(self.fn(o), dtype=np.float32).reshape(self.act_dim) for o in obs])


class RandomActor:
    """Uniformly random actions from a gymnasium Box action space (the 'random policy' baseline)."""

    def __init__(self, action_space, seed: int = 0):
        self.low = np.asarray(action_space.low, dtype=np.float32)
        self.high = np.asarray(action_space.high, dtype=np.float32)
        self.rng = np.random.default_rng(seed)

    def reset(self, num_envs: int = 1) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        n = len(obs)
        return self.rng.uniform(self.low, self.high, size=(n, len(self.low))).astype(np.float32)
