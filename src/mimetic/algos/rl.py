"""The reinforcement-learning generators of the adversarial methods: SAC (off-policy) and PPO (on-policy).

Both train a `TanhGaussianPolicy` (a normal mimetic policy checkpoint) on rewards given by a
function of a batch, so GAIL / AIRL can relabel rewards with the current discriminator. Actions are
handled in the normalized space [-1, 1]; `VecEnv` maps them onto the environment's bounds.

Terminal transitions: `terminal_value` is the value of the state after a termination (0 for an
ordinary episode end; for DAC-style absorbing states the discriminator's reward of the absorbing
state summed over the infinite future, r_abs / (1 - gamma)). Time-limit truncations bootstrap.

Written here rather than taken from Stable-Baselines3 / `imitation`: those pin gymnasium 0.29 (mimetic
uses gymnasium 1.x) and their policies pickle, while mimetic checkpoints are safetensors + JSON.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from mimetic.envs.spaces import sizes_of
from mimetic.errors import MimeticError
from mimetic.policies.gaussian import OBS_CLIP, TanhGaussianPolicy
from mimetic.policies.mlp import mlp

TRAIN_SEED = 3_000_000  # environment seeds used while training (demos 0.., eval 1e6.., validation 2e6..)


class VecEnv:
    """`n` environments stepped together; a finished environment resets at once with the next seed."""

    def __init__(self, factory: Callable[[], gym.Env], n: int, seed: int):
        self.envs = [factory() for _ in range(n)]
        sizes = sizes_of(self.envs[0])
        if sizes.discrete:
            raise MimeticError(f"adversarial imitation needs continuous (Box) actions, the environment has "
                               f"{sizes.n_actions} discrete actions")
        self.low, self.high = sizes.low, sizes.high
        self.next_seed = seed
        self.obs = np.stack([self._reset(e) for e in self.envs])
        self.ep_return = np.zeros(n)
        self.finished_returns: list[float] = []

    def _reset(self, env: gym.Env) -> np.ndarray:
        obs, _ = env.reset(seed=self.next_seed)
        self.next_seed += 1
        return np.asarray(obs, dtype=np.float32).reshape(-1)

    def step(self, action_n: np.ndarray):
        """Normalized actions (n, a) -> next observations (n, d), true rewards, terminated, truncated."""
        action = self.low + (np.clip(action_n, -1, 1) + 1) * 0.5 * (self.high - self.low)
        nxt, rew = np.empty_like(self.obs), np.zeros(len(self.envs))
        term, trunc = np.zeros(len(self.envs), bool), np.zeros(len(self.envs), bool)
        for i, env in enumerate(self.envs):
            o, r, term[i], trunc[i], _ = env.step(action[i])
            nxt[i], rew[i] = np.asarray(o, dtype=np.float32).reshape(-1), r
            self.ep_return[i] += r
            if term[i] or trunc[i]:
                self.finished_returns.append(float(self.ep_return[i]))
                self.ep_return[i] = 0.0
                self.obs[i] = self._reset(env)
            else:
                self.obs[i] = nxt[i]
        return nxt, rew, term, trunc

    def close(self) -> None:
        for e in self.envs:
            e.close()


def _check_finite(loss: torch.Tensor, what: str) -> None:
    if not torch.isfinite(loss):
        raise MimeticError(f"{what} diverged (loss {loss.item()}): lower the learning rate or raise --grad-penalty")


# ============================================================================ SAC


@dataclass
class SACConfig:
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 0.1
    target_entropy: float | None = None  # default: -act_dim


class SAC:
    """Soft actor-critic (Haarnoja et al. 2018): twin Q networks, target networks, learned temperature."""

    def __init__(self, policy: TanhGaussianPolicy, cfg: SACConfig):
        c = policy.config
        self.policy, self.cfg = policy, cfg
        self.q = nn.ModuleList([mlp([c.obs_dim + c.act_dim, *cfg.hidden, 1], activation=nn.ReLU) for _ in range(2)])
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), requires_grad=True)
        self.target_entropy = -float(c.act_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.actor_opt = torch.optim.Adam(policy.net.parameters(), lr=cfg.lr)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=cfg.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr)

    @staticmethod
    def _q(nets, obs_n, act_n) -> torch.Tensor:
        x = torch.cat([obs_n.clamp(-OBS_CLIP, OBS_CLIP), act_n], -1)
        return torch.cat([n(x) for n in nets], -1)  # (B, 2)

    def update(self, obs_n, act_n, next_obs_n, reward, terminal, terminal_value, weight=None) -> dict[str, float]:
        """One gradient step. terminal (B,) bool: the next state is terminal, worth `terminal_value` (B,).
        `weight` (B,) masks samples out of the losses (e.g. absorbing-state rows)."""
        gamma, alpha = self.cfg.gamma, self.log_alpha.exp().detach()
        w = torch.ones_like(reward) if weight is None else weight
        wsum = w.sum().clamp(min=1)
        with torch.no_grad():
            a2, logp2 = self.policy.sample_action(next_obs_n)
            v2 = self._q(self.q_target, next_obs_n, a2).min(-1).values - alpha * logp2
            target = reward + gamma * torch.where(terminal, terminal_value, v2)
        q = self._q(self.q, obs_n, act_n)
        q_loss = (((q - target[:, None]) ** 2).sum(-1) * w).sum() / wsum
        _check_finite(q_loss, "SAC critic")
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()

        a, logp = self.policy.sample_action(obs_n)
        q_pi = self._q(self.q, obs_n, a).min(-1).values
        actor_loss = ((alpha * logp - q_pi) * w).sum() / wsum
        _check_finite(actor_loss, "SAC actor")
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = -(self.log_alpha * ((logp.detach() + self.target_entropy) * w).sum() / wsum)
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for p, pt in zip(self.q.parameters(), self.q_target.parameters()):
                pt.lerp_(p, self.cfg.tau)
        return {"q_loss": q_loss.item(), "actor_loss": actor_loss.item(), "alpha": float(alpha)}


class ReplayBuffer:
    """Transitions (obs, normalized action, next obs, terminal, absorbing) in a ring buffer."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        self.capacity, self.size, self.pos = capacity, 0, 0
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, act_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.terminal = np.zeros(capacity, bool)  # the next state is terminal (absorbing)
        self.absorbing = np.zeros(capacity, bool)  # this row is the absorbing state's self-loop

    def add(self, obs, act, next_obs, terminal, absorbing=None) -> None:
        for i in range(len(obs)):
            j = self.pos
            self.obs[j], self.act[j], self.next_obs[j], self.terminal[j] = obs[i], act[i], next_obs[i], terminal[i]
            self.absorbing[j] = False if absorbing is None else absorbing[i]
            self.pos = (self.pos + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        idx = rng.integers(0, self.size, size=n)
        return {k: torch.as_tensor(getattr(self, k)[idx]) for k in ("obs", "act", "next_obs", "terminal", "absorbing")}


# ============================================================================ PPO


@dataclass
class PPOConfig:
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 10
    minibatch_size: int = 64
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5


class PPO:
    """Proximal policy optimization (Schulman et al. 2017) with GAE; the value network is separate."""

    def __init__(self, policy: TanhGaussianPolicy, cfg: PPOConfig):
        c = policy.config
        self.policy, self.cfg = policy, cfg
        self.value = mlp([c.obs_dim, *cfg.hidden, 1], activation=nn.Tanh)
        self.opt = torch.optim.Adam([*policy.net.parameters(), *self.value.parameters()], lr=cfg.lr, eps=1e-5)

    def _v(self, obs_n: torch.Tensor) -> torch.Tensor:
        return self.value(obs_n.clamp(-OBS_CLIP, OBS_CLIP)).squeeze(-1)

    def advantages(self, obs_n, next_obs_n, reward, terminated, done, terminal_value):
        """Tensors (T, n, ...): GAE advantages and returns. A truncated step bootstraps from V(next obs);
        a terminated one uses `terminal_value` (T, n)."""
        g, lam = self.cfg.gamma, self.cfg.gae_lambda
        with torch.no_grad():
            v = self._v(obs_n)
            v2 = torch.where(terminated, terminal_value, self._v(next_obs_n))
            delta = reward + g * v2 - v
            adv = torch.zeros_like(reward)
            last = torch.zeros_like(reward[0])
            for t in reversed(range(len(reward))):
                last = delta[t] + g * lam * (~done[t]).float() * last
                adv[t] = last
        return adv, adv + v

    def update(self, obs_n, act_n, logp_old, adv, ret, rng: np.random.Generator) -> dict[str, float]:
        """Flat tensors (N, ...). Several epochs of clipped-surrogate minibatch steps."""
        cfg, N = self.cfg, len(obs_n)
        stats = []
        for _ in range(cfg.epochs):
            order = torch.as_tensor(rng.permutation(N))
            for start in range(0, N, cfg.minibatch_size):
                i = order[start : start + cfg.minibatch_size]
                a = (adv[i] - adv[i].mean()) / (adv[i].std() + 1e-8) if len(i) > 1 else adv[i]
                logp = self.policy.log_prob(obs_n[i], act_n[i])
                ratio = (logp - logp_old[i]).exp()
                pg = -torch.min(ratio * a, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a).mean()
                vf = ((self._v(obs_n[i]) - ret[i]) ** 2).mean()
                loss = pg + cfg.vf_coef * vf + cfg.ent_coef * logp.mean()
                _check_finite(loss, "PPO")
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_([*self.policy.net.parameters(), *self.value.parameters()], cfg.max_grad_norm)
                self.opt.step()
                stats.append((pg.item(), vf.item()))
        pg_mean, vf_mean = np.mean(stats, axis=0)
        return {"pg_loss": float(pg_mean), "vf_loss": float(vf_mean)}
