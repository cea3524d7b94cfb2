"""A tanh-squashed Gaussian MLP policy: the actor of the SAC and PPO generators (GAIL, AIRL).

The network maps normalized observations to the mean and log-std of a Gaussian; actions are
tanh(sample), in [-1, 1], and the action normalizer maps [-1, 1] onto the environment's action
bounds (`fit_action_bounds`). At inference the policy returns tanh(mean) (or a sample with
`sample=True`). It is an ordinary mimetic policy: `save_policy` / `load_policy`, `PolicyActor`,
`mimetic eval RUN`. `loss` is the negative log-likelihood of demonstrated actions (BC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mimetic.errors import MimeticError
from mimetic.policies.base import Policy, PolicyConfig
from mimetic.policies.mlp import mlp

LOG_2 = math.log(2.0)
OBS_CLIP = 10.0  # normalized observations are clamped to [-OBS_CLIP, OBS_CLIP]


@dataclass
class TanhGaussianConfig(PolicyConfig):
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    sample: bool = False
    norm_action: str = "minmax"  # [-1, 1] <-> the action bounds


class TanhGaussianPolicy(Policy):
    type_name = "tanh-gaussian"
    config_class = TanhGaussianConfig

    def __init__(self, config: TanhGaussianConfig):
        if config.relative_to:  # gail / airl feed it obs_norm(obs) directly, not through `encode`
            raise MimeticError("relative_to is for the supervised methods (bc, act, diffusion, flow), not gail / airl")
        if config.obs_scale != 1.0:
            raise MimeticError("obs_scale is for the supervised methods (bc, act, diffusion, flow), not gail / airl")
        super().__init__(config)
        self.net = mlp([config.n_obs_steps * self.obs_encoder.output_dim, *config.hidden, 2 * config.act_dim], activation=nn.ReLU)

    def fit_action_bounds(self, low: np.ndarray, high: np.ndarray) -> None:
        """Map tanh outputs [-1, 1] onto [low, high] (the environment's action space)."""
        low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        self.act_norm.shift.copy_(torch.as_tensor((high + low) / 2, dtype=torch.float32))
        self.act_norm.scale.copy_(torch.as_tensor((high - low) / 2, dtype=torch.float32))

    def distribution(self, obs_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, d) or (B, To, d) normalized observations -> mean, log_std (B, a) of the pre-tanh Gaussian."""
        # clamped: states far outside the demonstrations (near-constant dimensions have tiny scales) stay bounded
        obs_n = obs_n.clamp(-OBS_CLIP, OBS_CLIP)
        mean, log_std = self.net(obs_n.reshape(len(obs_n), -1)).chunk(2, dim=-1)
        c = self.config
        log_std = c.log_std_min + 0.5 * (c.log_std_max - c.log_std_min) * (torch.tanh(log_std) + 1)
        return mean, log_std

    @staticmethod
    def _log_prob(mean, log_std, u: torch.Tensor) -> torch.Tensor:
        """log pi(tanh(u)) for pre-tanh samples u, with the change-of-variables term."""
        z = (u - mean) / log_std.exp()
        logp = (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return logp - (2 * (LOG_2 - u - nn.functional.softplus(-2 * u))).sum(-1)

    def sample_action(self, obs_n: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized sample: (action in [-1, 1] (B, a), log-prob (B,))."""
        mean, log_std = self.distribution(obs_n)
        u = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(u), self._log_prob(mean, log_std, u)

    def log_prob(self, obs_n: torch.Tensor, action_n: torch.Tensor) -> torch.Tensor:
        """log pi(a | s) of actions in [-1, 1] (clamped inside the open interval)."""
        mean, log_std = self.distribution(obs_n)
        u = torch.atanh(action_n.clamp(-0.999999, 0.999999))
        return self._log_prob(mean, log_std, u)

    def loss(self, batch):
        obs_n = self.encode(batch)
        target = self.act_norm(batch["action"][:, 0].to(obs_n.device))
        nll = -self.log_prob(obs_n, target).mean()
        return nll, {"nll": nll.item()}

    def predict_normalized(self, obs_n, generators=None):
        mean, log_std = self.distribution(obs_n)
        if self.config.sample:  # each row from its episode's generator (see mimetic.policies.base)
            mean = mean + log_std.exp() * self.noise(tuple(mean.shape), generators)
        return torch.tanh(mean)[:, None, :]
