"""Tabular planning: exact dynamic programming on a finite MDP given as arrays.

Below both the environments (objectworld decides success from exact optimal and random values) and
the algorithms (MaxEnt IRL fits a reward with it), so neither borrows from the other; it imports
nothing of mimetic but the error type.

An MDP is a transition matrix `P` (S, A, S) (or a prepared `Transitions`), a state reward r (S,)
received in the state the action is taken in, and either a discount `gamma` (a stationary policy,
(S, A)) or a finite `horizon` T (a time-dependent policy, (T, S, A), index 0 first).
"""

from __future__ import annotations

import numpy as np

from mimetic.errors import MimeticError


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


def check_mdp(P, r: np.ndarray | None = None) -> Transitions:
    """`P` as `Transitions`, with a one-line error if it (or the reward `r`) has the wrong shape."""
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
    P = check_mdp(P, r)
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
    P = check_mdp(P, r)
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


def policy_at(policy: np.ndarray, t: int) -> np.ndarray:
    """The (S, A) policy used at step t: `policy` itself if stationary, else `policy[t]`."""
    return policy[t] if policy.ndim == 3 else policy


def policy_value(P: np.ndarray, r: np.ndarray, policy: np.ndarray, horizon: int, gamma: float = 1.0) -> np.ndarray:
    """(S,) exact expected sum_{t<horizon} gamma^t r(s_t) from each start state, following `policy`
    ((S, A) stationary or (>=horizon, S, A) time-dependent)."""
    P = check_mdp(P, r)
    S, A = P.S, P.A
    policy = np.asarray(policy, dtype=np.float64)
    if policy.shape[-2:] != (S, A) or (policy.ndim == 3 and len(policy) < horizon):
        raise MimeticError(f"policy has shape {policy.shape}, expected ({S}, {A}) or (T>={horizon}, {S}, {A})")
    V = np.zeros(S)
    for t in range(horizon - 1, -1, -1):
        Q = r[:, None] + gamma * P.backup(V)
        V = (policy_at(policy, t) * Q).sum(axis=1)
    return V


def expected_return(P: np.ndarray, r: np.ndarray, policy: np.ndarray, start_distribution: np.ndarray, horizon: int) -> float:
    """Exact expected undiscounted return over `horizon` steps from the start distribution."""
    return float(np.asarray(start_distribution) @ policy_value(P, r, policy, horizon))


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
    P = check_mdp(P)
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
            d = P.forward(d[:, None] * policy_at(policy, t))
    return mu


__all__ = [
    "Transitions",
    "check_mdp",
    "expected_return",
    "expected_svf",
    "optimal_policy",
    "policy_at",
    "policy_value",
    "soft_value_iteration",
]
