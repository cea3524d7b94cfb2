"""`metaworld/<task>-v3`: the 50 Meta-World v3 tasks, single task, goal observable.

39-d state, 4-d action in [-1, 1], 500-step limit, success = info["success"]. Each reset draws the
task variation (object and goal positions) from the reset seed, so a seed always gives the same
initial state. With `terminate_on_success=True` (the default) an episode ends at the first success:
the protocol counts success at any step, so this only saves time. The expert is Meta-World's own
scripted policy for the task.

Cameras (`cameras=corner4,gripperPOV`, `image_size=84`): each camera adds
`observation.images.<camera>` (uint8, image_size x image_size x 3, upright: the four corner cameras
come out of MuJoCo upside down and are turned by 180 degrees) to a dict observation, rendered by a
MuJoCo renderer owned by this env (shadows, reflections, skybox and multisampling off, for speed).
`state=proprio` records only the end effector's position and the gripper opening (the first 4 of the
39 numbers) as `observation.state` and passes the full state as `privileged.state` for the expert:
the policy must then find the object and the goal in the images. `state=proprio+env` also records the other 35
numbers as `observation.environment_state` (a training target for `--aux-state`, not an input the evaluation
needs). With no cameras and `state=full`
the observation is the plain 39-d vector.
"""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import numpy as np

from mimetic.actors import FunctionActor
from mimetic.envs.render import CameraObs, fast_settings, new_renderer, setup_gl
from mimetic.errors import MimeticError

MAX_STEPS = 500
CAMERAS: tuple[str, ...] = ("topview", "corner", "corner2", "corner3", "corner4", "behindGripper", "gripperPOV")
DEFAULT_CAMERA = "corner4"
# fixed cameras whose image "up" points down in the world (their xml orientation): turned by 180 degrees
UPSIDE_DOWN: frozenset[str] = frozenset({"corner", "corner2", "corner3", "corner4"})
IMAGE_SIZE = 84
PROPRIO_DIMS = 4  # end-effector xyz, gripper opening

_FRAME = ["hand_x", "hand_y", "hand_z", "gripper"] + [
    f"obj{k}_{c}" for k in (1, 2) for c in ("x", "y", "z", "quat_0", "quat_1", "quat_2", "quat_3")]
# the 39 numbers: this frame (18), the previous frame (18), the goal (3); the quaternion order is the task's
# own (MuJoCo's w, x, y, z for some tasks, scipy's x, y, z, w for others); unused object slots are zeros
STATE_NAMES: list[str] = _FRAME + [f"prev_{n}" for n in _FRAME] + ["goal_x", "goal_y", "goal_z"]


def _all_envs():
    setup_gl(required=False)  # before metaworld imports mujoco, so that a later env can render
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    return ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE


# The 50 Meta-World v3 task names, written out so that listing them (`mimetic envs`) does not import
# metaworld (a second); tests/test_envs.py checks this list against metaworld's own.
TASKS: tuple[str, ...] = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3",
    "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3",
    "door-open-v3", "door-unlock-v3", "drawer-close-v3", "drawer-open-v3", "faucet-close-v3", "faucet-open-v3",
    "hammer-v3", "hand-insert-v3", "handle-press-side-v3", "handle-press-v3", "handle-pull-side-v3",
    "handle-pull-v3", "lever-pull-v3", "peg-insert-side-v3", "peg-unplug-side-v3", "pick-out-of-hole-v3",
    "pick-place-v3", "pick-place-wall-v3", "plate-slide-back-side-v3", "plate-slide-back-v3",
    "plate-slide-side-v3", "plate-slide-v3", "push-back-v3", "push-v3", "push-wall-v3", "reach-v3",
    "reach-wall-v3", "shelf-place-v3", "soccer-v3", "stick-pull-v3", "stick-push-v3", "sweep-into-v3",
    "sweep-v3", "window-close-v3", "window-open-v3",
)


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise MimeticError(
            f"unknown Meta-World task {task!r}: expected one of the 50 v3 tasks, e.g. 'pick-place-v3'"
        )
    return task


