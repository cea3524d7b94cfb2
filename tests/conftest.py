import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)  # small networks: one thread is faster, and the suite runs on 2 cores


@pytest.fixture(scope="session")
def reach_demos(tmp_path_factory):
    """50 expert demonstrations of `reach` on disk (shared, read-only)."""
    from mimetic.collect import collect

    root = tmp_path_factory.mktemp("reach") / "demos"
    collect("reach", root, 50, seed=0, progress=False)
    return root


def make_episode(T=5, d=3, a=2, seed=0, **kw):
    from mimetic.data import Episode

    rng = np.random.default_rng(seed)
    return Episode(rng.normal(size=(T, d)), rng.normal(size=(T, a)), rng.normal(size=T), np.arange(T) == T - 1, **kw)
