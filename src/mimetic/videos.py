"""Rollout videos: record evaluation episodes as MP4 files (`mimetic eval ... --video DIR`).

`record_videos` runs the actor on the first evaluation seeds in environments that render, and writes
one MP4 per episode, `DIR/episode-<seed>-success.mp4` or `DIR/episode-<seed>-failure.mp4`, plus
`DIR/videos.json` (seed, success, return, length, file of each). An environment with several
cameras gives one video with the cameras side by side (in `observation_keys` order). A video holds
T + 1 frames for an episode of T steps: the observation before every action, then the final one.

The cameras are the user's (`cameras=...` in the env options) or, for a task the user runs without
cameras (a state-based policy), the task's `DEFAULT_CAMERA` added (VIDEO_IMAGE_SIZE pixels square) for
the recorded episodes only: the
actor still reads only its own keys (`PolicyActor` its input features, experts the state), so it acts
as it does without the camera. The recorded episodes are extra rollouts of seeds the evaluation
already ran; the evaluation is not changed by them, and `videos.json` says whether each recorded
episode matched the evaluation's episode on the same seed (success, return, length).

Videos are AV1 by default (LeRobot's codec; Chromium and Firefox play it), or H.264.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from mimetic.actors import Actor
from mimetic.data.episode import Episode
from mimetic.data.io import atomic_write_json, read_json
from mimetic.errors import MimeticError
from mimetic.features import camera_of, image_keys, is_image_key

VIDEO_EPISODES = 4  # episodes recorded by default
VIDEO_CODECS = ("av1", "h264")  # codecs browsers play (HEVC is not played by Chromium)
MANIFEST = "videos.json"
VIDEO_IMAGE_SIZE = 128  # frame size of a camera added for the videos (the task's own size where the user sets one)


def render_options(env: str, env_options: Mapping | None) -> tuple[dict, bool]:
    """Env options that render: the user's own (if they name cameras), or with the task's DEFAULT_CAMERA
    added (at VIDEO_IMAGE_SIZE unless `image_size` is given: no policy sees it); and whether the camera was added.
    A task without cameras is a one-line error."""
    options = dict(env_options or {})
    if options.get("cameras"):
        return options, False
    from mimetic.envs import _resolve

    camera = getattr(_resolve(env)[0], "DEFAULT_CAMERA", None)
    if camera is None:
        raise MimeticError(f"--video: environment {env!r} cannot render (it has no camera), so it has no videos")
    options["cameras"] = camera
    options.setdefault("image_size", VIDEO_IMAGE_SIZE)
    return options, True


def episode_frames(ep: Episode, where: str = "episode") -> np.ndarray:
    """The frames of one episode, uint8 (T + 1, H, W, 3): every camera side by side, the final observation last
    (T frames if the episode did not keep it)."""
    keys = [k for k in ep.obs if is_image_key(k)]
    if not keys:
        raise MimeticError(f"{where}: the episode has no camera frames (it has {sorted(ep.obs)})")
    keys = sorted(keys)
    per_key = []
    for k in keys:
        frames = ep.obs[k]
        if ep.final_obs is not None and k in ep.final_obs:
            frames = np.concatenate([frames, ep.final_obs[k][None]])
        per_key.append(frames)
    return side_by_side(per_key)


def side_by_side(images: Sequence[np.ndarray], gap: int = 0) -> np.ndarray:
    """uint8 arrays (..., H_i, W_i, 3) joined along the width, padded (black) to the tallest, with `gap`
    black columns between them."""
    height = max(a.shape[-3] for a in images)
    parts = []
    for i, a in enumerate(images):
        pad = [(0, 0)] * (a.ndim - 3) + [(0, height - a.shape[-3]), (0, gap if i < len(images) - 1 else 0), (0, 0)]
        parts.append(np.pad(a, pad))
    return np.concatenate(parts, axis=-2)


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad to an even height and width (yuv420p needs them)."""
    h, w = frames.shape[1:3]
    return np.pad(frames, [(0, 0), (0, h % 2), (0, w % 2), (0, 0)]) if h % 2 or w % 2 else frames


