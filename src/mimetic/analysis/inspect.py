"""`mimetic inspect DIR`: what a dataset holds: episodes, lengths, success, per-dimension
statistics, and plots (state/action histograms per dimension, a few trajectories over time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mimetic.data.dataset import Dataset, feature_stats

TRAJECTORIES = 5  # episodes drawn in the trajectory plots


def _dim_stats(x: np.ndarray) -> dict:
    s = feature_stats(x) if len(x) else {k: [] for k in ("mean", "std", "min", "max")}
    return {k: [float(v) for v in s[k]] for k in ("mean", "std", "min", "max")}


def inspect_dataset(root: str | Path, out: str | Path | None = None) -> dict:
    """Summary of the dataset at `root` (JSON-ready); with `out`, also PNG plots in that folder (paths under "plots")."""
    ds = Dataset.load(root)
    lengths = ds.episode_lengths()
    succ = ds.episode_success()
    summary = {
        "dataset": str(Path(root).resolve()),
        "env": ds.env_name,
        "env_options": ds.env_options,
        "episodes": int(ds.num_episodes),
        "frames": int(ds.num_frames),
        "obs_dim": int(ds.obs_dim),
        "act_dim": int(ds.act_dim),
        "fps": int(ds.fps),
        "length": {"min": int(lengths.min()), "mean": float(lengths.mean()), "max": int(lengths.max())} if len(lengths) else None,
        "success_rate": float(succ.mean()) if len(succ) else None,
        "mean_return": float(np.mean([ds.rewards[s:e].sum() for s, e in zip(ds.episode_starts, ds.episode_ends)])) if len(lengths) else None,
        "observation": _dim_stats(ds.observations),
        "action": _dim_stats(ds.actions),
        "plots": {},
    }
    if out is not None and ds.num_frames:
        from mimetic.analysis import plots

        out = Path(out)
        name = ds.env_name or Path(root).name
        eps = range(min(TRAJECTORIES, ds.num_episodes))
        summary["plots"] = {
            "observation_hist": str(plots.histograms(out / "observation_hist.png", {"expert": ds.observations},
                                                     f"{name}: observations", "obs")),
            "action_hist": str(plots.histograms(out / "action_hist.png", {"expert": ds.actions}, f"{name}: actions", "act")),
            "observation_traj": str(plots.trajectories(out / "observation_traj.png",
                                                       [ds.observations[ds.episode_starts[i]:ds.episode_ends[i]] for i in eps],
                                                       f"{name}: observations over time (first {len(eps)} episodes)", "obs")),
            "action_traj": str(plots.trajectories(out / "action_traj.png",
                                                  [ds.actions[ds.episode_starts[i]:ds.episode_ends[i]] for i in eps],
                                                  f"{name}: actions over time (first {len(eps)} episodes)", "act")),
        }
    return summary


def format_summary(s: dict) -> str:
    """The human table printed by `mimetic inspect`."""
    lines = [f"{s['dataset']}: env {s['env']}, {s['episodes']} episodes, {s['frames']} frames, "
             f"obs {s['obs_dim']}-d, action {s['act_dim']}-d, {s['fps']} fps"]
    if s["length"]:
        L = s["length"]
        lines.append(f"length min {L['min']} mean {L['mean']:.1f} max {L['max']}; success rate {s['success_rate']:.3f}; "
                     f"mean return {s['mean_return']:.3f}")
    for key in ("observation", "action"):
        st = s[key]
        lines.append(f"{key:<11}  dim      mean       std       min       max")
        for j in range(len(st["mean"])):
            lines.append(f"{'':<11}  {j:>3} {st['mean'][j]:>9.4f} {st['std'][j]:>9.4f} {st['min'][j]:>9.4f} {st['max'][j]:>9.4f}")
    for k, p in s["plots"].items():
        lines.append(f"plot {k}: {p}")
    return "\n".join(lines)
