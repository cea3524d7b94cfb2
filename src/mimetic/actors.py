"""Actors: anything that maps observations to actions.

Experts, trained policies, the DAgger mixture and a human at a keyboard are all actors, and rollout
code knows only this interface. Actors are batched: `act(obs)` returns actions of shape
(num_envs, act_dim), and `obs` is what the environments observe, batched:

- a float32 array (num_envs, obs_dim) when the environment's observation is a plain vector (a gymnasium
  Box), so an actor written for arrays keeps working on state-only tasks;
- a dict key -> batched array (num_envs, ...) when the observation is a gymnasium Dict (keys as in
  `mimetic.features`: `observation.state` float32 (num_envs, d), `observation.images.<camera>` uint8
  (num_envs, H, W, 3), and `privileged.state`, the full state a scripted expert reads where the
  recorded state is reduced; it is never recorded).

`mimetic.features.state_of(obs)` / `expert_state(obs)` read the state from either form and
`batch_size(obs)` counts the environments of either form.

`reset(num_envs, seeds)` starts new episodes in every environment (it clears histories and queued
action chunks); `seeds` are the episodes' seeds (rollout passes them; None when unknown), so an
actor that samples can draw episode i's randomness from a generator seeded by seeds[i], and an
episode acts the same whatever batch it runs in and whatever ran before.
"""

from __future__ import annotations

import inspect
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from mimetic.errors import MimeticError
from mimetic.features import Observation, expert_state


class Actor(Protocol):
    def reset(self, num_envs: int = 1, seeds: Sequence[int] | None = None) -> None: ...

    def act(self, obs: np.ndarray | Observation) -> np.ndarray: ...


def batch_size(obs: np.ndarray | Observation) -> int:
    """How many environments a batch of observations (an array or a dict of batched arrays) covers."""
    if isinstance(obs, Mapping):
        return len(next(iter(obs.values()))) if obs else 0
    return len(obs)


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
    """A stateless actor from a function of one state vector (e.g. a scripted expert).

    The function gets `expert_state(obs)` row by row: the full state (`privileged.state`) where the
    environment passes one, else `observation.state` (or the plain observation vector)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], act_dim: int):
        self.fn = fn
        self.act_dim = act_dim

    def reset(self, num_envs: int = 1, seeds: Sequence[int] | None = None) -> None:
        pass

    def act(self, obs: np.ndarray | Observation) -> np.ndarray:
        states = expert_state(obs, getattr(self, "name", "the scripted expert"))
        return np.stack([np.asarray(self.fn(o), dtype=np.float32).reshape(self.act_dim) for o in states])


class RandomActor:
    """Uniformly random actions from a gymnasium Box action space (the 'random policy' baseline).

    Episode i draws from a generator seeded by (`seed`, its episode seed), default seeds 0..n-1.
    It ignores the observations (an array or a dict)."""

    def __init__(self, action_space, seed: int = 0):
        self.low = np.asarray(action_space.low, dtype=np.float32)
        self.high = np.asarray(action_space.high, dtype=np.float32)
        self.seed = seed
        self.reset(1)

    def reset(self, num_envs: int = 1, seeds: Sequence[int] | None = None) -> None:
        seeds = range(num_envs) if seeds is None else seeds
        self.rngs = [np.random.default_rng([self.seed, int(s)]) for s in seeds]

    def act(self, obs: np.ndarray | Observation) -> np.ndarray:
        n = batch_size(obs)
        if n != len(self.rngs):
            self.reset(n)
        return np.stack([g.uniform(self.low, self.high) for g in self.rngs]).astype(np.float32)


NOISE_SALT = 0x444152  # separates the injected noise's stream from other uses of the same episode seed


class NoisyExpert:
    """Executes the expert's action plus Gaussian noise and records the clean action as the label (DART, Laskey et
    al. 2017): demonstrations that also show the expert bringing the system back from small deviations, the states
    a learned policy drifts into and clean demonstrations never visit.

    `noise` is the standard deviation as a fraction of each action dimension's half-range ((high - low) / 2);
    the executed action is clipped to [low, high]. Episode i draws its noise from a generator seeded by its episode
    seed. `last_extras` holds `label` (the expert's action) and `executed_action`; `relabel` makes the recorded
    episode's actions the labels."""

    def __init__(self, expert, noise: float, low: np.ndarray, high: np.ndarray):
        if not noise > 0:
            raise MimeticError(f"expert noise must be > 0, got {noise}")
        self.expert, self.noise = expert, float(noise)
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.scale = self.noise * (self.high - self.low) / 2
        self.last_extras: dict[str, np.ndarray] = {}
        self.reset(1)

    def reset(self, num_envs: int = 1, seeds: Sequence[int] | None = None) -> None:
        reset_actor(self.expert, num_envs, seeds)
        seeds = range(num_envs) if seeds is None else seeds
        self.rngs = [np.random.default_rng([NOISE_SALT, int(s)]) for s in seeds]

    def act(self, obs: np.ndarray | Observation) -> np.ndarray:
        label = np.asarray(self.expert.act(obs), np.float32)
        if len(label) != len(self.rngs):
            self.reset(len(label))
        eps = np.stack([g.standard_normal(label.shape[1]) for g in self.rngs]).astype(np.float32)
        executed = np.clip(label + eps * self.scale, self.low, self.high)
        self.last_extras = {"label": label, "executed_action": executed}
        return executed

    @staticmethod
    def relabel(ep):
        """The recorded episode with the expert's labels as its actions (what was executed stays as an extra)."""
        return ep.replace(actions=ep.extras["label"], extras={k: v for k, v in ep.extras.items() if k != "label"})
