"""`reach-fork`: a multimodal task on which regression of the expert's actions, trained to fit, crashes.

A 2-D point mass (the dynamics of `reach`) starts at (0, -`start`) and must reach a goal at
(0, `start`) (both fixed by default; `jitter` > 0 draws them within +-jitter per coordinate); a
round obstacle of radius `radius` sits at the origin, across the straight line. Observation (6):
position (2), velocity (2), goal (2). Action (2): a force in [-1, 1]^2. Touching the obstacle ends
the episode as a failure; success is reaching the goal within `tolerance`; the time limit
`max_steps` is tight (the expert needs 37 steps, the limit is 45 by default).

The scripted expert flips a fair coin for every episode (a Generator seeded by its own seed and the
episode's seed, independent of the state), heads straight for the goal at full speed, and only when
it comes within `split_distance` of the obstacle's centre does it swerve, left or right as the coin
said. Until then both modes pass through exactly the same states, so the demonstrations give two
opposite actions in the same state at the split: their average keeps going straight into the
obstacle. The swerve is late (3 steps later the expert itself hits the obstacle, `late_swerve`), so
a policy that hesitates at the split or drifts off the axis slowly fails. A policy must commit to
one side at once: chunked or generative policies can; a deterministic regressor trained to fit the
two modes averages them and crashes (at 1000, 3000 and 30000 steps), although an under-trained one
(400 steps on 20 demos) can break the tie towards one side and succeed. With the fixed start a
deterministic policy plays the same trajectory in every episode: its evaluation episodes are one
trial per training seed, not independent trials. Parameters chosen on validation seeds:
benchmarks/reach_fork_design.py, benchmarks/results/expressive.md.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from mimetic.envs.reach import (DEFAULT_CAMERA, IMAGE_SIZE, OBSTACLE_COLOUR, ReachEnv,  # noqa: F401
                                expert_action as reach_action)
from mimetic.features import expert_state


class ReachForkEnv(ReachEnv):
    return_comparable = False  # a crash stops the per-step costs: it can earn more than a slow success
    return_note = "a collision ends an episode early, so a quick crash can earn more than a slow success"

    task = "reach-fork"

    def __init__(self, max_steps: int = 45, tolerance: float = 0.05, radius: float = 0.2,
                 start: float = 0.9, jitter: float = 0.0, cameras=None, image_size=IMAGE_SIZE, state: str = "full"):
        super().__init__(max_steps=max_steps, tolerance=tolerance, cameras=cameras, image_size=image_size, state=state)
        self.radius = float(radius)
        self.start = float(start)
        self.jitter = float(jitter)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        gym.Env.reset(self, seed=seed)
        rng = self.np_random
        self._pos = np.array([0.0, -self.start]) + rng.uniform(-self.jitter, self.jitter, size=2)
        self._goal = np.array([0.0, self.start]) + rng.uniform(-self.jitter, self.jitter, size=2)
        self._vel = np.zeros(2)
        self._t = 0
        return self._observation(new_episode=True), {"success": False}

    def _still(self) -> list:
        return [(np.zeros(2), self.radius, OBSTACLE_COLOUR)] + super()._still()

    def step(self, action):
        obs, reward, success, truncated, info = super().step(action)
        if np.linalg.norm(self._pos) < self.radius:  # collision: failure, episode over
            return obs, reward - 1.0, True, False, {"success": False, "collision": True}
        return obs, reward, success, truncated, info


class ForkExpert:
    """Straight at the goal; within `split_distance` of the obstacle, swerve to a side drawn per episode."""

    name = "expert:reach-fork"

    def __init__(self, radius: float = 0.2, margin: float = 0.15, split_distance: float = 0.65, seed: int = 0):
        self.offset = radius + margin
        self.split_distance = float(split_distance)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.sides = np.ones(1)
        self.split = np.zeros(1, bool)

    def reset(self, num_envs: int = 1, seeds=None) -> None:
        """Flip the coins: episode i's from a generator seeded by (seed, seeds[i]) when the episodes' seeds
        are given (the same side whatever batch the episode runs in), else from the expert's own stream."""
        if seeds is None:
            self.sides = self.rng.choice([-1.0, 1.0], size=num_envs)
        else:
            self.sides = np.array([np.random.default_rng([self.seed, int(s)]).choice([-1.0, 1.0]) for s in seeds])
        self.split = np.zeros(num_envs, bool)

    def act(self, obs) -> np.ndarray:
        obs = np.asarray(expert_state(obs, self.name), dtype=np.float64)
        if len(obs) != len(self.sides):
            self.reset(len(obs))
        return np.stack([reach_action(self._steer(i, o)) for i, o in enumerate(obs)]).astype(np.float32)

    def _steer(self, i: int, o: np.ndarray) -> np.ndarray:
        """Episode i's observation with the goal replaced by where the expert heads now."""
        if o[1] < 0 and (self.split[i] or np.linalg.norm(o[0:2]) <= self.split_distance):
            self.split[i] = True  # past the split, below the obstacle's centre: head for the side
            return np.concatenate([o[:4], [self.sides[i] * self.offset, 0.05]])
        return o


def late_swerve(delay: int, seed: int, env: ReachForkEnv | None = None, **expert_options) -> tuple[bool, int, float, int]:
    """The expert on episode `seed` swerving `delay` steps late (straight at the goal meanwhile): the design
    check that a policy must commit at once. Returns (success, length, smallest clearance, step of the split)."""
    env = env or ReachForkEnv()
    expert = ForkExpert(radius=env.radius, **expert_options)
    obs, _ = env.reset(seed=seed)
    expert.reset(1, seeds=[seed])
    t_split, clearance, done, info = None, np.inf, False, {}
    while not done:
        state = expert_state(obs)
        a = expert.act(state[None])[0]
        t_split = env._t if (t_split is None and expert.split[0]) else t_split
        if t_split is not None and env._t - t_split < delay:
            a = reach_action(state)  # straight at the goal
        obs, _, term, trunc, info = env.step(a)
        clearance = min(clearance, float(np.linalg.norm(env._pos)) - env.radius)
        done = term or trunc
    return bool(info["success"]), env._t, clearance, t_split


def make_env(max_steps: int = 45, tolerance: float = 0.05, radius: float = 0.2, start: float = 0.9,
             jitter: float = 0.0, cameras=None, image_size=IMAGE_SIZE, state: str = "full") -> ReachForkEnv:
    return ReachForkEnv(max_steps=max_steps, tolerance=tolerance, radius=radius, start=start, jitter=jitter,
                        cameras=cameras, image_size=image_size, state=state)


def make_expert(radius: float = 0.2, **_options) -> ForkExpert:
    return ForkExpert(radius=radius)
