"""Tabular Maximum-Entropy inverse RL (Ziebart et al. 2008; the causal, discounted form).

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

Evaluation: Pearson/Spearman correlation of the learned with the true reward, the expected value
difference (EVD), and `transfer_experiment`, which re-optimizes the learned reward in a changed world
and compares its true return with a tabular behavioural-cloning policy.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from mimetic.errors import MimeticError

# ============================================================================ dynamic programming


def _logsumexp(Q: np.ndarray) -> np.ndarray:
    """log sum_a exp Q[:, a], stable (scipy's version has a large per-call overhead)."""
    m = Q.max(axis=1)
    return m + np.log(np.exp(Q - m[:, None]).sum(axis=1))


class Transitions:
    """A transition matrix P (S, A, S) prepared for fast backups and forward steps (sparse when that
    is cheaper). Every function here accepts either P or a `Transitions`; build one to reuse it."""

    def __init__(self, P: "np.ndarray | Transitions"):
        if isinstance(P, Transitions):
            self.dense, self.S, self.A, self.mat = P.dense, P.S, P.A, P.mat
            return
        P = np.asarray(P, dtype=np.float64)
        if P.ndim != 3 or P.shape[0] != P.shape[2]:
            raise MimeticError(f"transition matrix has shape {P.shape}, expected (S, A, S)")
        self.dense = P
        self.S, self.A = P.shape[0], P.shape[1]
        flat = P.reshape(self.S * self.A, self.S)
        if self.S >= 64 and np.count_nonzero(flat) < 0.1 * flat.size:
            from scipy import sparse

            self.mat = sparse.csr_matrix(flat)
        else:
            self.mat = flat

    def backup(self, V: np.ndarray) -> np.ndarray:
        """(S, A): sum_s' P(s, a, s') V(s')."""
        return np.asarray(self.mat @ V).reshape(self.S, self.A)

    def forward(self, d_sa: np.ndarray) -> np.ndarray:
        """(S,): sum_{s,a} d(s, a) P(s, a, s')."""
        return np.asarray(self.mat.T @ d_sa.reshape(-1)).reshape(self.S)


def _check_mdp(P, r: np.ndarray | None = None) -> Transitions:
    T = P if isinstance(P, Transitions) else Transitions(P)
    if r is not None and np.shape(r) != (T.S,):
        raise MimeticError(f"reward has shape {np.shape(r)}, expected ({T.S},) for a transition matrix of shape {T.dense.shape}")
    return T


def _horizon_or_gamma(gamma: float | None, horizon: int | None) -> None:
    if (gamma is None) == (horizon is None):
        raise MimeticError("give exactly one of gamma (discounted, stationary policy) or horizon (finite horizon)")
    if gamma is not None and not 0.0 <= gamma < 1.0:
        raise MimeticError(f"gamma={gamma!r} must be in [0, 1)")
    if horizon is not None and (int(horizon) != horizon or horizon < 1):
        raise MimeticError(f"horizon={horizon!r} must be a positive integer")


def soft_value_iteration(
    P: np.ndarray,
    r: np.ndarray,
    *,
    gamma: float | None = None,
    horizon: int | None = None,
    tol: float = 1e-8,
    max_iter: int = 100_000,
    V0: np.ndarray | None = None,
    return_values: bool = False,
):
    """The soft-optimal (MaxEnt) policy for state reward r, temperature 1.

    Discounted (`gamma`): iterate V <- logsumexp_a [r + gamma P V] to max|dV| < tol; returns a
    stationary policy (S, A). Finite horizon (`horizon=T`, undiscounted): V_T = 0, backward T steps;
    returns a time-dependent policy (T, S, A), index 0 first. With `return_values` also returns V
    ((S,) or (T+1, S)).
    """
    _horizon_or_gamma(gamma, horizon)
    P = _check_mdp(P, r)
    S, A = P.S, P.A
    r = np.asarray(r, dtype=np.float64)
    if horizon is not None:
        V = np.zeros((horizon + 1, S))
        pol = np.empty((horizon, S, A))
        for t in range(horizon - 1, -1, -1):
            Q = r[:, None] + P.backup(V[t + 1])
            V[t] = _logsumexp(Q)
            pol[t] = np.exp(Q - V[t][:, None])
        return (pol, V) if return_values else pol
    V = np.zeros(S) if V0 is None else np.asarray(V0, dtype=np.float64).copy()
    for _ in range(max_iter):
        Q = r[:, None] + gamma * P.backup(V)
        V_new = _logsumexp(Q)
        done = np.max(np.abs(V_new - V)) < tol
        V = V_new
        if done:
            break
    Q = r[:, None] + gamma * P.backup(V)
    pol = np.exp(Q - V[:, None])
    pol /= pol.sum(axis=1, keepdims=True)
    return (pol, V) if return_values else pol


def optimal_policy(P: np.ndarray, r: np.ndarray, *, gamma: float | None = None, horizon: int | None = None, tol: float = 1e-10) -> np.ndarray:
    """A deterministic optimal policy (one-hot rows) by hard value iteration; (S, A) or (T, S, A)."""
    _horizon_or_gamma(gamma, horizon)
    P = _check_mdp(P, r)
    S, A = P.S, P.A
    r = np.asarray(r, dtype=np.float64)
    eye = np.eye(A)
    if horizon is not None:
        V = np.zeros(S)
        pol = np.empty((horizon, S, A))
        for t in range(horizon - 1, -1, -1):
            Q = r[:, None] + P.backup(V)
            pol[t] = eye[_argmax(Q)]
            V = Q.max(axis=1)
        return pol
    V = np.zeros(S)
    while True:
        Q = r[:, None] + gamma * P.backup(V)
        V_new = Q.max(axis=1)
        if np.max(np.abs(V_new - V)) < tol:
            break
        V = V_new
    return eye[_argmax(Q)]


def _argmax(Q: np.ndarray) -> np.ndarray:
    """Argmax over actions that ignores differences below round-off (ties go to the lowest action)."""
    return np.argmax(Q >= Q.max(axis=1, keepdims=True) - 1e-9 * (1.0 + np.abs(Q).max()), axis=1)


def _policy_at(policy: np.ndarray, t: int) -> np.ndarray:
    return policy[t] if policy.ndim == 3 else policy


def policy_value(P: np.ndarray, r: np.ndarray, policy: np.ndarray, horizon: int, gamma: float = 1.0) -> np.ndarray:
    """(S,) exact expected sum_{t<horizon} gamma^t r(s_t) from each start state, following `policy`
    ((S, A) stationary or (>=horizon, S, A) time-dependent)."""
    P = _check_mdp(P, r)
    S, A = P.S, P.A
    policy = np.asarray(policy, dtype=np.float64)
    if policy.shape[-2:] != (S, A) or (policy.ndim == 3 and len(policy) < horizon):
        raise MimeticError(f"policy has shape {policy.shape}, expected ({S}, {A}) or (T>={horizon}, {S}, {A})")
    V = np.zeros(S)
    for t in range(horizon - 1, -1, -1):
        Q = r[:, None] + gamma * P.backup(V)
        V = (_policy_at(policy, t) * Q).sum(axis=1)
    return V


def expected_svf(
    P: np.ndarray,
    policy: np.ndarray,
    start_distribution: np.ndarray,
    horizon: int,
    step_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Exact expected state-visitation frequencies sum_t w_t Pr(s_t = s) by forward DP.

    d_0 = start_distribution; d_{t+1}(s') = sum_{s,a} d_t(s) pi_t(a|s) P(s,a,s'). With the default
    weights (all 1) the result sums to `horizon`. `step_weights` (horizon,) gives per-step weights,
    e.g. gamma^t, or the fraction of demonstrations still running at step t.
    """
    P = _check_mdp(P)
    S, A = P.S, P.A
    policy = np.asarray(policy, dtype=np.float64)
    d = np.asarray(start_distribution, dtype=np.float64)
    if d.shape != (S,):
        raise MimeticError(f"start distribution has shape {d.shape}, expected ({S},)")
    w = np.ones(horizon) if step_weights is None else np.asarray(step_weights, dtype=np.float64)
    if w.shape != (horizon,):
        raise MimeticError(f"step_weights has shape {w.shape}, expected ({horizon},)")
    mu = np.zeros(S)
    for t in range(horizon):
        mu += w[t] * d
        if t + 1 < horizon:
            d = P.forward(d[:, None] * _policy_at(policy, t))
    return mu


# ============================================================================ demonstrations


@dataclass
class Demonstrations:
    """Demonstrations as tabular state and action index sequences, one pair of arrays per episode."""

    states: list[np.ndarray]
    actions: list[np.ndarray]
    n_states: int
    n_actions: int

    def __post_init__(self):
        if not self.states:
            raise MimeticError("demonstrations: no episodes")
        self.states = [np.asarray(s, dtype=np.int64) for s in self.states]
        self.actions = [np.asarray(a, dtype=np.int64) for a in self.actions]
        for i, (s, a) in enumerate(zip(self.states, self.actions)):
            if len(s) == 0 or len(s) != len(a):
                raise MimeticError(f"demonstrations: episode {i} has {len(s)} states and {len(a)} actions (need equal, > 0)")
            if s.min() < 0 or s.max() >= self.n_states or a.min() < 0 or a.max() >= self.n_actions:
                raise MimeticError(f"demonstrations: episode {i} has a state outside [0, {self.n_states}) or an action outside [0, {self.n_actions})")

    def __len__(self) -> int:
        return len(self.states)

    @property
    def horizon(self) -> int:
        """The longest episode."""
        return max(len(s) for s in self.states)

    def step_weights(self, discount: float = 1.0) -> np.ndarray:
        """(horizon,) discount^t times the fraction of episodes still running at step t."""
        lengths = np.array([len(s) for s in self.states])
        t = np.arange(self.horizon)
        return discount**t * (lengths[None, :] > t[:, None]).mean(axis=1)

    def state_visits(self, discount: float = 1.0) -> np.ndarray:
        """(S,) mean over episodes of sum_t discount^t [s_t = s]."""
        mu = np.zeros(self.n_states)
        for s in self.states:
            np.add.at(mu, s, discount ** np.arange(len(s)))
        return mu / len(self.states)

    def start_distribution(self) -> np.ndarray:
        return np.bincount([int(s[0]) for s in self.states], minlength=self.n_states) / len(self.states)

    def state_action_counts(self) -> np.ndarray:
        counts = np.zeros((self.n_states, self.n_actions))
        for s, a in zip(self.states, self.actions):
            np.add.at(counts, (s, a), 1.0)
        return counts


def demonstrations_from_episodes(episodes, world, where: str = "demonstrations") -> Demonstrations:
    """Convert mimetic Episodes (or a `Dataset`) collected in a tabular world to `Demonstrations`.

    `world` is anything with `state_index(obs, where)`, `transition_matrix`, and an `action_index`
    method or integer-valued float actions (an objectworld env or `Objectworld`).
    """
    from mimetic.data.dataset import Dataset

    if isinstance(episodes, Dataset):
        where = f"dataset {episodes.root}"
        episodes = episodes.episodes()
    world = getattr(world, "world", world)
    mdp = _check_mdp(world.transition_matrix)
    S, A = mdp.S, mdp.A
    states, actions = [], []
    for i, ep in enumerate(episodes):
        here = f"{where}, episode {i}"
        states.append(np.atleast_1d(world.state_index(ep.observations, where=here)))
        acts = np.asarray(ep.actions, dtype=np.float64)
        if acts.ndim != 2 or acts.shape[1] != 1:
            raise MimeticError(f"{here}: actions have shape {acts.shape}, expected (T, 1) discrete action indices")
        idx = np.rint(acts[:, 0]).astype(np.int64)
        bad = ~np.isclose(acts[:, 0], idx) | (idx < 0) | (idx >= A)
        if bad.any():
            raise MimeticError(f"{here}: action {float(acts[int(np.argmax(bad)), 0])} at step {int(np.argmax(bad))} is not an integer in [0, {A})")
        actions.append(idx)
    if not states:
        raise MimeticError(f"{where}: no episodes")
    return Demonstrations(states, actions, S, A)


def sample_demonstrations(
    P: np.ndarray, policy: np.ndarray, start_distribution: np.ndarray, horizon: int, n: int, rng: np.random.Generator
) -> Demonstrations:
    """Sample n episodes of `horizon` steps directly from the tabular MDP (fast; for tests and benchmarks)."""
    P = _check_mdp(P)
    S, A = P.S, P.A
    policy = np.asarray(policy, dtype=np.float64)
    P_cdf = np.cumsum(P.dense, axis=2)
    s = (rng.random(n)[:, None] > np.cumsum(start_distribution)[None]).sum(axis=1).clip(0, S - 1)
    states, actions = np.empty((n, horizon), np.int64), np.empty((n, horizon), np.int64)
    for t in range(horizon):
        pol_cdf = np.cumsum(_policy_at(policy, t)[s], axis=1)
        a = (rng.random(n)[:, None] > pol_cdf).sum(axis=1).clip(0, A - 1)
        states[:, t], actions[:, t] = s, a
        s = (rng.random(n)[:, None] > P_cdf[s, a]).sum(axis=1).clip(0, S - 1)
    return Demonstrations(list(states), list(actions), S, A)


# ============================================================================ MaxEnt IRL


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
    P = _check_mdp(P)
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


# ============================================================================ evaluation


def reward_correlation(learned: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """(Pearson, Spearman) correlation between a learned and the true state reward (nan if one is constant)."""
    learned, true = np.asarray(learned, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if learned.shape != true.shape:
        raise MimeticError(f"learned reward has shape {learned.shape} but the true reward {true.shape}")
    if np.ptp(learned) == 0 or np.ptp(true) == 0:
        return float("nan"), float("nan")
    return float(stats.pearsonr(learned, true)[0]), float(stats.spearmanr(learned, true)[0])


def expected_return(P: np.ndarray, r: np.ndarray, policy: np.ndarray, start_distribution: np.ndarray, horizon: int) -> float:
    """Exact expected undiscounted return over `horizon` steps from the start distribution."""
    return float(np.asarray(start_distribution) @ policy_value(P, r, policy, horizon))


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

REWARD_FILE = "reward.safetensors"
CONFIG_FILE = "config.json"
PLOT_FILE = "reward.png"


@dataclass
class LearnedReward:
    """A learned reward loaded from a run folder."""

    weights: np.ndarray  # (F,)
    reward: np.ndarray  # (S,) in the training world
    tabular: np.ndarray | None
    env_name: str
    env_options: dict
    config: dict  # the whole config.json

    def in_world(self, env) -> np.ndarray:
        """The reward (S,) in a (possibly changed) world: features @ weights, plus the tabular term
        only if the world is the training world."""
        features = np.asarray(env.features, dtype=np.float64)
        if features.shape[1] != len(self.weights):
            raise MimeticError(f"learned reward has {len(self.weights)} feature weights but this world has {features.shape[1]} features")
        r = features @ self.weights
        if self.tabular is not None and len(self.tabular) == len(r) and np.allclose(features, self._train_features()):
            r = r + self.tabular
        return r

    def _train_features(self) -> np.ndarray:
        from mimetic.envs import make_env

        return np.asarray(make_env(self.env_name, **self.env_options).features)


def _tabular_env(env_name: str, env_options: dict):
    from mimetic.envs import make_env

    env = make_env(env_name, **env_options)
    env = getattr(env, "unwrapped", env)
    for attr in ("transition_matrix", "features", "true_reward", "start_distribution", "horizon", "state_index"):
        if not hasattr(env, attr):
            raise MimeticError(f"environment {env_name!r} is not a tabular MDP (it has no {attr!r}); MaxEnt IRL needs one, e.g. 'objectworld'")
    return env


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
    "objectworld" with default options). Writes `reward.safetensors` (weights, reward[, tabular])
    and `config.json`; no pickle.
    """
    from safetensors.numpy import save

    from mimetic.data.dataset import Dataset
    from mimetic.data.io import atomic_write_bytes, atomic_write_json

    ds = dataset if isinstance(dataset, Dataset) else Dataset.load(dataset)
    env_name = env_name or ds.env_name or "objectworld"
    env_options = dict(ds.env_options if env_options is None else env_options)
    config = config or MaxEntIRLConfig()
    env = _tabular_env(env_name, env_options)
    demos = demonstrations_from_episodes(ds, env)
    result = maxent_irl(env.transition_matrix, env.features, demos, config=config, progress=progress)

    out = Path(out_dir)
    tensors = {"weights": result.weights.astype(np.float64), "reward": result.reward.astype(np.float64)}
    if result.tabular is not None:
        tensors["tabular"] = result.tabular.astype(np.float64)
    atomic_write_bytes(out / REWARD_FILE, save(tensors, metadata={"format": "mimetic-maxent-irl"}))
    atomic_write_json(
        out / CONFIG_FILE,
        {
            "method": "maxent-irl",
            "env": env_name,
            "env_options": env_options,
            "irl": asdict(config),
            "dataset": str(ds.root),
            "n_demonstrations": len(demos),
            "n_states": int(env.transition_matrix.shape[0]),
            "n_features": int(result.weights.shape[0]),
            "train": {"iterations": result.iterations, "final_max_grad": result.grad_norms[-1], "seconds": round(result.seconds, 3)},
        },
    )
    return result


# The method interface of `mimetic.algos` (METHODS: "maxent-irl" -> this module).
Config = MaxEntIRLConfig


def train(cfg: MaxEntIRLConfig, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True) -> IRLResult:
    """`mimetic train maxent-irl`: see `train_maxent_irl` (fitting takes seconds, so `resume` retrains)."""
    return train_maxent_irl(dataset, run_dir, env_name=env, env_options=env_options, config=cfg, progress=progress)


def load_reward(run_dir: str | Path) -> LearnedReward:
    """Load a reward saved by `train_maxent_irl`."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    from mimetic.data.io import read_json

    run_dir = Path(run_dir)
    cfg = read_json(run_dir / CONFIG_FILE, "maxent-irl config")
    if cfg.get("method") != "maxent-irl":
        raise MimeticError(f"{run_dir / CONFIG_FILE}: not a maxent-irl run (method={cfg.get('method')!r})")
    path = run_dir / REWARD_FILE
    if not path.is_file():
        raise MimeticError(f"learned reward {path} not found")
    try:
        tensors = load(path.read_bytes())
    except (SafetensorError, ValueError) as e:
        raise MimeticError(f"{path} is not a readable safetensors file: {e}") from None
    for key in ("weights", "reward"):
        if key not in tensors:
            raise MimeticError(f"{path}: missing tensor {key!r}")
    return LearnedReward(
        weights=tensors["weights"],
        reward=tensors["reward"],
        tabular=tensors.get("tabular"),
        env_name=cfg["env"],
        env_options=dict(cfg.get("env_options") or {}),
        config=cfg,
    )


def reward_report(run_dir: str | Path, env_options: dict | None = None, plot: bool | str | Path = True) -> dict:
    """Compare a learned reward with the true reward of its world (or of the world `env_options`).

    Returns pearson, spearman, evd (see `expected_value_difference`), the true returns of the
    optimal policies for the learned and the true reward, and `plot`: the path of a heat map
    (true | learned) saved as PNG: `plot` if it is a path, else `reward.png` in `run_dir` (None with
    plot=False).
    """
    run_dir = Path(run_dir)
    learned = load_reward(run_dir)
    options = learned.env_options if env_options is None else dict(env_options)
    env = _tabular_env(learned.env_name, options)
    r_learned = learned.in_world(env)
    P, r_true, rho, T = env.transition_matrix, env.true_reward, env.start_distribution, env.horizon
    pearson, spearman = reward_correlation(r_learned, r_true)
    best = expected_return(P, r_true, optimal_policy(P, r_true, horizon=T), rho, T)
    mine = expected_return(P, r_true, optimal_policy(P, r_learned, horizon=T), rho, T)
    report = {
        "env": learned.env_name,
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
        report["plot"] = str(save_reward_heatmap(path, r_true, r_learned, env, title=f"{learned.env_name} {options}"))
    return report


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


__all__ = [
    "Config",
    "Demonstrations",
    "Transitions",
    "IRLResult",
    "LearnedReward",
    "MaxEntIRLConfig",
    "bc_policy",
    "demonstrations_from_episodes",
    "expected_return",
    "expected_svf",
    "expected_value_difference",
    "load_reward",
    "maxent_irl",
    "optimal_policy",
    "policy_value",
    "reward_correlation",
    "reward_report",
    "sample_demonstrations",
    "soft_value_iteration",
    "train",
    "train_maxent_irl",
    "transfer_experiment",
]
