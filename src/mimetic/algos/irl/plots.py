"""Pictures of a learned reward: true and learned rewards side by side as heat maps of the grid."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mimetic.errors import MimeticError


def save_reward_heatmap(path: str | Path, true_reward: np.ndarray, learned_reward: np.ndarray, world=None, title: str = "") -> Path:
    """Save true and learned rewards side by side as square heat maps (PNG, Agg; no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mimetic.data.io import atomic_write_bytes

    n = int(round(np.sqrt(len(true_reward))))
    if n * n != len(true_reward):
        raise MimeticError(f"cannot draw a heat map of {len(true_reward)} states: not a square grid")
    fig = Figure(figsize=(8.5, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    world = getattr(world, "world", world)  # an objectworld env or an Objectworld: draw its objects
    if not hasattr(world, "object_cells"):
        world = None
    for i, (name, r) in enumerate((("true reward", true_reward), ("learned reward", learned_reward))):
        ax = fig.add_subplot(1, 2, i + 1)
        im = ax.imshow(np.asarray(r).reshape(n, n), cmap="viridis", origin="upper")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if world is not None:
            xy = world.xy(world.object_cells)
            for c, marker in zip(range(world.config.n_colours), "osD^v<>p*h"):
                sel = world.object_colours == c
                ax.scatter(xy[sel, 0], xy[sel, 1], marker=marker, facecolors="none", edgecolors=f"C{c + 1}", s=40, label=f"colour {c}")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    if world is not None:
        fig.axes[0].legend(loc="lower left", fontsize=7, framealpha=0.6)
    if title:
        fig.suptitle(title, fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path

