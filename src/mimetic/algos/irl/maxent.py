"""The MaxEnt IRL training loop (Ziebart et al. 2008; the causal, discounted form): `maxent_irl` on
arrays, `train_maxent_irl` from a dataset to a run folder, and the method interface (`Config`, `train`).

Everything here works on a tabular MDP given as arrays: transitions `P` (S, A, S), state features
(S, F), a start distribution (S,). Rewards are functions of the state, r(s), received in the state the
action is taken in, so an episode's return is sum_{t<T} r(s_t).

The model. The learner's policy is the soft-optimal policy of *discounted* soft value iteration
(`gamma`, temperature 1): Q(s,a) = r(s) + gamma * sum_s' P(s,a,s') V(s'), V(s) = log sum_a exp Q(s,a),
pi(a|s) = exp(Q(s,a) - V(s)). It is stationary, so a demonstrator that follows it can be an ordinary
actor of observations. (`soft_value_iteration(..., horizon=T)` also gives the finite-horizon,
time-dependent policy of Ziebart's original formulation, shape (T, S, A).)

The fit. The reward is linear in the features, r = features @ w (optionally plus a per-state term).
MaxEnt IRL ascends the dual of the discounted maximum-causal-entropy problem, whose gradient is
expert feature expectations minus the learner's expected feature expectations,
    grad = features^T (mu_E - mu_pi) - l2 * w,
where mu are state-visitation frequencies with step t weighted by gamma^t (`discount_visits=False`
uses plain counts), started from the demonstrations' empirical start distribution and truncated at
the demonstrations' length (so the reward that generated them stays a fixed point). mu_pi is computed
exactly by forward dynamic programming (`expected_svf`). The optimizer is Adam; the small L2 penalty
(default 0.1) keeps features that are constant on almost every cell from taking extreme weights.

The dynamic programming it uses (soft value iteration, expected visitation frequencies) lives in
`mimetic.tabular`; demonstrations in `demos`, the run folder in `reward`, metrics in `metrics`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mimetic.algos.irl.demos import Demonstrations, demonstrations_from_episodes, tabular_env
from mimetic.errors import MimeticError
from mimetic.tabular import check_mdp, expected_svf, soft_value_iteration


@dataclass
class MaxEntIRLConfig:
    gamma: float = 0.9  # discount of the learner's soft value iteration
    discount_visits: bool = True  # weight step t by gamma^t (discounted MaxCausalEnt); False: plain counts
    steps: int = 300  # Adam steps
    lr: float = 0.1
    l2: float = 0.1  # L2 penalty on the feature weights (keeps rarely-seen features from taking extreme weights)
    tabular: bool = False  # add a per-state reward term (L2-penalized by tabular_l2)
    tabular_l2: float = 1.0
    tol: float = 1e-5  # stop when the max |gradient| falls below this
    vi_tol: float = 1e-6  # soft value iteration stops when max |dV| < vi_tol (warm-started each step)
    # The fit has no randomness (exact dynamic programming from zero weights); the seed is the run's
    # own randomness: it seeds the sampling of the learned soft policy when the run is evaluated.
    seed: int = 0

    def validate(self) -> None:
        if not 0 <= self.gamma < 1:
            raise MimeticError(f"maxent-irl: gamma={self.gamma!r} must be in [0, 1)")
        if int(self.steps) != self.steps or self.steps < 1:
            raise MimeticError(f"maxent-irl: steps={self.steps!r} must be a positive integer")
        if not self.lr > 0:
            raise MimeticError(f"maxent-irl: lr={self.lr!r} must be > 0")
        if self.l2 < 0 or self.tabular_l2 < 0:
            raise MimeticError("maxent-irl: l2 and tabular_l2 must be >= 0")


@dataclass
class IRLResult:
    weights: np.ndarray  # (F,)
    reward: np.ndarray  # (S,) features @ weights (+ tabular)
    tabular: np.ndarray | None  # (S,) or None
    policy: np.ndarray  # (S, A) the learner's soft policy under the learned reward
    iterations: int
    grad_norms: list[float] = field(default_factory=list)  # max |gradient| per step
    seconds: float = 0.0


def maxent_irl(
    P: np.ndarray,
    features: np.ndarray,
    demonstrations: Demonstrations | np.ndarray,
    *,
    start_distribution: np.ndarray | None = None,
    horizon: int | None = None,
    config: MaxEntIRLConfig | None = None,
    progress: bool = False,
) -> IRLResult:
    """Fit a reward r = features @ w (+ tabular) by MaxEnt IRL (see the module docstring).

    `demonstrations` is either `Demonstrations`, or the expert's state-visitation frequencies (S,),
    per episode, with step t weighted by gamma^t if `config.discount_visits` (as
    `Demonstrations.state_visits(gamma)` computes them); then `start_distribution` and `horizon`
    are required. With `Demonstrations` they default to the empirical start distribution and the
    longest episode.
    """
    config = config or MaxEntIRLConfig()
    config.validate()
    P = check_mdp(P)
    S, A = P.S, P.A
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] != S:
        raise MimeticError(f"features have shape {features.shape}, expected ({S}, F) for {S} states")
    disc = config.gamma if config.discount_visits else 1.0
    if isinstance(demonstrations, Demonstrations):
        if demonstrations.n_states != S or demonstrations.n_actions != A:
            raise MimeticError(f"demonstrations have {demonstrations.n_states} states and {demonstrations.n_actions} actions, the MDP {S} and {A}")
        mu_E = demonstrations.state_visits(disc)
        start = demonstrations.start_distribution() if start_distribution is None else start_distribution
        weights_t = demonstrations.step_weights(disc)
        horizon = demonstrations.horizon if horizon is None else horizon
        if len(weights_t) != horizon:
            raise MimeticError(f"horizon={horizon} differs from the demonstrations' longest episode ({len(weights_t)} steps)")
    else:
        mu_E = np.asarray(demonstrations, dtype=np.float64)
        if mu_E.shape != (S,):
            raise MimeticError(f"expert state visits have shape {mu_E.shape}, expected ({S},)")
        if start_distribution is None or horizon is None:
            raise MimeticError("maxent_irl with state-visit counts needs start_distribution and horizon")
        start = start_distribution
        weights_t = disc ** np.arange(horizon)
    start = np.asarray(start, dtype=np.float64)

    t0 = time.perf_counter()
    F = features.shape[1]
    theta = np.zeros(F + (S if config.tabular else 0))
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    b1, b2, eps = 0.9, 0.999, 1e-8
    V = None
    grad_norms: list[float] = []

    def reward_of(th: np.ndarray) -> np.ndarray:
        return features @ th[:F] + (th[F:] if config.tabular else 0.0)

    from mimetic.progress import progress_bar

    bar = progress_bar(progress, total=config.steps, desc="maxent-irl", unit="step")
    it = 0
    for it in range(1, config.steps + 1):
        bar.update(1)
        policy, V = soft_value_iteration(P, reward_of(theta), gamma=config.gamma, V0=V, return_values=True, tol=config.vi_tol)
        mu = expected_svf(P, policy, start, horizon, weights_t)
        diff = mu_E - mu
        grad = features.T @ diff - config.l2 * theta[:F]
        if config.tabular:
            grad = np.concatenate([grad, diff - config.tabular_l2 * theta[F:]])
        gmax = float(np.max(np.abs(grad)))
        grad_norms.append(gmax)
        if gmax < config.tol:
            break
        # Adam ascent
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad**2
        theta = theta + config.lr * (m / (1 - b1**it)) / (np.sqrt(v / (1 - b2**it)) + eps)
    bar.close()
    reward = reward_of(theta)
    policy = soft_value_iteration(P, reward, gamma=config.gamma, V0=V)
    return IRLResult(
        weights=theta[:F].copy(),
        reward=reward,
        tabular=theta[F:].copy() if config.tabular else None,
        policy=policy,
        iterations=it,
        grad_norms=grad_norms,
        seconds=time.perf_counter() - t0,
    )



def train_maxent_irl(
    dataset,
    out_dir: str | Path,
    env_name: str | None = None,
    env_options: dict | None = None,
    config: MaxEntIRLConfig | None = None,
    progress: bool = False,
) -> IRLResult:
    """Learn a reward from a demonstration dataset (a folder or a `Dataset`) and save it in `out_dir`.

    `env_name` / `env_options` default to the environment recorded in the dataset (else
    "objectworld" with default options). Writes `reward.safetensors` (weights, reward[, tabular],
    with the run's record in its metadata), `train.json` and `metrics.jsonl`; no pickle (see `mimetic.algos.irl.reward`).
    """
    from mimetic.algos.irl.reward import METHOD, save_run
    from mimetic.data.dataset import Dataset

    ds = dataset if isinstance(dataset, Dataset) else Dataset.load(dataset)
    env_name = env_name or ds.env_name or "objectworld"
    env_options = dict(ds.env_options if env_options is None else env_options)
    config = config or MaxEntIRLConfig()
    env = tabular_env(env_name, env_options)
    demos = demonstrations_from_episodes(ds, env)
    result = maxent_irl(env.transition_matrix, env.features, demos, config=config, progress=progress)

    tensors = {"weights": result.weights, "reward": result.reward}
    if result.tabular is not None:
        tensors["tabular"] = result.tabular
    save_run(out_dir, tensors, {
        "method": METHOD,
        "config": asdict(config),
        "env": env_name,
        "env_options": env_options,
        "dataset": str(Path(ds.root).resolve()),  # as every other run records it (report finds it from any folder)
        "n_demonstrations": len(demos),
        "n_states": int(env.transition_matrix.shape[0]),
        "n_features": int(result.weights.shape[0]),
        "train": {"iterations": result.iterations, "final_max_grad": result.grad_norms[-1], "seconds": round(result.seconds, 3)},
    }, result.grad_norms)
    return result


# The method interface of `mimetic.algos` (METHODS: "maxent-irl" -> `mimetic.algos.irl`, which re-exports these).
Config = MaxEntIRLConfig


def train(cfg: MaxEntIRLConfig, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True) -> IRLResult:
    """`mimetic train maxent-irl`: see `train_maxent_irl`. There is nothing to resume: the fit takes
    seconds and keeps no checkpoint, so `resume` is refused with a one-line error."""
    if resume:
        raise MimeticError(f"train maxent-irl: --resume does not apply (the fit takes seconds and keeps no checkpoint); "
                           f"run it again without --resume to refit {run_dir}")
    return train_maxent_irl(dataset, run_dir, env_name=env, env_options=env_options, config=cfg, progress=progress)
