"""One demonstration episode held in memory."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mimetic.errors import MimeticError


@dataclass
class Episode:
    """T steps of one episode.

    observations[t] is the observation the action actions[t] was taken in; rewards[t] and
    successes[t] are what the environment returned for that step (LeRobot's `next.reward`,
    `next.success`). The observation after the last action is not stored (LeRobot convention);
    `final_observation` keeps it where the collector had it (adversarial methods use it).
    `extras` holds additional per-step columns (e.g. who acted in DAgger), each of length T.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    successes: np.ndarray
    terminated: bool = False
    task: str = ""
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    final_observation: np.ndarray | None = None

    def __post_init__(self):
        self.observations = np.asarray(self.observations, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        if self.observations.ndim == 1:
            self.observations = self.observations[:, None]
        if self.actions.ndim == 1:
            self.actions = self.actions[:, None]
        self.rewards = np.asarray(self.rewards, dtype=np.float32).reshape(-1)
        self.successes = np.asarray(self.successes, dtype=bool).reshape(-1)
        self.extras = {k: np.asarray(v) for k, v in self.extras.items()}

    def __len__(self) -> int:
        return len(self.actions)

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
        for name, arr in [("observations", self.observations), ("rewards", self.rewards), ("successes", self.successes)]:
            if len(arr) != T:
                raise MimeticError(f"{where}: {name} has {len(arr)} steps but actions has {T}")
        for name, arr in self.extras.items():
            if len(arr) != T:
                raise MimeticError(f"{where}: extra column {name!r} has {len(arr)} steps but actions has {T}")
        for name, arr in [("observations", self.observations), ("actions", self.actions), ("rewards", self.rewards)]:
            bad = ~np.isfinite(arr)
            if bad.any():
                step = int(np.argwhere(bad)[0][0])
                raise MimeticError(f"{where}: {name} contains NaN or inf (first at step {step})")
