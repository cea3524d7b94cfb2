"""Statistics for comparing trained policies: spread over training seeds, and paired tests.

A comparison trains every method with several training seeds and evaluates every run on the same
evaluation seeds. Two sources of noise enter a success rate: the evaluation episodes (a Wilson
interval of one run covers that) and the training seed (which policy came out). Pooling all
seeds x episodes into one Wilson interval treats them as independent draws and ignores the second,
so the interval is too narrow whenever runs differ. Here:

- `t_interval`: the mean of per-seed values with a Student-t interval over seeds (each seed one
  observation): the spread a new training run would show.
- `paired_seed_difference`: method A minus method B per training seed (paired: same seed, same
  evaluation episodes), its mean and t-interval over seeds.
- `mcnemar_exact`: McNemar's exact test on paired episodes (the same evaluation seed, the same
  training seed index): only the discordant pairs (A succeeded and B failed, or the reverse) carry
  information, and under "A and B are equally good" each discordant pair is a fair coin, so the
  two-sided p-value is the binomial test of the A-only count against half the discordant pairs.
  Pooling episodes over training seeds treats the seeds' episodes as one paired sample; the
  seed-level difference above is the check that does not.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from mimetic.errors import MimeticError


def t_interval(values: Sequence[float], level: float = 0.95, bounds: tuple[float, float] | None = (0.0, 1.0)
               ) -> tuple[float, float] | None:
    """Student-t interval for the mean of `values` (one per training seed), clipped to `bounds`;
    None with fewer than two values (no spread to estimate)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return None
    half = float(t.ppf(0.5 + level / 2, len(x) - 1)) * float(x.std(ddof=1)) / math.sqrt(len(x))
    lo, hi = float(x.mean()) - half, float(x.mean()) + half
    if bounds is not None:
        lo, hi = max(bounds[0], lo), min(bounds[1], hi)
    return (lo, hi)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """McNemar's exact test on paired binary outcomes a[i], b[i] (the same episode for two policies).

    Returns the counts of a-only successes, b-only successes, both, neither, and the two-sided
    p-value (1.0 when no pair is discordant)."""
    from scipy.stats import binomtest

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise MimeticError(f"mcnemar: paired outcomes must have the same length, got {a.shape} and {b.shape}")
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = a_only + b_only
    p = float(binomtest(a_only, n, 0.5).pvalue) if n else 1.0
    return {"a_only": a_only, "b_only": b_only, "both": int(np.sum(a & b)), "neither": int(np.sum(~a & ~b)),
            "p_value": p}


def paired_seed_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """Per-seed differences a[s] - b[s] (success rates of two methods with the same training seed),
    their mean and t-interval over seeds (None with one seed)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) == 0:
        raise MimeticError("paired difference: no training seeds")
    return {"per_seed": d.tolist(), "mean": float(d.mean()), "ci95": t_interval(d, level, bounds=(-1.0, 1.0))}
