"""`reach-bimodal`: `reach` with a round obstacle between the start and the goal.

Observation (8): position (2), velocity (2), goal (2), obstacle centre (2). Action (2): a force in
[-1, 1]^2. Dynamics, reward, success and time limit are those of `reach` (`ReachEnv`); touching
the obstacle (distance to its centre < `radius`) ends the episode as a failure.

The start lies below the obstacle and the goal above it (each jittered), so the straight line
crosses the obstacle. The scripted expert goes around it on the left or on the right, chosen at
random for every episode when the expert is reset (its own seeded Generator): the demonstrations
are bimodal given the observation, and the average of the two modes drives straight into the
obstacle. A policy must commit to one side to succeed.

It is a weak test of multimodality: the jittered start and goal, and the state once the agent has
moved, hint at the side, so a longer-trained MLP regressor half solves it (issue 10). `reach-fork`
(fixed start, the modes share their states until a late swerve) is the task where regression
cannot succeed; the benchmarks use that one.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from mimetic.envs.reach import (DEFAULT_CAMERA, IMAGE_SIZE, OBSTACLE_COLOUR, STATE_NAMES, ReachEnv,  # noqa: F401
                                expert_action as reach_action)
from mimetic.features import expert_state


class ReachBimodalEnv(ReachEnv):
    return_comparable = False  # a crash stops the per-step costs: it can earn more than a slow success
    return_note = "a collision ends an episode early, so a quick crash can earn more than a slow success"

    task = "reach-bimodal"
    state_names = STATE_NAMES + ["obstacle_x", "obstacle_y"]

    def __init__(self, max_steps: int = 100, tolerance: float = 0.05, radius: float = 0.25, cameras=None,
                 image_size=IMAGE_SIZE, state: str = "full"):
        super().__init__(max_steps=max_steps, tolerance=tolerance, cameras=cameras, image_size=image_size, state=state)
        self.radius = float(radius)
        self._obstacle = np.zeros(2)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._pos, self._vel, self._goal, self._obstacle]).astype(np.float32)

    def _still(self) -> list:
        return [(self._obstacle, self.radius, OBSTACLE_COLOUR)] + super()._still()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        gym.Env.reset(self, seed=seed)
        rng = self.np_random
        self._pos = np.array([0.0, -0.6]) + rng.uniform(-0.1, 0.1, size=2)
        self._goal = np.array([0.0, 0.6]) + rng.uniform(-0.1, 0.1, size=2)
        self._obstacle = (self._pos + self._goal) / 2 + rng.uniform(-0.03, 0.03, size=2)
        self._vel = np.zeros(2)
        self._t = 0
        return self._observation(new_episode=True), {"success": False}

    def step(self, action):
        obs, reward, success, truncated, info = super().step(action)
        if np.linalg.norm(self._pos - self._obstacle) < self.radius:  # collision: failure, episode over
            return obs, reward - 1.0, True, False, {"success": False, "collision": True}
        return obs, reward, success, truncated, info


class BimodalExpert:
    """Goes around the obstacle on a side drawn per episode (left/right, p = 1/2) at `reset`."""

    name = "expert:reach-bimodal"

    def __init__(self, radius: float = 0.25, margin: float = 0.2, seed: int = 0):
        self.offset = radius + margin
        self.rng = np.random.default_rng(seed)
        self.sides = np.ones(1)

    def reset(self, num_envs: int = 1, seeds=None) -> None:
        self.sides = self.rng.choice([-1.0, 1.0], size=num_envs)

    def act(self, obs) -> np.ndarray:
        obs = np.asarray(expert_state(obs, self.name), dtype=np.float64)
        if len(obs) != len(self.sides):
            self.reset(len(obs))
        out = np.empty((len(obs), 2), np.float32)
        for i, (o, side) in enumerate(zip(obs, self.sides)):
            pos, goal, obst = o[0:2], o[4:6], o[6:8]
            u = (goal - obst) / max(np.linalg.norm(goal - obst), 1e-9)  # towards the goal
            if np.dot(pos - obst, u) < 0:  # not past the obstacle yet: head for the waypoint beside it
                waypoint = obst + side * self.offset * np.array([-u[1], u[0]]) + 0.05 * u
                o = np.concatenate([o[:4], waypoint])
            out[i] = reach_action(o)
        return out


def make_env(max_steps: int = 100, tolerance: float = 0.05, radius: float = 0.25, cameras=None,
             image_size=IMAGE_SIZE, state: str = "full") -> ReachBimodalEnv:
    return ReachBimodalEnv(max_steps=max_steps, tolerance=tolerance, radius=radius, cameras=cameras,
                           image_size=image_size, state=state)


def make_expert(radius: float = 0.25, **_options) -> BimodalExpert:
    return BimodalExpert(radius=radius)
