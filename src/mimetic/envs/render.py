"""Camera observations: headless OpenGL for MuJoCo, camera options, image helpers.

MuJoCo picks its OpenGL backend from `MUJOCO_GL` once, when `mujoco` is first imported, so
`setup_gl` must run before that (tasks that render call it before importing metaworld or mujoco;
`import mimetic` and `import mimetic.envs` never import mujoco). It keeps a `MUJOCO_GL` the user
set; otherwise it takes EGL (headless, no X server) if an EGL device can be initialised, else
OSMesa (software) if its library loads, and raises a one-line MimeticError naming the Debian
packages to install if neither does.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import importlib.util
import os
import sys
import weakref

import numpy as np

from mimetic.errors import MimeticError

BACKENDS = ("egl", "osmesa")
PACKAGES = ("install the Debian packages libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 (EGL) "
            "or libosmesa6 (OSMesa), e.g. with scripts/setup.sh, or set MUJOCO_GL to a backend that works here (egl, osmesa)")

_EGL_PLATFORM_DEVICE_EXT = 0x313F


def _load(*names: str):
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _egl_works() -> bool:
    """Whether an EGL device display can be initialised (what mujoco's EGL backend needs), by ctypes."""
    egl = _load("libEGL.so.1", "libEGL.so")
    if egl is None or _load("libOpenGL.so.0", "libOpenGL.so", "libGL.so.1") is None:
        return False
    egl.eglGetProcAddress.restype = ctypes.c_void_p
    egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
    query_ptr = egl.eglGetProcAddress(b"eglQueryDevicesEXT")
    display_ptr = egl.eglGetProcAddress(b"eglGetPlatformDisplayEXT")
    if not query_ptr or not display_ptr:
        return False
    query = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                             ctypes.POINTER(ctypes.c_int))(query_ptr)
    get_display = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p)(display_ptr)
    egl.eglInitialize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
    egl.eglInitialize.restype = ctypes.c_uint
    egl.eglTerminate.argtypes = [ctypes.c_void_p]
    devices, n = (ctypes.c_void_p * 16)(), ctypes.c_int(0)
    if not query(16, devices, ctypes.byref(n)):
        return False
    for i in range(n.value):
        display = get_display(_EGL_PLATFORM_DEVICE_EXT, devices[i], None)
        major, minor = ctypes.c_int(), ctypes.c_int()
        if display and egl.eglInitialize(display, ctypes.byref(major), ctypes.byref(minor)):
            egl.eglTerminate(display)
            return True
    return False


def _osmesa_works() -> bool:
    return _load("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so") is not None


_PROBES = {"egl": _egl_works, "osmesa": _osmesa_works}
_chosen: str | None = None


def setup_gl(required: bool = True) -> str | None:
    """Choose MuJoCo's headless OpenGL backend (sets `MUJOCO_GL`) and return it.

    A `MUJOCO_GL` already set is kept. With `required=False` (a task that does not render) no working
    backend is not an error: it returns None and MuJoCo keeps its own default.
    """
    global _chosen
    user = os.environ.get("MUJOCO_GL", "").strip().lower()
    if user and user != _chosen:
        return user
    if _chosen is None:
        if importlib.util.find_spec("OpenGL") is None:  # mujoco's egl and osmesa backends use PyOpenGL
            if required:
                raise MimeticError(f"no headless OpenGL for MuJoCo rendering: PyOpenGL is missing (pip install PyOpenGL); {PACKAGES}")
            return None
        for backend in BACKENDS:
            if _PROBES[backend]():
                _chosen = backend
                break
        else:
            if required:
                raise MimeticError(f"no headless OpenGL for MuJoCo rendering (neither EGL nor OSMesa works): {PACKAGES}")
            return None
        os.environ["MUJOCO_GL"] = _chosen  # (mujoco's backend sets PYOPENGL_PLATFORM to match)
        if "mujoco" in sys.modules:
            _switch_imported_mujoco(_chosen)
    return _chosen


def _switch_imported_mujoco(backend: str) -> None:
    """mujoco was imported before MUJOCO_GL was set (it took its default, GLFW, which needs a display):
    point its renderer at the headless backend."""
    gl_context = sys.modules.get("mujoco.gl_context") or importlib.import_module("mujoco.gl_context")
    if getattr(gl_context, "_MUJOCO_GL", "") == backend:
        return
    try:
        gl_context.GLContext = importlib.import_module(f"mujoco.{backend}").GLContext
    except Exception as e:  # noqa: BLE001 - any failure to load the backend is the same user problem
        raise MimeticError(f"mujoco was imported before mimetic could choose its OpenGL backend and {backend} "
                           f"fails ({type(e).__name__}); set MUJOCO_GL={backend} before starting Python") from None


def new_renderer(model, height: int, width: int):
    """A `mujoco.Renderer` of its own (one per env: gymnasium's shared MujocoRenderer mixes up two envs'
    images), or a one-line MimeticError if OpenGL cannot start."""
    setup_gl()
    import mujoco

    try:
        renderer = mujoco.Renderer(model, height=height, width=width)
    except Exception as e:  # noqa: BLE001 - GL start-up errors come as many types
        raise MimeticError(f"MuJoCo rendering with MUJOCO_GL={os.environ.get('MUJOCO_GL')} failed "
                           f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): {PACKAGES}") from None
    global _exit_hook
    if not _exit_hook:  # registered after mujoco's own exit hook (eglTerminate), so it runs before it
        atexit.register(_close_open_renderers)
        _exit_hook = True
    _open.add(renderer)
    return renderer


