"""Plots shared by inspect, compare, shift and report. Every function writes one PNG atomically and
returns its path; matplotlib runs headless (Agg) and is imported only here."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from mimetic.data.io import atomic_write_bytes

MAX_DIMS = 16  # histogram panels per figure; higher dimensions are listed in the tables only


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path.resolve()


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, max(1, n))
    return math.ceil(n / cols), cols


def _dim_panels(d: int):
    """A figure with one panel per dimension (at most MAX_DIMS): (fig, the used axes in order, how many)."""
    plt = _plt()
    shown = min(d, MAX_DIMS)
    rows, cols = _grid(shown)
    fig, grid = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False, layout="constrained")
    flat = [ax for row in grid for ax in row]
    for ax in flat[shown:]:
        ax.axis("off")
    return fig, flat[:shown], shown


def histograms(path: str | Path, series: dict[str, np.ndarray], title: str, prefix: str = "dim") -> Path:
    """One panel per dimension (at most MAX_DIMS); each series (label -> (N, d)) overlaid as a density histogram."""
    d = next(iter(series.values())).shape[1]
    fig, axes, shown = _dim_panels(d)
    for j, ax in enumerate(axes):
        lo = min(float(np.min(x[:, j])) for x in series.values() if len(x))
        hi = max(float(np.max(x[:, j])) for x in series.values() if len(x))
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 31)
        for label, x in series.items():
            if len(x):
                ax.hist(x[:, j], bins=bins, density=True, alpha=0.5, label=label)
        ax.set_title(f"{prefix} {j}", fontsize=9)
        ax.tick_params(labelsize=7)
    if len(series) > 1:
        axes[0].legend(fontsize=7)
    more = f" (first {shown} of {d} dims)" if d > shown else ""
    fig.suptitle(title + more, fontsize=10)
    return _save(fig, path)


def trajectories(path: str | Path, episodes: Sequence[np.ndarray], title: str, prefix: str = "dim") -> Path:
    """Each dimension over time (one panel per dimension, at most MAX_DIMS), one line per episode."""
    d = episodes[0].shape[1]
    fig, axes, shown = _dim_panels(d)
    for j, ax in enumerate(axes):
        for k, x in enumerate(episodes):
            ax.plot(np.arange(len(x)), x[:, j], lw=1, label=f"episode {k}")
        ax.set_title(f"{prefix} {j}", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.supxlabel("step", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def bar_chart(path: str | Path, labels: Sequence[str], values: Sequence[float], ci: Sequence[tuple[float, float]],
              points: Sequence[Sequence[float]] | None, title: str, ylabel: str = "success rate") -> Path:
    """Bars with asymmetric error bars (confidence intervals) and, optionally, one dot per training seed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(labels) + 2), 3.5))
    x = np.arange(len(labels))
    v = np.asarray(values, float)
    err = np.array([[vi - lo for vi, (lo, _) in zip(v, ci)], [hi - vi for vi, (_, hi) in zip(v, ci)]])
    ax.bar(x, v, yerr=np.clip(err, 0, None), capsize=6, color="tab:blue", alpha=0.7)
    if points is not None:
        for xi, pts in zip(x, points):
            ax.scatter(np.full(len(pts), xi) + np.linspace(-0.15, 0.15, len(pts)), pts, color="black", s=12, zorder=3)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def curves(path: str | Path, runs: dict[str, list[list[dict]]], keys: Sequence[str], title: str) -> Path:
    """Learning curves: one panel per metric key; runs maps a label to its seeds' metric rows."""
    plt = _plt()
    keys = [k for k in keys if any(k in r for seeds in runs.values() for rows in seeds for r in rows)] or list(keys[:1])
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False, layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes[0], keys):
        for i, (label, seeds) in enumerate(runs.items()):
            for s, rows in enumerate(seeds):
                pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, color=colors[i % len(colors)], lw=1.2, alpha=0.8, label=label if s == 0 else None)
        ax.set_xlabel("step")
        ax.set_title(key, fontsize=9)
        if "loss" in key and all(r[key] > 0 for seeds in runs.values() for rows in seeds for r in rows if key in r):
            ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:  # a metric no run logged has nothing to label
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def scatter2d(path: str | Path, series: dict[str, np.ndarray], title: str, xlabel: str = "PC 1", ylabel: str = "PC 2") -> Path:
    """2-D scatter of several point sets (label -> (N, 2))."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for label, x in series.items():
        ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.35, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, markerscale=3)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)
