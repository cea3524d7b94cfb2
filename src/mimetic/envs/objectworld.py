"""`objectworld`: the Objectworld gridworld of Levine, Popovic & Koltun (2011), for inverse RL.

An N x N grid (`size`) with `n_objects` objects of `n_colours` colours at random cells, placed from
`layout_seed` (default n_objects: size**2 // 12; every colour appears at least once).

States: cell index `s = y * N + x` (x is the column, y the row; y grows downwards).
Actions (Discrete(5)): 0 stay, 1 up (y-1), 2 down (y+1), 3 left (x-1), 4 right (x+1); a move off
the grid stays put. With probability `wind` a uniformly random action (of the 5) is executed
instead of the chosen one.

Features, from the Euclidean distance d_c(s) of a cell to the nearest object of colour c, with
K = `feature_thresholds` (default 10; features do not depend on the grid size, so a reward learned on
one layout applies to another):
- "binary" (Levine's objectworld features): [d_c(s) <= k] for each colour c and k = 1..K (F = C*K);
- "binary+pairs" (default): the binary features plus their products across each pair of colours,
  [d_c <= k and d_c' <= k'] (F = C*K + C(C-1)/2 * K^2), so the classic reward below is linear in them;
- "distance": d_c(s) itself (F = C).

True reward `reward_rule`:
- "classic" (default, Levine et al.): +1 within distance 3 of colour 0 *and* within distance 2 of
  colour 1; -1 within distance 3 of colour 0 only; 0 elsewhere. It is an AND, so it is *not* linear in
  the "binary" features (linear MaxEnt IRL cannot represent it there); it is linear in "binary+pairs".
- "linear": +1 within distance 2 of colour 1, -1 within distance 1 of colour 0 (they add up).

Observation (float32): `observation="onehot"` (default) is the one-hot cell (N*N); `"features"` is
(x, y) as integer-valued floats followed by the F features (2 + F). `state_index(obs)` inverts both.

Episodes start in a uniformly random cell, never terminate, and are truncated after `horizon`
steps (default 2 * size). The reward of a step is the true reward of the cell the action was taken in,
so an episode's return is sum_{t<T} r(s_t).

Success (`info["success"]`, decided at the last step, False before): the episode's return, normalized
between the exact expected return of the uniformly random policy (0) and of the optimal policy (1)
from the same start cell, is >= `success_threshold` (default 0.5). On the default 10x10 world the
optimal policy succeeds ~97% of the time, the default expert ~75%, the random policy ~10%.

The tabular MDP is exposed on the environment (and on `env.world`): `transition_matrix` (S, A, S),
`features` (S, F), `true_reward` (S,), `start_distribution` (S,), `horizon`, `state_index(obs)`.

The expert (`make_expert`) is the optimal *soft* (MaxEnt) policy for true_reward / `temperature`
(default 0.5) from discounted soft value iteration (`gamma` 0.9): a stationary stochastic policy that
samples with its own Generator seeded by `seed`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import cached_property

import gymnasium as gym
import numpy as np

from mimetic.errors import MimeticError

ACTION_NAMES = ("stay", "up", "down", "left", "right")
MOVES = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.int64)  # (dx, dy)
N_ACTIONS = len(MOVES)
FEATURE_MODES = ("binary", "binary+pairs", "distance")
REWARD_RULES = ("classic", "linear")
OBSERVATIONS = ("onehot", "features")


@dataclass(frozen=True)
class ObjectworldConfig:
    """Every option of an objectworld. `layout_seed` places the objects (it is not the episode seed,
    which `reset(seed=...)` takes)."""

    size: int = 10
    n_objects: int | None = None  # None: size**2 // 12
    n_colours: int = 2
    wind: float = 0.3
    layout_seed: int = 0
    horizon: int | None = None  # None: 2 * size
    feature_mode: str = "binary+pairs"
    feature_thresholds: int = 10
    reward_rule: str = "classic"
    observation: str = "onehot"
    success_threshold: float = 0.5

    def validate(self) -> None:
        def bad(msg: str):
            raise MimeticError(f"objectworld option {msg}")

        if int(self.size) != self.size or self.size < 2:
            bad(f"size={self.size!r}: expected an integer >= 2")
        if int(self.n_colours) != self.n_colours or self.n_colours < 1:
            bad(f"n_colours={self.n_colours!r}: expected an integer >= 1")
        if self.n_objects is not None and (int(self.n_objects) != self.n_objects or not self.n_colours <= self.n_objects <= self.size**2):
            bad(f"n_objects={self.n_objects!r}: expected an integer in [n_colours={self.n_colours}, size**2={self.size ** 2}]")
        if not 0.0 <= self.wind <= 1.0:
            bad(f"wind={self.wind!r}: expected a probability in [0, 1]")
        if self.horizon is not None and (int(self.horizon) != self.horizon or self.horizon < 1):
            bad(f"horizon={self.horizon!r}: expected a positive integer or None")
        if self.feature_mode not in FEATURE_MODES:
            bad(f"feature_mode={self.feature_mode!r}: expected one of {FEATURE_MODES}")
        if int(self.feature_thresholds) != self.feature_thresholds or self.feature_thresholds < 1:
            bad(f"feature_thresholds={self.feature_thresholds!r}: expected an integer >= 1")
        if self.reward_rule not in REWARD_RULES:
            bad(f"reward_rule={self.reward_rule!r}: expected one of {REWARD_RULES}")
        if self.n_colours < 2:
            bad(f"n_colours={self.n_colours}: reward_rule {self.reward_rule!r} needs at least 2 colours")
        if self.observation not in OBSERVATIONS:
            bad(f"observation={self.observation!r}: expected one of {OBSERVATIONS}")
        if not 0.0 <= self.success_threshold <= 1.0:
            bad(f"success_threshold={self.success_threshold!r}: expected a number in [0, 1]")


class Objectworld:
    """The tabular MDP of one objectworld (layout, dynamics, features, true reward). Built lazily."""

    def __init__(self, config: ObjectworldConfig | None = None, **options):
        if config is None:
            try:
                config = ObjectworldConfig(**options)
            except TypeError as e:
                raise MimeticError(f"objectworld: bad options {options}: {e}") from None
        elif options:
            try:
                config = replace(config, **options)
            except TypeError as e:
                raise MimeticError(f"objectworld: bad options {options}: {e}") from None
        config.validate()
        self.config = config
        self.size = int(config.size)
        self.n_states = self.size * self.size
        self.n_actions = N_ACTIONS
        self.horizon = int(config.horizon) if config.horizon is not None else 2 * self.size
        self.n_objects = int(config.n_objects) if config.n_objects is not None else max(config.n_colours, self.n_states // 12)
        rng = np.random.default_rng(config.layout_seed)
        cells = rng.choice(self.n_states, size=self.n_objects, replace=False)
        colours = rng.integers(config.n_colours, size=self.n_objects)
        colours[: config.n_colours] = np.arange(config.n_colours)  # every colour appears at least once
        self.object_cells = cells.astype(np.int64)
        self.object_colours = colours.astype(np.int64)

    def changed(self, **options) -> "Objectworld":
        """The same world with some options changed (e.g. `wind=0.5`, or `layout_seed=1` for a new layout)."""
        return Objectworld(self.config, **options)

    @property
    def options(self) -> dict:
        return asdict(self.config)

    # ------------------------------------------------------------------ geometry
    def xy(self, s: np.ndarray | int) -> np.ndarray:
        s = np.asarray(s, dtype=np.int64)
        return np.stack([s % self.size, s // self.size], axis=-1)

    @cached_property
    def next_state(self) -> np.ndarray:
        """(S, A): the cell each action leads to when it is executed (no wind)."""
        xy = self.xy(np.arange(self.n_states))
        nxt = np.clip(xy[:, None, :] + MOVES[None], 0, self.size - 1)
        return nxt[..., 1] * self.size + nxt[..., 0]

    @cached_property
    def transition_matrix(self) -> np.ndarray:
        """(S, A, S) probabilities P[s, a, s']."""
        S, A = self.n_states, self.n_actions
        moved = np.zeros((S, A, S))
        moved[np.arange(S)[:, None], np.arange(A)[None, :], self.next_state] = 1.0
        wind = float(self.config.wind)
        return (1.0 - wind) * moved + wind * moved.mean(axis=1, keepdims=True)

    @cached_property
    def colour_distances(self) -> np.ndarray:
        """(S, C) Euclidean distance from each cell to the nearest object of each colour."""
        cells = self.xy(np.arange(self.n_states)).astype(np.float64)
        objs = self.xy(self.object_cells).astype(np.float64)
        d = np.linalg.norm(cells[:, None, :] - objs[None, :, :], axis=-1)  # (S, n_objects)
        out = np.full((self.n_states, self.config.n_colours), np.inf)
        for c in range(self.config.n_colours):
            mask = self.object_colours == c
            if mask.any():
                out[:, c] = d[:, mask].min(axis=1)
        return out

    @cached_property
    def features(self) -> np.ndarray:
        """(S, F) state features (see the module docstring)."""
        d = self.colour_distances
        if self.config.feature_mode == "distance":
            return d.copy()
        ks = np.arange(1, self.config.feature_thresholds + 1, dtype=np.float64)
        near = (d[:, :, None] <= ks[None, None, :] + 1e-9).astype(np.float64)  # (S, C, K)
        binary = near.reshape(self.n_states, -1)
        if self.config.feature_mode == "binary":
            return binary
        C = self.config.n_colours
        pairs = [(near[:, i, :, None] * near[:, j, None, :]).reshape(self.n_states, -1) for i in range(C) for j in range(i + 1, C)]
        return np.concatenate([binary] + pairs, axis=1)

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    @cached_property
    def true_reward(self) -> np.ndarray:
        """(S,) the true reward of each cell."""
        d = self.colour_distances
        r = np.zeros(self.n_states)
        if self.config.reward_rule == "classic":
            near0, near1 = d[:, 0] <= 3 + 1e-9, d[:, 1] <= 2 + 1e-9
            r[near0 & near1] = 1.0
            r[near0 & ~near1] = -1.0
        else:  # linear
            r += (d[:, 1] <= 2 + 1e-9).astype(float)
            r -= (d[:, 0] <= 1 + 1e-9).astype(float)
        return r

    @property
    def start_distribution(self) -> np.ndarray:
        return np.full(self.n_states, 1.0 / self.n_states)

    # ------------------------------------------------------------------ values used for success
    @cached_property
    def optimal_value(self) -> np.ndarray:
        """(S,) exact optimal expected return over `horizon` steps from each start cell."""
        from mimetic.tabular import optimal_policy, policy_value

        pol = optimal_policy(self.transition_matrix, self.true_reward, horizon=self.horizon)
        return policy_value(self.transition_matrix, self.true_reward, pol, self.horizon)

    @cached_property
    def random_value(self) -> np.ndarray:
        """(S,) exact expected return of the uniformly random policy from each start cell."""
        from mimetic.tabular import policy_value

        uniform = np.full((self.n_states, self.n_actions), 1.0 / self.n_actions)
        return policy_value(self.transition_matrix, self.true_reward, uniform, self.horizon)

    def normalized_return(self, ret: float, start: int) -> float:
        """(ret - random) / (optimal - random) from `start`; 1.0 where the two are equal."""
        lo, hi = float(self.random_value[start]), float(self.optimal_value[start])
        if hi - lo < 1e-9:
            return 1.0
        return (ret - lo) / (hi - lo)

    # ------------------------------------------------------------------ observations
    @property
    def obs_dim(self) -> int:
        return self.n_states if self.config.observation == "onehot" else 2 + self.n_features

    def observation(self, s: np.ndarray | int) -> np.ndarray:
        """Observation(s) of cell index(es) `s`, float32."""
        s = np.asarray(s, dtype=np.int64)
        if self.config.observation == "onehot":
            out = np.zeros(s.shape + (self.n_states,), dtype=np.float32)
            np.put_along_axis(out, s[..., None], 1.0, axis=-1)
            return out
        return np.concatenate([self.xy(s).astype(np.float32), self.features[s].astype(np.float32)], axis=-1)

    def state_index(self, obs: np.ndarray, where: str = "observation") -> np.ndarray | int:
        """Cell index of one observation (obs_dim,) or of a batch (n, obs_dim). Raises MimeticError on bad input."""
        obs = np.asarray(obs, dtype=np.float64)
        single = obs.ndim == 1
        batch = obs[None] if single else obs
        if batch.ndim != 2 or batch.shape[1] != self.obs_dim:
            raise MimeticError(
                f"{where}: observations have shape {obs.shape} but objectworld (size={self.size}, "
                f"observation={self.config.observation!r}) expects vectors of {self.obs_dim}"
            )
        if self.config.observation == "onehot":
            s = batch.argmax(axis=1)
            ok = np.isclose(batch[np.arange(len(batch)), s], 1.0) & np.isclose(np.abs(batch).sum(axis=1), 1.0)
            if not ok.all():
                raise MimeticError(f"{where}: row {int(np.argmin(ok))} is not a one-hot objectworld cell")
        else:
            xy = np.rint(batch[:, :2]).astype(np.int64)
            ok = np.all(np.isclose(batch[:, :2], xy), axis=1) & np.all((xy >= 0) & (xy < self.size), axis=1)
            if not ok.all():
                raise MimeticError(f"{where}: row {int(np.argmin(ok))} has (x, y)={batch[int(np.argmin(ok)), :2]} outside the {self.size}x{self.size} grid")
            s = xy[:, 1] * self.size + xy[:, 0]
        return int(s[0]) if single else s.astype(np.int64)

    def action_index(self, action, where: str = "action") -> np.ndarray | int:
        """Integer action(s) from an int, or float arrays shaped (1,) / (n, 1). Raises MimeticError if invalid."""
        a = np.asarray(action, dtype=np.float64)
        single = a.ndim == 0 or a.shape == (1,)
        flat = a.reshape(-1)
        idx = np.rint(flat).astype(np.int64)
        bad = ~np.isclose(flat, idx) | (idx < 0) | (idx >= self.n_actions)
        if bad.any():
            raise MimeticError(f"{where}: {float(flat[int(np.argmax(bad))])} is not an objectworld action (integers 0..{self.n_actions - 1})")
        return int(idx[0]) if single else idx


class ObjectworldEnv(gym.Env):
    """Gymnasium view of an `Objectworld` (see the module docstring)."""

    metadata = {"render_modes": [], "render_fps": 4}
    return_comparable = True
    return_note = "fixed-length episodes (the horizon)"

    def __init__(self, world: Objectworld):
        self.world = world
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        high = max(world.size - 1.0, float(world.features.max())) if world.config.observation == "features" else 1.0
        self.observation_space = gym.spaces.Box(0.0, high, shape=(world.obs_dim,), dtype=np.float32)
        self._s = 0
        self._start = 0
        self._t = 0
        self._ret = 0.0

    # the tabular MDP, for IRL and exact evaluation
    transition_matrix = property(lambda self: self.world.transition_matrix)
    features = property(lambda self: self.world.features)
    true_reward = property(lambda self: self.world.true_reward)
    start_distribution = property(lambda self: self.world.start_distribution)
    horizon = property(lambda self: self.world.horizon)

    def state_index(self, obs: np.ndarray, where: str = "observation"):
        return self.world.state_index(obs, where)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "state" in options:
            self._s = int(options["state"])
        else:
            self._s = int(self.np_random.integers(self.world.n_states))
        self._start, self._t, self._ret = self._s, 0, 0.0
        return self.world.observation(self._s), {"success": False, "state": self._s}

    def step(self, action):
        a = self.world.action_index(action)
        if not isinstance(a, int):
            raise MimeticError(f"objectworld step: expected one action, got shape {np.shape(action)}")
        if self.np_random.random() < self.world.config.wind:
            a = int(self.np_random.integers(N_ACTIONS))
        reward = float(self.world.true_reward[self._s])
        self._ret += reward
        self._s = int(self.world.next_state[self._s, a])
        self._t += 1
        truncated = self._t >= self.world.horizon
        success = bool(truncated and self.world.normalized_return(self._ret, self._start) >= self.world.config.success_threshold)
        return self.world.observation(self._s), reward, False, truncated, {"success": success, "state": self._s}


class SoftExpert:
    """Batched actor sampling from a tabular stochastic policy (S, A), with its own seeded Generator."""

    def __init__(self, world: Objectworld, policy: np.ndarray, seed: int = 0):
        self.world = world
        self.policy = np.asarray(policy, dtype=np.float64)
        self.cdf = np.cumsum(self.policy, axis=1)
        self.rng = np.random.default_rng(seed)

    def reset(self, num_envs: int = 1, seeds=None) -> None:
        pass  # stationary policy: nothing to clear

    def act(self, obs: np.ndarray) -> np.ndarray:
        s = self.world.state_index(np.atleast_2d(obs), where="objectworld expert")
        u = self.rng.random(len(s))[:, None]
        a = (u > self.cdf[s]).sum(axis=1).clip(0, N_ACTIONS - 1)
        return a.astype(np.float32)[:, None]


def make_env(**options) -> ObjectworldEnv:
    return ObjectworldEnv(Objectworld(**options))


def make_expert(gamma: float = 0.9, temperature: float = 0.5, seed: int = 0, **options) -> SoftExpert:
    """The soft-optimal policy for true_reward / temperature (discounted soft value iteration, `gamma`),
    sampling with a Generator seeded by `seed`. Other options are the world's (as for `make_env`)."""
    from mimetic.tabular import soft_value_iteration

    if not temperature > 0:
        raise MimeticError(f"objectworld expert: temperature={temperature!r} must be > 0")
    if not 0 <= gamma < 1:
        raise MimeticError(f"objectworld expert: gamma={gamma!r} must be in [0, 1)")
    world = Objectworld(**options)
    policy = soft_value_iteration(world.transition_matrix, world.true_reward / temperature, gamma=gamma)
    return SoftExpert(world, policy, seed=seed)
