"""`reach`: a 2-D point mass must reach a random goal. Numpy only and fast.

Observation (6): position (2), velocity (2), goal (2). Action (2): a force in [-1, 1]^2.
Dynamics: v <- 0.8 v + 0.2 a ; p <- clip(p + 0.1 v, -1, 1). Reward: minus the distance to the goal.
Success (and termination): within `tolerance` of the goal. Time limit: `max_steps` (truncation).
The expert is a saturated PD controller. `goal="x,y"` (or a 2-sequence) fixes the goal; the start is still drawn
from the reset seed, at least 0.3 away from it (the `reach-corners` suite fixes the goal at a corner).

Camera `top` (`cameras=top`, `image_size=64`): a numpy top-down view of the arena [-1, 1]^2 (x to the
right, y up), the goal as a green disk, the agent as a red disk drawn over it (reach-bimodal and
reach-fork: the obstacle as a grey disk). `state=proprio` records only the agent's position and
velocity (4) as `observation.state`, so the goal is seen only in the image; the full state goes to the
expert as `privileged.state`. `state=proprio+env` also records the rest (the goal, and reach-bimodal's obstacle)
as `observation.environment_state`.

Several targets (`targets=3`, `target=blue`): the arena holds `targets` disks of different colours (green, blue,
yellow, purple, in that order), drawn from the reset seed whichever is the goal, at least 0.45 apart; `target`
names the one to reach. Only the goal is in the state (the others are seen only in the image), so with
`state=proprio` a policy needs the image to know where the targets are and the instruction to know which one
(the `reach-colours` suite).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from mimetic.actors import FunctionActor
from mimetic.envs.render import CameraObs
from mimetic.errors import MimeticError

CAMERAS: tuple[str, ...] = ("top",)
DEFAULT_CAMERA = "top"
IMAGE_SIZE = 64
PROPRIO_DIMS = 4  # position, velocity
STATE_NAMES = ["x", "y", "vx", "vy", "goal_x", "goal_y"]

BACKGROUND = (235, 235, 235)
AGENT_COLOUR = (220, 30, 30)
TARGET_COLOURS = {"green": (30, 170, 30), "blue": (40, 90, 220), "yellow": (225, 185, 20), "purple": (150, 60, 190)}
GOAL_COLOUR = TARGET_COLOURS["green"]
TARGET_SPACING = 0.45  # several targets: the least distance between two of them
OBSTACLE_COLOUR = (90, 90, 90)
AGENT_RADIUS = 0.08
GOAL_RADIUS = 0.1


class TopCamera:
    """A top-down numpy camera over [-1, 1]^2: row 0 is y = 1, column 0 is x = -1 (pixel centres precomputed).

    The still part of a frame (background, obstacle, goal) is drawn once per episode by `set_scene`; each
    frame copies it and draws the agent inside the agent's bounding box only."""

    def __init__(self, size: int):
        self.size = size
        self.coords = -1.0 + (np.arange(size) + 0.5) * (2.0 / size)  # x of column j, and -y of row j
        self.scene = np.empty((size, size, 3), np.uint8)
        self.scene[:] = BACKGROUND
        self.episode = -1  # the episode whose still disks `scene` shows

    def disk(self, img: np.ndarray, centre, radius: float, colour) -> None:
        """Fill the pixels whose centres lie within `radius` of `centre` (only the disk's bounding box is computed)."""
        x, y, half = float(centre[0]), -float(centre[1]), self.size / 2.0  # y: rows go down
        c0, c1 = max(0, math.ceil((x - radius + 1.0) * half - 0.5)), min(self.size, math.floor((x + radius + 1.0) * half - 0.5) + 1)
        r0, r1 = max(0, math.ceil((y - radius + 1.0) * half - 0.5)), min(self.size, math.floor((y + radius + 1.0) * half - 0.5) + 1)
        if c0 >= c1 or r0 >= r1:
            return
        cols, rows = self.coords[c0:c1] - x, self.coords[r0:r1] - y
        inside = rows[:, None] ** 2 + cols[None, :] ** 2 <= radius * radius
        img[r0:r1, c0:c1][inside] = colour

    def set_scene(self, disks) -> None:
        """Draw the still disks ((centre, radius, colour), in order) on the background."""
        self.scene[:] = BACKGROUND
        for centre, radius, colour in disks:
            self.disk(self.scene, centre, radius, colour)

    def frame(self, agent) -> np.ndarray:
        img = self.scene.copy()
        self.disk(img, agent, AGENT_RADIUS, AGENT_COLOUR)
        return img


