"""Actors: anything that maps observations to actions.

Experts, trained policies, the DAgger mixture and a human at a keyboard are all actors, and rollout
code knows only this interface. Actors are batched: `act` takes observations of shape
(num_envs, obs_dim) and returns actions of shape (num_envs, act_dim). `reset(num_envs, seeds)` starts
new episodes in every environment (it clears histories and queued action chunks); `seeds` are the
episodes' seeds (rollout passes them; None when unknown), so an actor that samples can draw episode
i's randomness from a generator seeded by seeds[i], and an episode acts the same whatever batch it
runs in and whatever ran before.
"""

from __future__ import annotations

import inspect
from typing import Callable, Protocol, Sequence

import numpy as np


class Actor(Protocol):
    def reset(self, num_envs: int = 1, seeds: Sequence[int] | None = None) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


def _takes_seeds(actor) -> bool:
    try:
        params = inspect.signature(actor.reset).parameters
    except (TypeError, ValueError):
        return False
    return "seeds" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def reset_actor(actor, num_envs: int, seeds: Sequence[int] | None = None) -> None:
    """`actor.reset(num_envs, seeds=seeds)`, or `actor.reset(num_envs)` for an actor whose reset takes no seeds
    (the older `reset(self, num_envs)` signature of user-written actors)."""
    if seeds is not None and _takes_seeds(actor):
        actor.reset(num_envs, seeds=seeds)
    else:
        actor.reset(num_envs)


class FunctionActor:
    """A stateless actor from a function of one observation (e.g. a scripted expert)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], act_dim: int):
        self.fn = fn
        self.act_dim = act_dim

    def reset(self, num_envs: int = 1, seeds: Sequence[int] | None = None) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        return np.stack([np.asarray(self.fn(o), dtype=np.float32).reshape(self.act_dim) for o in obs])


class RandomActor:
    """Uniformly random actions from a gymnasium Box action space (the 'random policy' baseline).

    Episode i draws from a generator seeded by (`seed`, its episode seed), default seeds 0..n-1."""

    def __init__(self, action_space, seed: int = 0):
        self.low = np.asarray(action_space.low, dtype=np.float32)
        self.high = np.asarray(action_space.high, dtype=np.float32)
        self.seed = seed
        self.reset(1)

    def reset(self, num_envs: int = 1, seeds: Sequence[int] | None = None) -> None:
        seeds = range(num_envs) if seeds is None else seeds
        self.rngs = [np.random.default_rng([self.seed, int(s)]) for s in seeds]

    def act(self, obs: np.ndarray) -> np.ndarray:
        if len(obs) != len(self.rngs):
            self.reset(len(obs))
        return np.stack([g.uniform(self.low, self.high) for g in self.rngs]).astype(np.float32)
