"""Comparison statistics (spread over training seeds, paired tests) and where mean return is reported,
checked on cases small enough to compute by hand."""

import math

import pytest

from mimetic.analysis.compare import format_table, paired_tests, summarize_method
from mimetic.analysis.stats import mcnemar_exact, paired_seed_difference, t_interval
from mimetic.errors import MimeticError


def test_t_interval_by_hand():
    # mean 0.6, sample sd 0.1, t(0.975, 2 dof) = 4.302653: half-width 4.302653 * 0.1 / sqrt(3) = 0.248414
    lo, hi = t_interval([0.5, 0.6, 0.7])
    assert math.isclose(lo, 0.6 - 0.248414, abs_tol=1e-5) and math.isclose(hi, 0.6 + 0.248414, abs_tol=1e-5)
    # two seeds: t(0.975, 1) = 12.7062, half-width 12.7062 * 0.1414 / 1.4142 = 1.27: clipped to [0, 1]
    assert t_interval([0.2, 0.4]) == (0.0, 1.0)
    assert t_interval([0.2, 0.4], bounds=None)[1] == pytest.approx(0.3 + 12.7062 * 0.1, abs=1e-3)
    assert t_interval([0.7]) is None  # one seed: no spread to estimate


def test_mcnemar_exact_by_hand():
    # discordant pairs: A only at episodes 0, 1, 2; B only at 4 -> 3 of 4, two-sided P(X<=1 or X>=3) = 10/16
    r = mcnemar_exact([1, 1, 1, 0, 0, 1], [0, 0, 0, 0, 1, 1])
    assert (r["a_only"], r["b_only"], r["both"], r["neither"]) == (3, 1, 1, 1)
    assert r["p_value"] == pytest.approx(10 / 16)
    assert mcnemar_exact([1] * 6, [0] * 6)["p_value"] == pytest.approx(2 / 64)  # 6 of 6: 2 * 0.5**6
    assert mcnemar_exact([1, 0, 1], [1, 0, 1])["p_value"] == 1.0  # no discordant pair: no evidence either way
    with pytest.raises(MimeticError, match="same length"):
        mcnemar_exact([1, 0], [1])


def test_paired_seed_difference_by_hand():
    d = paired_seed_difference([0.8, 0.6, 0.7], [0.5, 0.5, 0.5])
    assert d["per_seed"] == pytest.approx([0.3, 0.1, 0.2]) and d["mean"] == pytest.approx(0.2)
    assert d["ci95"][0] == pytest.approx(0.2 - 0.248414, abs=1e-5)  # sd 0.1 over 3 seeds, as above


def _eval(successes, seed):
    return {"success_rate": sum(successes) / len(successes), "episodes": len(successes), "successes": successes,
            "mean_return": 1.0, "return_comparable": True, "return_note": "", "train_seed": seed, "policy": f"run{seed}"}


def test_compare_summary_counts_seeds_not_episodes():
    """Two seeds that disagree completely (0.0 and 1.0 over 10 episodes each): the pooled Wilson interval
    ([0.30, 0.70]) looks tight, while the spread over seeds says one more run could land anywhere."""
    a = [_eval([0] * 10, 0), _eval([1] * 10, 1)]
    row = summarize_method("a", a)
    assert row["success_per_seed"] == [0.0, 1.0] and row["success_mean"] == 0.5
    assert row["success_std"] == pytest.approx(math.sqrt(0.5))
    assert row["ci95_seeds"] == [0.0, 1.0]  # 0.5 +- 12.7 * 0.707 / 1.414, clipped
    lo, hi = row["ci95_pooled"]
    assert 0.28 < lo < 0.32 and 0.68 < hi < 0.72  # Wilson for 10 of 20
    # a method that fails where `a` succeeds on seed 1, and succeeds on 2 episodes where it fails on seed 0
    b = [_eval([1, 1] + [0] * 8, 0), _eval([0] * 10, 1)]
    (p,) = paired_tests(["a", "b"], {"a": a, "b": b})
    assert (p["a"], p["b"], p["a_only"], p["b_only"]) == ("a", "b", 10, 2)
    assert p["diff_per_seed"] == pytest.approx([-0.2, 1.0]) and p["diff_mean"] == pytest.approx(0.4)
    # two-sided exact binomial, 10 of 12: 2 * (1 + 12 + 66) / 4096
    assert p["p_value"] == pytest.approx(2 * 79 / 4096)
    with pytest.raises(MimeticError, match="different episodes"):
        paired_tests(["a", "b"], {"a": a, "b": [_eval([1] * 5, 0), _eval([0] * 5, 1)]})


def test_compare_table_hides_a_return_that_does_not_compare():
    runs = [dict(_eval([1, 0], 0), return_comparable=False, return_note="episodes end at the first success"),
            dict(_eval([1, 1], 1), return_comparable=False, return_note="episodes end at the first success")]
    result = {"env": "metaworld/push-v3", "dataset": "d", "dataset_episodes": 10, "seeds": [0, 1], "episodes": 2,
              "eval_seed": 1_000_000, "options": {}, "results": [summarize_method("bc", runs)], "paired": [],
              "expert": {"success_rate": 1.0, "ci95": [0.3, 1.0], "mean_return": 5.0, "episodes": 2,
                         "return_comparable": False, "return_note": "episodes end at the first success"}}
    md = format_table(result)
    rows = [line for line in md.splitlines() if line.startswith("| bc |") or line.startswith("| expert")]
    assert len(rows) == 2 and all(r.rstrip().endswith("| n/a |") for r in rows)
    assert "not comparable on this task (n/a): episodes end at the first success" in md
    result["results"] = [summarize_method("bc", [_eval([1, 0], 0), _eval([1, 1], 1)])]
    result["expert"].update(return_comparable=True, return_note="fixed 500-step episodes")
    md = format_table(result)
    assert "| 1.00 |" in md and "Mean return: fixed 500-step episodes." in md