class ReachEnv(gym.Env):
    metadata = {"render_modes": [], "render_fps": 10}
    return_comparable = True  # ending at success only stops the costs: a higher return is a faster approach
    return_note = "minus the distance to the goal per step until success"

    task = "reach"
    state_names = STATE_NAMES

    def __init__(self, max_steps: int = 100, tolerance: float = 0.05, cameras=None, image_size=IMAGE_SIZE,
                 state: str = "full", goal=None, targets: int = 1, target: str = "green"):
        self.max_steps = int(max_steps)
        self.tolerance = float(tolerance)
        self.fixed_goal = parse_goal(goal)
        self.colours = parse_targets(targets, target)
        if len(self.colours) > 1 and self.fixed_goal is not None:
            raise ValueError("goal fixes the one target's place: with targets > 1 the targets are drawn, drop goal")
        self.target = str(target)
        self._others: list = []  # the targets that are not the goal: (centre, colour)
        self._cam = CameraObs(self.task, cameras, image_size, state, CAMERAS, PROPRIO_DIMS)
        self._views: dict[int, TopCamera] = {}  # image size -> camera
        self._episode = 0
        self._set_spaces(gym.spaces.Box(-2.0, 2.0, shape=(len(self.state_names),), dtype=np.float32))
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._pos = np.zeros(2)
        self._vel = np.zeros(2)
        self._goal = np.zeros(2)
        self._t = 0

    def _set_spaces(self, full_space) -> None:
        self.observation_space = self._cam.space(full_space)
        self.feature_names = self._cam.names(self.state_names)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._pos, self._vel, self._goal]).astype(np.float32)

    def _still(self) -> list:
        """The disks that do not move during an episode: (centre, radius, colour)."""
        return [(self._goal, GOAL_RADIUS, TARGET_COLOURS[self.target])] + [(c, GOAL_RADIUS, col) for c, col in self._others]

    def _observation(self, new_episode: bool = False):
        """The observation: the state vector, or the dict with the camera frame and/or the reduced state."""
        self._episode += new_episode  # the cameras redraw their still scene on their next frame
        return self._cam.observe(self._obs(), self.render_camera)

    def render_camera(self, camera: str = DEFAULT_CAMERA, size: int | None = None) -> np.ndarray:
        """The top-down frame of the current state (uint8 (size, size, 3); default size: image_size)."""
        if camera not in CAMERAS:
            raise MimeticError(f"{self.task}: unknown camera {camera!r}: valid cameras are {', '.join(CAMERAS)}")
        size = self._cam.size if size is None else int(size)
        view = self._views.get(size)
        if view is None:
            view = self._views[size] = TopCamera(size)
        if view.episode != self._episode:
            view.set_scene(self._still())
            view.episode = self._episode
        return view.frame(self._pos)

    def close(self):
        self._views.clear()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self._pos = rng.uniform(-0.9, 0.9, size=2)
        if len(self.colours) > 1:
            self._draw_targets(rng)
        elif self.fixed_goal is not None:
            self._goal = self.fixed_goal.copy()
            while np.linalg.norm(self._goal - self._pos) < 0.3:
                self._pos = rng.uniform(-0.9, 0.9, size=2)
        else:
            self._goal = rng.uniform(-0.9, 0.9, size=2)
            while np.linalg.norm(self._goal - self._pos) < 0.3:
                self._goal = rng.uniform(-0.9, 0.9, size=2)
        self._vel = np.zeros(2)
        self._t = 0
        return self._observation(new_episode=True), {"success": False}

    def _draw_targets(self, rng) -> None:
        """Several targets: each at least 0.3 from the start and TARGET_SPACING from the others, in colour order
        (so an episode's scene does not depend on which target is the goal)."""
        places: list = []
        while len(places) < len(self.colours):
            p = rng.uniform(-0.9, 0.9, size=2)
            if np.linalg.norm(p - self._pos) >= 0.3 and all(np.linalg.norm(p - q) >= TARGET_SPACING for q in places):
                places.append(p)
        self._goal = places[self.colours.index(self.target)]
        self._others = [(p, TARGET_COLOURS[c]) for p, c in zip(places, self.colours) if c != self.target]

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        self._vel = 0.8 * self._vel + 0.2 * a
        self._pos = np.clip(self._pos + 0.1 * self._vel, -1.0, 1.0)
        self._t += 1
        dist = float(np.linalg.norm(self._goal - self._pos))
        success = dist < self.tolerance
        truncated = self._t >= self.max_steps and not success
        return self._observation(), -dist, success, truncated, {"success": success}


def parse_goal(goal) -> np.ndarray | None:
    """The `goal` option: None, "x,y" or a 2-sequence of numbers in [-1, 1] (ValueError otherwise)."""
    if goal is None:
        return None
    try:
        g = np.array([float(v) for v in (goal.split(",") if isinstance(goal, str) else goal)], dtype=np.float64)
    except (TypeError, ValueError):
        g = np.zeros(0)
    if g.shape != (2,) or not np.all(np.abs(g) <= 1.0):
        raise ValueError(f"goal must be 'x,y' (or two numbers) in [-1, 1], got {goal!r}")
    return g


def parse_targets(targets, target) -> list[str]:
    """The colours of the `targets` targets, in order (ValueError unless 1 <= targets <= 4 and `target` is one)."""
    n = int(targets)
    if not 1 <= n <= len(TARGET_COLOURS):
        raise ValueError(f"targets must be 1 to {len(TARGET_COLOURS)}, got {targets!r}")
    colours = list(TARGET_COLOURS)[:n]
    if target not in colours:
        raise ValueError(f"target must be one of the {n} target colours ({', '.join(colours)}), got {target!r}")
    return colours


def expert_action(obs: np.ndarray) -> np.ndarray:
    pos, vel, goal = obs[0:2], obs[2:4], obs[4:6]
    return np.clip(4.0 * (goal - pos) - 1.5 * vel, -1.0, 1.0)


def make_env(max_steps: int = 100, tolerance: float = 0.05, cameras=None, image_size=IMAGE_SIZE,
             state: str = "full", goal=None, targets: int = 1, target: str = "green") -> gym.Env:
    return ReachEnv(max_steps=max_steps, tolerance=tolerance, cameras=cameras, image_size=image_size, state=state,
                    goal=goal, targets=targets, target=target)


def make_expert(**_options) -> FunctionActor:
    return FunctionActor(expert_action, act_dim=2)
