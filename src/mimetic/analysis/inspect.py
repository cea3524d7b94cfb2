"""`mimetic inspect DIR`: what a dataset holds: episodes, lengths, success, per-dimension
statistics, its cameras (shape, storage), and plots (state/action histograms per dimension, a few
trajectories over time, and per camera a strip of frames of the first episodes, `frames_<camera>.png`).

A dataset without `observation.state` (cameras only) has no state statistics or state plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mimetic.data.dataset import Dataset, feature_stats
from mimetic.features import STATE, camera_of

TRAJECTORIES = 5  # episodes drawn in the trajectory plots
STRIP_EPISODES = 3  # episodes (rows) in a camera's frame strip
STRIP_FRAMES = 8  # evenly spaced frames (columns) per episode, first and last included


def _dim_stats(x: np.ndarray) -> dict:
    s = feature_stats(x) if len(x) else {k: [] for k in ("mean", "std", "min", "max")}
    return {k: [float(v) for v in s[k]] for k in ("mean", "std", "min", "max")}


def strip_indices(length: int, n: int = STRIP_FRAMES) -> list[int]:
    """`n` evenly spaced step indices of an episode of `length` steps, the first and last included (fewer if shorter)."""
    return sorted({int(round(x)) for x in np.linspace(0, length - 1, min(n, length))}) if length else []


def frame_strip(path: str | Path, ds: Dataset, key: str, episodes: int = STRIP_EPISODES, n: int = STRIP_FRAMES) -> Path:
    """A PNG grid of camera `key`: one row per episode (the first `episodes`), `n` evenly spaced frames each."""
    from mimetic.data.io import atomic_write_bytes
    from mimetic.data.video import encode_png
    from mimetic.videos import side_by_side

    frames = ds.frames(key)
    rows = []
    for e in range(min(episodes, ds.num_episodes)):
        s, t = int(ds.episode_starts[e]), int(ds.episode_ends[e])
        rows.append(side_by_side([frames[s + i] for i in strip_indices(t - s, n)], gap=2))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, [(0, 2), (0, width - r.shape[1]), (0, 0)]) for r in rows]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, encode_png(np.ascontiguousarray(np.concatenate(rows)[:-2])))
    return path.resolve()


def inspect_dataset(root: str | Path, out: str | Path | None = None) -> dict:
    """Summary of the dataset at `root` (JSON-ready); with `out`, also PNG plots in that folder (paths under "plots")."""
    ds = Dataset.load(root)
    lengths = ds.episode_lengths()
    succ = ds.episode_success()
    has_state = STATE in ds.observation_keys
    feats = ds.features
    summary = {
        "dataset": str(Path(root).resolve()),
        "env": ds.env_name,
        "env_options": ds.env_options,
        "episodes": int(ds.num_episodes),
        "frames": int(ds.num_frames),
        "obs_dim": int(ds.obs_dim) if has_state else None,
        "act_dim": int(ds.act_dim),
        "fps": int(ds.fps),
        "cameras": [{"camera": camera_of(k), "key": k, "shape": list(feats[k].shape),
                     "storage": "video" if ds.info["features"][k].get("dtype") == "video" else "png"}
                    for k in ds.image_keys],
        "length": {"min": int(lengths.min()), "mean": float(lengths.mean()), "max": int(lengths.max())} if len(lengths) else None,
        "success_rate": float(succ.mean()) if len(succ) else None,
        "mean_return": float(np.mean([ds.rewards[s:e].sum() for s, e in zip(ds.episode_starts, ds.episode_ends)])) if len(lengths) else None,
        "observation": _dim_stats(ds.observations) if has_state else None,
        "action": _dim_stats(ds.actions),
        "plots": {},
    }
    if out is not None and ds.num_frames:
        from mimetic.analysis import plots

        out = Path(out)
        name = ds.env_name or Path(root).name
        eps = range(min(TRAJECTORIES, ds.num_episodes))
        parts = {"observation": ds.observations} if has_state else {}
        parts["action"] = ds.actions
        for part, x in parts.items():
            short = "obs" if part == "observation" else "act"
            summary["plots"][f"{part}_hist"] = str(plots.histograms(out / f"{part}_hist.png", {"expert": x},
                                                                    f"{name}: {part}s", short))
            summary["plots"][f"{part}_traj"] = str(plots.trajectories(
                out / f"{part}_traj.png", [x[ds.episode_starts[i]:ds.episode_ends[i]] for i in eps],
                f"{name}: {part}s over time (first {len(eps)} episodes)", short))
        for cam in summary["cameras"]:
            summary["plots"][f"frames_{cam['camera']}"] = str(frame_strip(out / f"frames_{cam['camera']}.png", ds, cam["key"]))
    return summary


def format_summary(s: dict) -> str:
    """The human table printed by `mimetic inspect`."""
    obs = f"obs {s['obs_dim']}-d" if s["obs_dim"] is not None else "no observation.state"
    lines = [f"{s['dataset']}: env {s['env']}, {s['episodes']} episodes, {s['frames']} frames, "
             f"{obs}, action {s['act_dim']}-d, {s['fps']} fps"]
    for cam in s.get("cameras") or []:
        lines.append(f"camera {cam['camera']} ({cam['key']}): {'x'.join(map(str, cam['shape']))} uint8, stored as {cam['storage']}")
    if s["length"]:
        L = s["length"]
        lines.append(f"length min {L['min']} mean {L['mean']:.1f} max {L['max']}; success rate {s['success_rate']:.3f}; "
                     f"mean return {s['mean_return']:.3f}")
    for key in ("observation", "action"):
        st = s[key]
        if st is None:
            continue
        lines.append(f"{key:<11}  dim      mean       std       min       max")
        for j in range(len(st["mean"])):
            lines.append(f"{'':<11}  {j:>3} {st['mean'][j]:>9.4f} {st['std'][j]:>9.4f} {st['min'][j]:>9.4f} {st['max'][j]:>9.4f}")
    for k, p in s["plots"].items():
        lines.append(f"plot {k}: {p}")
    return "\n".join(lines)
