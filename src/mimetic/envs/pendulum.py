"""The scripted expert of `gym/Pendulum-v1`: energy-based swing-up, then PD balance at the top.

Pendulum-v1 (g = 10, m = l = 1, dt = 0.05): theta = 0 is upright, the observation is
(cos theta, sin theta, theta_dot), the action a torque u in [-2, 2], and
theta_ddot = 15 sin(theta) + 3 u. The mechanical energy (per unit of inertia) is
E = theta_dot^2 / 2 + 15 cos(theta), which is 15 upright at rest.

- Near the top (cos theta > `switch_cos`), a PD law u = -(kp theta + kd theta_dot) balances it.
- Elsewhere it pumps energy towards the upright value: u = 2 sign(theta_dot (E* - E)) (bang-bang),
  which also brakes when the pendulum has too much energy.
"""

from __future__ import annotations

import numpy as np

from mimetic.actors import FunctionActor

MAX_TORQUE = 2.0


def expert_action(obs: np.ndarray, kp: float = 10.0, kd: float = 2.0, switch_cos: float = 0.85) -> np.ndarray:
    cos, sin, thdot = float(obs[0]), float(obs[1]), float(obs[2])
    theta = np.arctan2(sin, cos)
    if cos > switch_cos:
        u = -(kp * theta + kd * thdot)
    else:
        energy = 0.5 * thdot**2 + 15.0 * cos
        direction = np.sign(thdot) if abs(thdot) > 1e-3 else 1.0
        u = MAX_TORQUE * direction * np.sign(15.0 - energy + 1e-9)
    return np.array([np.clip(u, -MAX_TORQUE, MAX_TORQUE)], dtype=np.float32)


def make_expert(**options) -> FunctionActor:
    """options: kp, kd, switch_cos (see `expert_action`)."""
    return FunctionActor(lambda o: expert_action(o, **options), act_dim=1)
