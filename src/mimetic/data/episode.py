"""One demonstration episode held in memory."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from mimetic.errors import MimeticError
from mimetic.features import STATE, is_image_key, recorded


def _obs_arrays(observations, where: str = "episode") -> dict[str, np.ndarray]:
    """Observations in dict form: key -> (T, ...) arrays; a bare array is `observation.state`.
    Vectors are float32 (T, d); images stay uint8 (T, H, W, 3)."""
    if observations is None:
        return {}
    if not isinstance(observations, Mapping):
        observations = {STATE: observations}
    out = {}
    for key, arr in recorded(observations).items():
        if is_image_key(key):
            arr = np.asarray(arr)
            if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
                raise MimeticError(f"{where}: {key!r} must be uint8 frames (T, H, W, 3), got {arr.dtype} {arr.shape}")
        else:
            arr = np.asarray(arr, dtype=np.float32)
            if arr.ndim == 1:
                arr = arr[:, None]
            elif arr.ndim > 2:
                arr = arr.reshape(len(arr), -1)
        out[key] = arr
    return out


class Episode:
    """T steps of one episode.

    `obs[key][t]` is observation feature `key` (see `mimetic.features`) when the action actions[t]
    was taken; `observations` is the `observation.state` feature alone (what state-based methods read).
    rewards[t] and successes[t] are what the environment returned for that step (LeRobot's
    `next.reward`, `next.success`). The observation after the last action is not stored (LeRobot
    convention); `final_obs` keeps it where the collector had it (adversarial methods use it).
    `extras` holds additional per-step columns (e.g. who acted in DAgger), each of length T.
    Observations may be given as a dict of features or, for state-only data, as one (T, d) array.
    """

    def __init__(self, observations, actions, rewards, successes, terminated: bool = False, task: str = "",
                 extras: dict | None = None, final_observation=None):
        self.obs = _obs_arrays(observations)
        self.actions = np.asarray(actions, dtype=np.float32)
        if self.actions.ndim == 1:
            self.actions = self.actions[:, None]
        self.rewards = np.asarray(rewards, dtype=np.float32).reshape(-1)
        self.successes = np.asarray(successes, dtype=bool).reshape(-1)
        self.terminated = bool(terminated)
        self.task = task
        self.extras = {k: np.asarray(v) for k, v in (extras or {}).items()}
        self.final_obs: dict[str, np.ndarray] | None = None
        if final_observation is not None:
            final = final_observation if isinstance(final_observation, Mapping) else {STATE: final_observation}
            self.final_obs = {k: v[0] for k, v in _obs_arrays({k: np.asarray(v)[None] for k, v in final.items()}).items()}

    def replace(self, **changes) -> "Episode":
        """A copy with some fields changed (observations may be a dict or a state array)."""
        fields = dict(observations=self.obs, actions=self.actions, rewards=self.rewards, successes=self.successes,
                      terminated=self.terminated, task=self.task, extras=self.extras, final_observation=self.final_obs)
        fields.update(changes)
        return Episode(**fields)

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def observations(self) -> np.ndarray:
        """The `observation.state` feature, (T, d) float32."""
        if STATE not in self.obs:
            raise MimeticError(f"this episode has no {STATE!r} (it has {sorted(self.obs)}): this method reads the state")
        return self.obs[STATE]

    @property
    def final_observation(self) -> np.ndarray | None:
        return None if self.final_obs is None or STATE not in self.final_obs else self.final_obs[STATE]

    @property
    def success(self) -> bool:
        """Success at any step (the Meta-World protocol)."""
        return bool(self.successes.any())

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())

    def validate(self, where: str = "episode") -> None:
        """Raise MimeticError if lengths disagree, the episode is empty, or numbers are not finite."""
        T = len(self.actions)
        if T == 0:
            raise MimeticError(f"{where}: empty episode (0 steps)")
        if not self.obs:
            raise MimeticError(f"{where}: no observations")
        columns = [(k, v) for k, v in self.obs.items()] + [("rewards", self.rewards), ("successes", self.successes)]
        for name, arr in columns:
            if len(arr) != T:
                raise MimeticError(f"{where}: {name} has {len(arr)} steps but actions has {T}")
        for name, arr in self.extras.items():
            if len(arr) != T:
                raise MimeticError(f"{where}: extra column {name!r} has {len(arr)} steps but actions has {T}")
        floats = [(k, v) for k, v in self.obs.items() if not is_image_key(k)] + [("actions", self.actions), ("rewards", self.rewards)]
        for name, arr in floats:
            bad = ~np.isfinite(arr)
            if bad.any():
                step = int(np.argwhere(bad)[0][0])
                raise MimeticError(f"{where}: {name} contains NaN or inf (first at step {step})")
