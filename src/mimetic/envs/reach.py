"""`reach`: a 2-D point mass must reach a random goal. Numpy only and fast.

Observation (6): position (2), velocity (2), goal (2). Action (2): a force in [-1, 1]^2.
Dynamics: v <- 0.8 v + 0.2 a ; p <- clip(p + 0.1 v, -1, 1). Reward: minus the distance to the goal.
Success (and termination): within `tolerance` of the goal. Time limit: `max_steps` (truncation).
The expert is a saturated PD controller.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from mimetic.actors import FunctionActor


class ReachEnv(gym.Env):
    metadata = {"render_modes": [], "render_fps": 10}
    return_comparable = True  # ending at success only stops the costs: a higher return is a faster approach
    return_note = "minus the distance to the goal per step until success"

    def __init__(self, max_steps: int = 100, tolerance: float = 0.05):
        self.max_steps = int(max_steps)
        self.tolerance = float(tolerance)
        self.observation_space = gym.spaces.Box(-2.0, 2.0, shape=(6,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._pos = np.zeros(2)
        self._vel = np.zeros(2)
        self._goal = np.zeros(2)
        self._t = 0

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._pos, self._vel, self._goal]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self._pos = rng.uniform(-0.9, 0.9, size=2)
        self._goal = rng.uniform(-0.9, 0.9, size=2)
        while np.linalg.norm(self._goal - self._pos) < 0.3:
            self._goal = rng.uniform(-0.9, 0.9, size=2)
        self._vel = np.zeros(2)
        self._t = 0
        return self._obs(), {"success": False}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        self._vel = 0.8 * self._vel + 0.2 * a
        self._pos = np.clip(self._pos + 0.1 * self._vel, -1.0, 1.0)
        self._t += 1
        dist = float(np.linalg.norm(self._goal - self._pos))
        success = dist < self.tolerance
        truncated = self._t >= self.max_steps and not success
        return self._obs(), -dist, success, truncated, {"success": success}


def expert_action(obs: np.ndarray) -> np.ndarray:
    pos, vel, goal = obs[0:2], obs[2:4], obs[4:6]
    return np.clip(4.0 * (goal - pos) - 1.5 * vel, -1.0, 1.0)


def make_env(max_steps: int = 100, tolerance: float = 0.05) -> gym.Env:
    return ReachEnv(max_steps=max_steps, tolerance=tolerance)


def make_expert(**_options) -> FunctionActor:
    return FunctionActor(expert_action, act_dim=2)
