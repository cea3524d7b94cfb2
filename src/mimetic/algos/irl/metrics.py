"""How good a learned reward is: correlation with the true reward, the expected value difference
(EVD), transfer to a changed world against tabular behavioural cloning, and `reward_report` (what
`mimetic reward RUN` prints). All values are exact expectations by dynamic programming."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mimetic.algos.irl.demos import Demonstrations
from mimetic.errors import MimeticError
from mimetic.tabular import Transitions, expected_return, optimal_policy, soft_value_iteration

PLOT_FILE = "reward.png"


def reward_correlation(learned: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """(Pearson, Spearman) correlation between a learned and the true state reward (nan if one is constant)."""
    from scipy import stats

    learned, true = np.asarray(learned, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if learned.shape != true.shape:
        raise MimeticError(f"learned reward has shape {learned.shape} but the true reward {true.shape}")
    if np.ptp(learned) == 0 or np.ptp(true) == 0:
        return float("nan"), float("nan")
    return float(stats.pearsonr(learned, true)[0]), float(stats.spearmanr(learned, true)[0])


def expected_value_difference(P: np.ndarray, true_reward: np.ndarray, learned_reward: np.ndarray, start_distribution: np.ndarray, horizon: int) -> float:
    """EVD = V_true(optimal policy for the true reward) - V_true(optimal policy for the learned reward).

    Values are exact expected undiscounted returns over `horizon` steps from the start distribution;
    both policies are the deterministic finite-horizon optimal policies, so EVD >= 0.
    """
    best = optimal_policy(P, true_reward, horizon=horizon)
    learned = optimal_policy(P, learned_reward, horizon=horizon)
    return expected_return(P, true_reward, best, start_distribution, horizon) - expected_return(P, true_reward, learned, start_distribution, horizon)


def bc_policy(demonstrations: Demonstrations) -> np.ndarray:
    """Tabular behavioural cloning: action frequencies per state from the demonstrations, uniform where unseen."""
    counts = demonstrations.state_action_counts()
    total = counts.sum(axis=1, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1.0), 1.0 / demonstrations.n_actions)


def transfer_experiment(
    world, weights: np.ndarray, demonstrations: Demonstrations, changes: dict, *, gamma: float = 0.9, expert_temperature: float = 0.5
) -> dict:
    """Apply a learned linear reward in a changed objectworld and compare true returns.

    `world` is an `Objectworld` (or its env); `changes` are options for `world.changed`, e.g.
    {"wind": 0.6} (changed dynamics), {"layout_seed": 7} (a new layout, same features and reward rule) or
    {} (the training world). Returns the exact expected true returns (uniform start distribution,
    undiscounted, over the horizon) in the changed world of:
      irl       the optimal policy for the learned reward (re-planned in the changed world),
      irl_soft  the soft policy for the learned reward (gamma), i.e. the IRL model of the expert,
      bc        tabular behavioural cloning from the demonstrations (`bc_policy`),
      expert    the soft expert re-planned with the true reward (gamma, expert_temperature),
      optimal   the optimal policy, and random, the uniform policy;
    plus `<name>_normalized` = (return - random) / (optimal - random).
    """
    world = getattr(world, "world", world)
    new = world.changed(**changes)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (new.n_features,):
        raise MimeticError(f"learned weights have shape {weights.shape} but the changed world has {new.n_features} features")
    if demonstrations.n_states != new.n_states:
        raise MimeticError(f"demonstrations have {demonstrations.n_states} states but the changed world {new.n_states}: BC cannot be applied")
    P = Transitions(new.transition_matrix)
    r, rho, T = new.true_reward, new.start_distribution, new.horizon
    learned = new.features @ weights

    def ret(policy: np.ndarray) -> float:
        return expected_return(P, r, policy, rho, T)

    out = {
        "changes": dict(changes),
        "irl": ret(optimal_policy(P, learned, horizon=T)),
        "irl_soft": ret(soft_value_iteration(P, learned, gamma=gamma)),
        "bc": ret(bc_policy(demonstrations)),
        "expert": ret(soft_value_iteration(P, r / expert_temperature, gamma=gamma)),
        "optimal": ret(optimal_policy(P, r, horizon=T)),
        "random": ret(np.full((new.n_states, new.n_actions), 1.0 / new.n_actions)),
    }
    span = out["optimal"] - out["random"]
    for k in ("irl", "irl_soft", "bc", "expert"):
        out[f"{k}_normalized"] = (out[k] - out["random"]) / span if span > 1e-12 else 1.0
    return out


# ============================================================================ runs on disk
def reward_report(run_dir: str | Path, env_options: dict | None = None, plot: bool | str | Path = True,
                  env: str | None = None) -> dict:
    """Compare a learned reward with the true reward of its world (or of the world `env` /
    `env_options`: the run's env with other options, or another tabular env with the same features;
    see `LearnedReward.world`).

    Returns pearson, spearman, evd (see `expected_value_difference`), the true returns of the
    optimal policies for the learned and the true reward, and `plot`: the path of a heat map
    (true | learned) saved as PNG: `plot` if it is a path, else `reward.png` in `run_dir` (None with
    plot=False).
    """
    from mimetic.algos.irl.plots import save_reward_heatmap
    from mimetic.algos.irl.reward import load_reward

    run_dir = Path(run_dir)
    learned = load_reward(run_dir)
    name, options = learned.resolve(env, env_options)
    world = learned.world(name, options)
    r_learned = learned.in_world(world)
    P, r_true, rho, T = Transitions(world.transition_matrix), world.true_reward, world.start_distribution, world.horizon
    pearson, spearman = reward_correlation(r_learned, r_true)
    best = expected_return(P, r_true, optimal_policy(P, r_true, horizon=T), rho, T)
    mine = expected_return(P, r_true, optimal_policy(P, r_learned, horizon=T), rho, T)
    report = {
        "env": name,
        "env_options": options,
        "pearson": pearson,
        "spearman": spearman,
        "evd": best - mine,
        "optimal_return": best,
        "learned_policy_return": mine,
        "plot": None,
    }
    if plot is not False:
        path = run_dir / PLOT_FILE if plot is True else Path(plot)
        report["plot"] = str(save_reward_heatmap(path, r_true, r_learned, world, title=f"{name} {options}"))
    return report