def _clear_previous(out: Path) -> None:
    """Remove the videos a previous recording listed in `out` (and nothing else)."""
    old = out / MANIFEST
    if not old.is_file():
        return
    try:
        listed = [e["file"] for e in read_json(old, "videos").get("episodes", [])]
    except (MimeticError, KeyError, TypeError, AttributeError):
        return
    for name in listed:
        if isinstance(name, str) and Path(name).name == name:
            (out / name).unlink(missing_ok=True)


def record_videos(
    actor: Actor,
    env: str,
    seeds: Sequence[int],
    out: str | Path,
    *,
    env_options: Mapping | None = None,
    num_envs: int = 16,
    codec: str = "av1",
    workers: int | None = None,
    evaluation=None,
    progress: bool = False,
) -> dict:
    """Record one episode per seed as MP4 in `out`; write and return the manifest (`videos.json`).

    `evaluation`: the EvalResult whose first seeds these are, to record whether each video shows the episode
    it evaluated (same success, return and length)."""
    from mimetic.data.video import encode_video
    from mimetic.rollout import run_episodes
    from mimetic.workers import open_envs

    if codec not in VIDEO_CODECS:
        raise MimeticError(f"--video-codec must be one of {', '.join(VIDEO_CODECS)}, got {codec!r}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise MimeticError("--video-episodes must be at least 1")
    options, added = render_options(env, env_options)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MimeticError(f"--video {out}: exists and is not a folder")
    with open_envs(env, max(1, min(num_envs, len(seeds))), env_options=options, workers=workers) as envs:
        fps = envs.info.sizes.fps
        cameras = [camera_of(k) for k in image_keys(envs.info.sizes.features)]
        episodes = run_episodes(envs, actor, seeds, progress=progress, desc=f"video {env}")
    out.mkdir(parents=True, exist_ok=True)
    _clear_previous(out)
    entries = []
    for seed, ep in zip(seeds, episodes):
        frames = _even(episode_frames(ep, f"--video: {env} seed {seed}"))
        name = f"episode-{seed}-{'success' if ep.success else 'failure'}.mp4"
        encode_video(out / name, frames, fps, codec=codec)
        entry = {"seed": seed, "success": ep.success, "return": ep.ret, "length": len(ep), "frames": len(frames),
                 "file": name}
        if evaluation is not None and seed - evaluation.seed in range(len(evaluation.successes)):
            i = seed - evaluation.seed
            entry["same_as_evaluation"] = bool(evaluation.successes[i] == ep.success and evaluation.lengths[i] == len(ep)
                                               and np.isclose(evaluation.returns[i], ep.ret, rtol=1e-6, atol=1e-6))
        entries.append(entry)
    manifest = {
        "env": env,
        "env_options": dict(env_options or {}),
        "cameras": cameras,
        "camera_added": added,  # the task's default camera, added for the videos only
        "layout": "cameras side by side" if len(cameras) > 1 else "one camera",
        "fps": fps,
        "codec": codec,
        "frames": "episode length + 1: the observation before each action, then the final observation",
        "episodes": entries,
    }
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def format_videos(manifest: dict, out: str | Path) -> str:
    """One line: where the videos are and what they show."""
    eps = manifest["episodes"]
    wins = sum(e["success"] for e in eps)
    cams = ", ".join(manifest["cameras"]) + (" (added for the videos)" if manifest["camera_added"] else "")
    differ = [str(e["seed"]) for e in eps if e.get("same_as_evaluation") is False]
    note = f"; seeds {', '.join(differ)} differ from the evaluation's episodes" if differ else ""
    return f"videos: {len(eps)} episodes ({wins} successes), camera {cams} -> {Path(out) / MANIFEST}{note}"