class MetaWorldEnv(gym.Env):
    metadata = {"render_modes": [], "render_fps": 80}

    def __init__(self, task: str, max_steps: int = MAX_STEPS, terminate_on_success: bool = True,
                 cameras=None, image_size=IMAGE_SIZE, state: str = "full", fast_render: bool = True):
        self.task = _check_task(task)
        self._cam = CameraObs(f"metaworld/{task}", cameras, image_size, state, CAMERAS, PROPRIO_DIMS)
        self.fast_render = bool(fast_render)
        self._renderer = None
        self._env = _all_envs()[f"{task}-goal-observable"]()
        self._env._freeze_rand_vec = False  # draw a new variation at every reset ...
        self._env.seeded_rand_vec = True  # ... from the env's own seeded generator
        self.max_steps = min(int(max_steps), self._env.max_path_length)
        self.terminate_on_success = bool(terminate_on_success)
        # rewards are >= 0, so an episode that ends at its first success earns less the sooner it succeeds
        self.return_comparable = not self.terminate_on_success
        self.return_note = (f"fixed {self.max_steps}-step episodes" if not self.terminate_on_success else
                            "episodes end at the first success, so a faster success earns less; "
                            "terminate_on_success=false gives fixed-length episodes")
        self.observation_space = self._cam.space(gym.spaces.Box(-np.inf, np.inf, shape=(39,), dtype=np.float32))
        self.feature_names = self._cam.names(STATE_NAMES)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # Meta-World ignores reset(seed=...); seed its generator from ours so seeds are reproducible.
        self._env.seed(int(self.np_random.integers(2**31 - 1)))
        obs, _ = self._env.reset()
        self._t = 0
        if self._cam.cameras:
            # Meta-World moves the goal marker (model.site_pos) after its last forward pass; without this the
            # first frame of every episode would show the previous episode's goal.
            import mujoco

            mujoco.mj_kinematics(self._env.model, self._env.data)  # positions only: the dynamics stay as they were
        return self._cam.observe(obs.astype(np.float32), self.render_camera), {"success": False}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float32).reshape(4), -1.0, 1.0)
        obs, reward, _, _, info = self._env.step(a)
        self._t += 1
        success = bool(info.get("success", 0.0))
        terminated = success and self.terminate_on_success
        truncated = self._t >= self.max_steps and not terminated
        obs = self._cam.observe(obs.astype(np.float32), self.render_camera)
        return obs, float(reward), terminated, truncated, {"success": success}

    def render_camera(self, camera: str, size: int | None = None) -> np.ndarray:
        """One upright uint8 (size, size, 3) frame of the current state from `camera` (default size: image_size)."""
        size = self._cam.size if size is None else int(size)
        if camera not in CAMERAS:
            raise MimeticError(f"metaworld/{self.task}: unknown camera {camera!r}: valid cameras are {', '.join(CAMERAS)}")
        if self._renderer is None or (self._renderer.height, self._renderer.width) != (size, size):
            self._close_renderer()
            model = self._env.model
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
            model.vis.global_.offheight = max(model.vis.global_.offheight, size)
            if self.fast_render:
                model.vis.quality.offsamples = 0  # read when the renderer's context is made
            self._renderer = new_renderer(model, size, size)
            if self.fast_render:
                fast_settings(model, self._renderer)
        self._renderer.update_scene(self._env.data, camera=camera)
        frame = self._renderer.render()
        return np.ascontiguousarray(frame[::-1, ::-1]) if camera in UPSIDE_DOWN else frame

    def _close_renderer(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def close(self):
        self._close_renderer()
        self._env.close()


def _policy_class_name(task: str) -> str:
    base = task[: -len("-v3")] if task.endswith("-v3") else task
    camel = "".join(p.capitalize() for p in re.split(r"-", base))
    camel = camel.replace("PegInsertSide", "PegInsertionSide")
    return f"Sawyer{camel}V3Policy"


def make_env(task: str, max_steps: int = MAX_STEPS, terminate_on_success: bool = True, cameras=None,
             image_size=IMAGE_SIZE, state: str = "full") -> gym.Env:
    return MetaWorldEnv(task, max_steps=max_steps, terminate_on_success=terminate_on_success, cameras=cameras,
                        image_size=image_size, state=state)


def make_expert(task: str, **_options) -> FunctionActor:
    """Meta-World's scripted policy (it reads the full 39-d state: `privileged.state` under state=proprio)."""
    import metaworld.policies as policies

    _check_task(task)
    policy = getattr(policies, _policy_class_name(task))()

    def act(obs: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.clip(policy.get_action(np.asarray(obs, dtype=np.float64)), -1.0, 1.0)

    return FunctionActor(act, act_dim=4)
