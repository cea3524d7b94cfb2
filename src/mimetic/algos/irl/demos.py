"""Demonstrations in a tabular world: state and action index sequences, read from mimetic Episodes
(or a `Dataset`) or sampled directly from a tabular MDP; and `tabular_env`, the check that an
environment is a tabular MDP at all."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mimetic.errors import MimeticError
from mimetic.features import state_only_note
from mimetic.tabular import check_mdp, policy_at


@dataclass
class Demonstrations:
    """Demonstrations as tabular state and action index sequences, one pair of arrays per episode."""

    states: list[np.ndarray]
    actions: list[np.ndarray]
    n_states: int
    n_actions: int

    def __post_init__(self):
        if not self.states:
            raise MimeticError("demonstrations: no episodes")
        self.states = [np.asarray(s, dtype=np.int64) for s in self.states]
        self.actions = [np.asarray(a, dtype=np.int64) for a in self.actions]
        for i, (s, a) in enumerate(zip(self.states, self.actions)):
            if len(s) == 0 or len(s) != len(a):
                raise MimeticError(f"demonstrations: episode {i} has {len(s)} states and {len(a)} actions (need equal, > 0)")
            if s.min() < 0 or s.max() >= self.n_states or a.min() < 0 or a.max() >= self.n_actions:
                raise MimeticError(f"demonstrations: episode {i} has a state outside [0, {self.n_states}) or an action outside [0, {self.n_actions})")

    def __len__(self) -> int:
        return len(self.states)

    @property
    def horizon(self) -> int:
        """The longest episode."""
        return max(len(s) for s in self.states)

    def step_weights(self, discount: float = 1.0) -> np.ndarray:
        """(horizon,) discount^t times the fraction of episodes still running at step t."""
        lengths = np.array([len(s) for s in self.states])
        t = np.arange(self.horizon)
        return discount**t * (lengths[None, :] > t[:, None]).mean(axis=1)

    def state_visits(self, discount: float = 1.0) -> np.ndarray:
        """(S,) mean over episodes of sum_t discount^t [s_t = s]."""
        mu = np.zeros(self.n_states)
        for s in self.states:
            np.add.at(mu, s, discount ** np.arange(len(s)))
        return mu / len(self.states)

    def start_distribution(self) -> np.ndarray:
        return np.bincount([int(s[0]) for s in self.states], minlength=self.n_states) / len(self.states)

    def state_action_counts(self) -> np.ndarray:
        counts = np.zeros((self.n_states, self.n_actions))
        for s, a in zip(self.states, self.actions):
            np.add.at(counts, (s, a), 1.0)
        return counts


def demonstrations_from_episodes(episodes, world, where: str = "demonstrations") -> Demonstrations:
    """Convert mimetic Episodes (or a `Dataset`) collected in a tabular world to `Demonstrations`.

    `world` is anything with `state_index(obs, where)`, `transition_matrix`, and an `action_index`
    method or integer-valued float actions (an objectworld env or `Objectworld`).
    """
    from mimetic.data.dataset import Dataset

    if isinstance(episodes, Dataset):
        where = f"dataset {episodes.root}"
        note = state_only_note(episodes.observation_keys, "maxent-irl", where)
        if note:
            print(note)
        episodes = episodes.episodes()
    world = getattr(world, "world", world)
    mdp = check_mdp(world.transition_matrix)
    S, A = mdp.S, mdp.A
    states, actions = [], []
    for i, ep in enumerate(episodes):
        here = f"{where}, episode {i}"
        states.append(np.atleast_1d(world.state_index(ep.observations, where=here)))
        acts = np.asarray(ep.actions, dtype=np.float64)
        if acts.ndim != 2 or acts.shape[1] != 1:
            raise MimeticError(f"{here}: actions have shape {acts.shape}, expected (T, 1) discrete action indices")
        idx = np.rint(acts[:, 0]).astype(np.int64)
        bad = ~np.isclose(acts[:, 0], idx) | (idx < 0) | (idx >= A)
        if bad.any():
            raise MimeticError(f"{here}: action {float(acts[int(np.argmax(bad)), 0])} at step {int(np.argmax(bad))} is not an integer in [0, {A})")
        actions.append(idx)
    if not states:
        raise MimeticError(f"{where}: no episodes")
    return Demonstrations(states, actions, S, A)


def sample_demonstrations(
    P: np.ndarray, policy: np.ndarray, start_distribution: np.ndarray, horizon: int, n: int, rng: np.random.Generator
) -> Demonstrations:
    """Sample n episodes of `horizon` steps directly from the tabular MDP (fast; for tests and benchmarks)."""
    P = check_mdp(P)
    S, A = P.S, P.A
    policy = np.asarray(policy, dtype=np.float64)
    P_cdf = np.cumsum(P.dense, axis=2)
    s = (rng.random(n)[:, None] > np.cumsum(start_distribution)[None]).sum(axis=1).clip(0, S - 1)
    states, actions = np.empty((n, horizon), np.int64), np.empty((n, horizon), np.int64)
    for t in range(horizon):
        pol_cdf = np.cumsum(policy_at(policy, t)[s], axis=1)
        a = (rng.random(n)[:, None] > pol_cdf).sum(axis=1).clip(0, A - 1)
        states[:, t], actions[:, t] = s, a
        s = (rng.random(n)[:, None] > P_cdf[s, a]).sum(axis=1).clip(0, S - 1)
    return Demonstrations(list(states), list(actions), S, A)


TABULAR_ATTRS = ("transition_matrix", "features", "true_reward", "start_distribution", "horizon", "state_index")


def tabular_env(env_name: str, env_options: dict):
    """Build environment `env_name` and check that it exposes its tabular MDP (objectworld does)."""
    from mimetic.envs import make_env

    env = make_env(env_name, **env_options)
    env = getattr(env, "unwrapped", env)
    for attr in TABULAR_ATTRS:
        if not hasattr(env, attr):
            raise MimeticError(f"environment {env_name!r} is not a tabular MDP (it has no {attr!r}); MaxEnt IRL needs one, e.g. 'objectworld'")
    return env
