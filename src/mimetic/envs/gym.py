"""`gym/<id>`: any registered gymnasium environment.

The environment is wrapped so that `info["success"]` is always present (False unless the
environment reports its own). Scripted experts for some ids live in `EXPERTS`.

`cameras=render` makes the environment with render_mode="rgb_array" and turns its observation into a
dict: `observation.state` (the observation flattened, float32) and `observation.images.render` (its
`render()` frame, resized to `image_size` x `image_size` with PIL when it differs).
"""

from __future__ import annotations

import importlib

import gymnasium as gym
import numpy as np

from mimetic.envs.render import CameraObs, setup_gl
from mimetic.errors import MimeticError

CAMERAS: tuple[str, ...] = ("render",)
DEFAULT_CAMERA = "render"
IMAGE_SIZE = 84

# gymnasium id -> "module:function" building its scripted expert (imported lazily)
EXPERTS: dict[str, str] = {
    "Pendulum-v1": "mimetic.envs.pendulum:make_expert",
}


class SuccessInfo(gym.Wrapper):
    """Guarantees `info["success"]` at reset and at every step."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        info.setdefault("success", False)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["success"] = bool(info.get("success", info.get("is_success", False)))
        return obs, reward, terminated, truncated, info


class RenderObservation(gym.Wrapper):
    """A dict observation: the flattened observation as `observation.state` and the `render()` frame."""

    def __init__(self, env: gym.Env, cam: CameraObs):
        super().__init__(env)
        self._cam = cam
        self._flat_space = env.observation_space
        dim = gym.spaces.flatdim(env.observation_space)
        self.observation_space = cam.space(gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32))

    def _observe(self, obs):
        state = np.asarray(gym.spaces.flatten(self._flat_space, obs), dtype=np.float32)
        return self._cam.observe(state, self.render_camera)

    def render_camera(self, camera: str = DEFAULT_CAMERA, size: int | None = None) -> np.ndarray:
        size = self._cam.size if size is None else int(size)
        frame = np.asarray(self.env.render(), dtype=np.uint8)
        if frame.shape[:2] != (size, size):
            from PIL import Image

            frame = np.asarray(Image.fromarray(frame[..., :3]).resize((size, size), Image.Resampling.BILINEAR))
        return np.ascontiguousarray(frame[..., :3])

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._observe(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observe(obs), reward, terminated, truncated, info


def make_env(env_id: str, cameras=None, image_size=IMAGE_SIZE, state: str = "full", **kwargs) -> gym.Env:
    cam = CameraObs(f"gym/{env_id}", cameras, image_size, state, CAMERAS, 0)
    if cam.state != "full":
        raise MimeticError(f"gym/{env_id}: state must be 'full' (a gymnasium environment does not say which "
                           f"of its numbers are the robot's own), got {cam.state!r}")
    if cam.cameras:
        kwargs["render_mode"] = "rgb_array"
        setup_gl(required=False)  # before a MuJoCo environment imports mujoco (other renderers do not need it)
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise MimeticError(f"gymnasium environment {env_id!r}: {e}") from None
    except ImportError as e:  # e.g. pygame for a classic-control renderer
        raise MimeticError(f"gymnasium environment {env_id!r}: {e}") from None
    names = [f"state_{i}" for i in range(_flat_dim(env.observation_space))]
    if cam.cameras:
        env = RenderObservation(env, cam)
    try:
        env.unwrapped.feature_names = cam.names(names)
    except AttributeError:  # an env that refuses new attributes: names are optional
        pass
    return SuccessInfo(env)


def _flat_dim(space) -> int:
    try:
        return gym.spaces.flatdim(space)
    except (ValueError, NotImplementedError, TypeError):
        return int(np.prod(space.shape)) if space.shape else 1


def make_expert(env_id: str, **options):
    if env_id not in EXPERTS:
        raise MimeticError(f"environment 'gym/{env_id}' has no scripted expert")
    module, fn = EXPERTS[env_id].split(":")
    return getattr(importlib.import_module(module), fn)(**options)
