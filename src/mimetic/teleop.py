"""A human expert: teleoperation by keyboard or gamepad.

The human is read through an input source, so the same actor runs on pygame events in real use
and on a scripted sequence in tests:

- `InputSource.poll() -> InputState`: called once per environment step; `InputState.axes` is the
  commanded action in [-1, 1]^k, and its flags say what the human asked for this step.
- `PygameInput("keyboard" | "gamepad")` reads pygame (imported only here, only when used; set
  SDL_VIDEODRIVER=dummy to run without a screen). `ScriptedInput([...])` replays states.
- A source that can `show(frame, status)` (PygameInput) is shown what the robot sees before each
  step: the camera image scaled up by a whole factor to about `WINDOW` pixels (nearest neighbour, so
  each camera pixel is a k x k block), several cameras side by side, and a status line below.

Keyboard: arrows or W/A/S/D move axes 0/1, R/F axis 2, space closes the gripper (axis 3 = +1,
else -1 where the action has 4 dims); T toggles expert takeover (HG-DAgger); Y ends the episode
marked success, N marked failure; Esc quits. Gamepad: left stick axes 0/1, right stick vertical
axis 2, right trigger the gripper; A (button 0) toggles takeover, X (2) success, B (1) failure,
Start (7) quits.

`TeleopActor(source, act_dim)` is an actor (one environment) that can serve as the expert of
DAgger / HG-DAgger; `record(env, out, episodes, source)` records demonstrations (`mimetic
teleop`), each episode marked success or failure by the human (or by the environment's success
if the episode ended on its own).

What `record` shows: the cameras the user asked for (`--env-option cameras=...`, recorded too), else
the task's `DEFAULT_CAMERA`, added for display only (the dataset keeps the features the user asked
for: no camera). A task without cameras shows the status line alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np

from mimetic.actors import batch_size
from mimetic.errors import MimeticError
from mimetic.features import as_obs_dict, is_image_key

WINDOW = 512  # about this many pixels on the long side of the camera view
STATUS_HEIGHT = 28


@dataclass
class InputState:
    axes: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    toggle_takeover: bool = False  # pressed this step
    mark_success: bool = False
    mark_failure: bool = False
    quit: bool = False


class InputSource(Protocol):
    def poll(self) -> InputState: ...

    # optional: `show(frame: uint8 (H, W, 3) | None, status: str) -> None` draws what the robot sees


class ScriptedInput:
    """Replays a fixed sequence of input states (tests, or a recorded session). Past its end it quits."""

    def __init__(self, states: Iterable[InputState | dict]):
        self.states = [s if isinstance(s, InputState) else InputState(**s) for s in states]
        self.i = 0

    def poll(self) -> InputState:
        if self.i >= len(self.states):
            return InputState(quit=True)
        s = self.states[self.i]
        self.i += 1
        s.axes = np.asarray(s.axes, np.float32)
        return s


def _import_pygame():
    try:
        import pygame  # noqa: PLC0415 - optional dependency, imported only for teleoperation
    except ImportError:
        raise MimeticError("teleoperation needs pygame: pip install pygame (or pip install 'mimetic[teleop]')") from None
    return pygame


class PygameInput:
    """Keyboard or gamepad through pygame. Opens a small window (or none with SDL_VIDEODRIVER=dummy)."""

    def __init__(self, device: str = "keyboard", fps: float = 10.0):
        if device not in ("keyboard", "gamepad"):
            raise MimeticError(f"input device must be keyboard or gamepad, got {device!r}")
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        pg = _import_pygame()
        self.pg, self.device, self.fps = pg, device, fps
        pg.init()
        self.screen = pg.display.set_mode((320, STATUS_HEIGHT))
        pg.display.set_caption("mimetic teleop: arrows/WASD move, T takeover, Y success, N failure, Esc quit")
        self.clock = pg.time.Clock()
        self.joystick = None
        if device == "gamepad":
            pg.joystick.init()
            if pg.joystick.get_count() == 0:
                raise MimeticError("--input gamepad: no gamepad found (pygame sees 0 joysticks)")
            self.joystick = pg.joystick.Joystick(0)
        self.gripper = False
        self.font = None
        self.scale = 1  # window pixels per camera pixel (per side)

    def show(self, frame: np.ndarray | None, status: str = "") -> None:
        """Draw `frame` (uint8 (H, W, 3)) scaled up by a whole factor to about WINDOW pixels, with `status` below it."""
        pg = self.pg
        if frame is not None:
            frame = np.asarray(frame, np.uint8)
            h, w = frame.shape[:2]
            self.scale = k = max(1, WINDOW // max(h, w))
            size = (w * k, h * k + STATUS_HEIGHT)
        else:
            k, size = 1, (max(320, self.screen.get_width()), STATUS_HEIGHT)
        if self.screen.get_size() != size:
            self.screen = pg.display.set_mode(size)
        self.screen.fill((0, 0, 0))
        if frame is not None:
            big = np.repeat(np.repeat(frame, k, axis=0), k, axis=1)
            self.screen.blit(pg.surfarray.make_surface(big.swapaxes(0, 1)), (0, 0))
        if status:
            if self.font is None:
                pg.font.init()
                self.font = pg.font.Font(None, 24)
            self.screen.blit(self.font.render(status, True, (255, 255, 255)), (6, size[1] - STATUS_HEIGHT + 5))
        pg.display.flip()

    def poll(self) -> InputState:
        pg = self.pg
        state = InputState()
        for ev in pg.event.get():
            if ev.type == pg.QUIT:
                state.quit = True
            elif ev.type == pg.KEYDOWN:
                state.toggle_takeover |= ev.key == pg.K_t
                state.mark_success |= ev.key == pg.K_y
                state.mark_failure |= ev.key == pg.K_n
                state.quit |= ev.key == pg.K_ESCAPE
            elif ev.type == pg.JOYBUTTONDOWN:
                state.toggle_takeover |= ev.button == 0
                state.mark_failure |= ev.button == 1
                state.mark_success |= ev.button == 2
                state.quit |= ev.button == 7
        axes = np.zeros(4, np.float32)
        if self.joystick is not None:
            j = self.joystick
            get = lambda i: j.get_axis(i) if i < j.get_numaxes() else 0.0  # noqa: E731
            axes[:] = [get(0), -get(1), -get(4), 1.0 if get(5) > 0 else -1.0]
        else:
            keys = pg.key.get_pressed()
            axes[0] = float(keys[pg.K_RIGHT] or keys[pg.K_d]) - float(keys[pg.K_LEFT] or keys[pg.K_a])
            axes[1] = float(keys[pg.K_UP] or keys[pg.K_w]) - float(keys[pg.K_DOWN] or keys[pg.K_s])
            axes[2] = float(keys[pg.K_r]) - float(keys[pg.K_f])
            axes[3] = 1.0 if keys[pg.K_SPACE] else -1.0
        state.axes = axes
        if self.fps > 0:
            self.clock.tick(self.fps)
        return state

    def close(self) -> None:
        self.pg.quit()


def make_input_source(device: str, fps: float = 10.0) -> PygameInput:
    return PygameInput(device, fps=fps)


class TeleopActor:
    """The human as an actor in one environment: action = gain * axes (padded / cut to act_dim), clipped.

    `takeover` is toggled by the human (HG-DAgger's gate); `mark` is "success" / "failure" once the
    human ended the episode; `quit` once the human asked to stop.
    """

    name = "human expert"

    def __init__(self, source: InputSource, act_dim: int, gain: float = 1.0, low: float = -1.0, high: float = 1.0):
        self.source, self.act_dim, self.gain, self.low, self.high = source, act_dim, gain, low, high
        self.takeover = False
        self.reset(1)

    def reset(self, num_envs: int = 1, seeds=None) -> None:
        if num_envs != 1:
            raise MimeticError(f"a human expert drives one environment at a time, not {num_envs} (use --num-envs 1)")
        self.mark: str | None = None
        self.quit = False

    def act(self, obs) -> np.ndarray:
        n = batch_size(obs)
        if n != 1:
            raise MimeticError(f"a human expert drives one environment at a time, got a batch of {n}")
        s = self.source.poll()
        if s.toggle_takeover:
            self.takeover = not self.takeover
        if s.mark_success:
            self.mark = "success"
        elif s.mark_failure:
            self.mark = "failure"
        self.quit |= s.quit
        axes = np.asarray(s.axes, np.float32).reshape(-1)
        a = np.zeros(self.act_dim, np.float32)
        k = min(self.act_dim, len(axes))
        a[:k] = axes[:k]
        return np.clip(self.gain * a, self.low, self.high)[None]


def display_options(env: str, env_options: dict) -> dict:
    """The options `record` makes the env with to show it: the user's, plus the task's DEFAULT_CAMERA when the user
    asked for no camera (shown, not recorded); the user's alone for a task without cameras."""
    from mimetic.envs import _resolve

    camera = getattr(_resolve(env)[0], "DEFAULT_CAMERA", None)
    return dict(env_options) if env_options.get("cameras") or camera is None else {**env_options, "cameras": camera}


def record(env: str, out: str | Path, episodes: int, source: InputSource, *, env_options: dict | None = None,
           seed: int | None = None, gain: float = 1.0, max_steps: int | None = None, image_storage: str | None = None,
           video_codec: str | None = None) -> "Dataset":
    """Record up to `episodes` human demonstrations into the dataset `out` (created or appended to).

    Each episode is committed as soon as it ends, with an extra column `marked_success` (the human's
    verdict, or the environment's success if the episode ended on its own). Quitting stops
    recording; the episode in progress is discarded (nothing half-written). A source with `show` sees the
    camera view before each step (see the module doc). `image_storage` / `video_codec` choose how a new
    dataset stores camera frames (None: the Dataset's defaults).
    """
    from mimetic.data.dataset import Dataset
    from mimetic.data.episode import Episode
    from mimetic.envs import make_env
    from mimetic.envs.spaces import sizes_of

    if episodes <= 0:
        raise MimeticError(f"--episodes must be positive, got {episodes}")
    out = Path(out)
    env_options = dict(env_options or {})
    ds = None
    if (out / "meta/info.json").exists():
        ds = Dataset.load(out)
        if ds.env_name != env or ds.env_options != env_options:
            raise MimeticError(f"dataset {out} was recorded in {ds.env_name!r} {ds.env_options}, not {env!r} {env_options}")
        if "marked_success" not in ds.extra_keys:
            raise MimeticError(f"dataset {out} was not recorded by teleop (no marked_success column): choose another --out")
    elif out.exists() and (out.is_file() or any(out.iterdir())):
        raise MimeticError(f"{out} exists and is not a dataset: choose another --out")
    show = getattr(source, "show", None)
    make_options = display_options(env, env_options) if show is not None else env_options
    e = make_env(env, **make_options)
    sizes = sizes_of(e)
    sizes.require_continuous("teleop", env)
    shown = [k for k in sizes.features if is_image_key(k)]
    display_only = shown if make_options.get("cameras") != env_options.get("cameras") else []
    keep = [k for k in sizes.features if k not in display_only]  # exactly the features the user asked for
    actor = TeleopActor(source, sizes.act_dim, gain=gain, low=float(np.min(sizes.low)), high=float(np.max(sizes.high)))
    storage = {k: v for k, v in (("image_storage", image_storage), ("video_codec", video_codec)) if v is not None}
    next_seed = seed if seed is not None else (int(ds.info["mimetic"].get("next_seed", ds.num_episodes)) if ds else 0)
    try:
        for n in range(episodes):
            obs, _info = e.reset(seed=next_seed)
            actor.reset(1)
            steps: list[dict] = []
            rec: dict[str, list] = {"act": [], "rew": [], "succ": []}
            term = trunc = False
            while True:
                o = as_obs_dict(obs)
                if show is not None:
                    show(np.concatenate([o[k] for k in shown], axis=1) if shown else None,
                         f"episode {n + 1}/{episodes}   step {len(steps)}   success {'yes' if any(rec['succ']) else 'no'}"
                         "   (Y success, N failure, Esc quit)")
                a = actor.act({k: np.asarray(v)[None] for k, v in o.items()})
                if actor.quit or actor.mark is not None:
                    break
                obs, r, term, trunc, info = e.step(a[0])
                steps.append({k: o[k] for k in keep})
                rec["act"].append(a[0])
                rec["rew"].append(float(r))
                rec["succ"].append(bool(info.get("success", False)))
                if term or trunc or (max_steps is not None and len(rec["act"]) >= max_steps):
                    break
            if actor.quit:
                break
            next_seed += 1
            if not rec["act"]:
                continue  # ended before the first step: nothing to keep
            T = len(rec["act"])
            marked = actor.mark == "success" if actor.mark is not None else any(rec["succ"])
            final = as_obs_dict(obs)
            ep = Episode({k: np.stack([s[k] for s in steps]) for k in keep}, np.stack(rec["act"]), rec["rew"], rec["succ"],
                         terminated=bool(term), task=env, extras={"marked_success": np.full(T, marked)},
                         final_observation={k: final[k] for k in keep})
            meta = {"next_seed": next_seed}
            if ds is None:
                ds = Dataset.create(out, [ep], env=env, env_options=env_options, fps=sizes.fps, meta=meta, **storage)
            else:
                ds.append([ep], meta=meta)
    finally:
        e.close()
    if ds is None:
        raise MimeticError("teleop: no episode was recorded")
    return ds