_open: weakref.WeakSet = weakref.WeakSet()
_exit_hook = False


def _close_open_renderers() -> None:
    """At exit, close the renderers of envs nobody closed: their GL contexts would otherwise be freed after
    EGL shut down, printing tracebacks."""
    for renderer in list(_open):
        try:
            renderer.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
    _open.clear()


def fast_settings(model, renderer) -> None:
    """Rendering settings for speed: no multisampling, shadows or reflections (as the images are small)."""
    import mujoco

    model.vis.quality.offsamples = 0
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0


# ---- options shared by the tasks that render --------------------------------------------------------

# full: the whole state as `observation.state`; proprio: the robot's own part only (the rest reaches scripted experts as
# `privileged.state`, never recorded); proprio+env: proprio, and the rest recorded as `observation.environment_state`
# (a policy reads it as input unless told otherwise, e.g. as the target of `--aux-state`)
STATE_MODES = ("full", "proprio", "proprio+env")


def parse_cameras(cameras, valid: tuple[str, ...], task: str) -> tuple[str, ...]:
    """The `cameras` option (a comma-separated string, a list, or None) as a tuple of valid camera names."""
    if cameras is None:
        return ()
    names = cameras.split(",") if isinstance(cameras, str) else list(cameras)
    names = [str(n).strip() for n in names if str(n).strip()]
    for n in names:
        if n not in valid:
            raise MimeticError(f"{task}: unknown camera {n!r}: valid cameras are {', '.join(valid)}")
    if len(set(names)) != len(names):
        raise MimeticError(f"{task}: camera listed twice in {names}")
    return tuple(names)


def parse_image_size(image_size, task: str) -> int:
    """The `image_size` option (an int or its string): the side of the square images."""
    try:
        size = int(image_size)
    except (TypeError, ValueError):
        raise MimeticError(f"{task}: image_size must be an integer (pixels per side), got {image_size!r}") from None
    if not 8 <= size <= 2048:
        raise MimeticError(f"{task}: image_size must be between 8 and 2048 pixels, got {size}")
    return size


def parse_state(state, task: str) -> str:
    state = str(state).strip().lower()
    if state not in STATE_MODES:
        raise MimeticError(f"{task}: state must be one of {', '.join(STATE_MODES)}, got {state!r}")
    return state


def dict_space(state_space, cameras: tuple[str, ...], size: int, full_space=None, env_space=None):
    """The Dict observation space: `observation.state`, `observation.environment_state` if given, one image per
    camera, `privileged.state` if given."""
    import gymnasium as gym

    from mimetic.features import ENV_STATE, PRIVILEGED_STATE, STATE, image_key

    spaces = {STATE: state_space}
    if env_space is not None:
        spaces[ENV_STATE] = env_space
    for cam in cameras:
        spaces[image_key(cam)] = gym.spaces.Box(0, 255, shape=(size, size, 3), dtype=np.uint8)
    if full_space is not None:
        spaces[PRIVILEGED_STATE] = full_space
    return gym.spaces.Dict(spaces)


class CameraObs:
    """What a task that renders keeps: its options, and how to turn its full state into an observation.

    `render(camera)` (given by the task) returns one uint8 (size, size, 3) frame. With no cameras and the
    full state, observations stay the plain float32 vector (`dict_obs` is False)."""

    def __init__(self, task: str, cameras, image_size, state, valid: tuple[str, ...], proprio_dims: int):
        self.cameras = parse_cameras(cameras, valid, task)
        self.size = parse_image_size(image_size, task)
        self.state = parse_state(state, task)
        self.proprio_dims = proprio_dims
        self.proprio = self.state != "full"  # the state is split: the robot's own part is observation.state
        self.dict_obs = bool(self.cameras) or self.proprio

    def space(self, full_space):
        if not self.dict_obs:
            return full_space
        import gymnasium as gym

        if not self.proprio:
            return dict_space(full_space, self.cameras, self.size)
        k = self.proprio_dims
        reduced = gym.spaces.Box(full_space.low[:k], full_space.high[:k], dtype=np.float32)
        rest = gym.spaces.Box(full_space.low[k:], full_space.high[k:], dtype=np.float32) if self.state == "proprio+env" else None
        return dict_space(reduced, self.cameras, self.size, full_space, rest)

    def names(self, full_names: list[str]) -> dict[str, list[str]]:
        from mimetic.features import ENV_STATE, PRIVILEGED_STATE, STATE

        if not self.proprio:
            return {STATE: list(full_names)}
        k = self.proprio_dims
        names = {STATE: list(full_names[:k]), PRIVILEGED_STATE: list(full_names)}
        return {**names, ENV_STATE: list(full_names[k:])} if self.state == "proprio+env" else names

    def observe(self, full: np.ndarray, render):
        """The observation for full state `full` (float32); `render(camera)` is called once per camera."""
        if not self.dict_obs:
            return full
        from mimetic.features import ENV_STATE, PRIVILEGED_STATE, STATE, image_key

        k = self.proprio_dims
        out = {STATE: full[:k].copy() if self.proprio else full}
        if self.state == "proprio+env":
            out[ENV_STATE] = full[k:].copy()
        for cam in self.cameras:
            out[image_key(cam)] = render(cam)
        if self.proprio:
            out[PRIVILEGED_STATE] = full
        return out
