"""MLP policies with deterministic (MSE), Gaussian (NLL) and Gaussian-mixture (NLL) heads.

Input: the `n_obs_steps` encoded observations (normalized vector features, and one feature vector per
camera from the observation encoder, `mimetic.policies.encoders`), flattened. Output: a chunk of `horizon`
normalized actions. The Gaussian head is the mixture head with one component. At inference the
deterministic head returns its output, the Gaussian head its mean, and the mixture head the mean
of its most likely component (the mode), unless `sample=True`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from mimetic.errors import MimeticError
from mimetic.policies.base import Policy, PolicyConfig

HEADS = ("deterministic", "gaussian", "gmm")


@dataclass
class MLPConfig(PolicyConfig):
    ABSENT: ClassVar[dict] = {"relative_to": ""}  # checkpoints from before egocentric features read none
    # BC reads the hand-relative offsets wherever the state names a hand and other points (Meta-World's full state):
    # on the development suite's validation seeds 0.789 -> 0.839 (two training seeds; BENCHMARKS.md, "Egocentric")
    relative_to: str = "auto"
    head: str = "deterministic"
    hidden: list[int] = field(default_factory=lambda: [256, 256, 256])
    dropout: float = 0.0
    components: int = 5  # mixture components of the gmm head
    # floor of the Gaussian / mixture std, in normalized action units (z-scores). With 10 demonstrations a
    # floor of 1e-3 let the NLL collapse onto the training actions: BC-GMM on Meta-World assembly-v3 scored
    # 0.00 on validation seeds, 1.00 with 0.05 or 0.2 (benchmarks/results/metaworld_methods.md).
    min_std: float = 0.05
    sample: bool = False  # sample actions instead of taking the mean / mode


def mlp(sizes: list[int], dropout: float = 0.0, activation=nn.Mish) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLPPolicy(Policy):
    type_name = "mlp"
    config_class = MLPConfig

    def __init__(self, config: MLPConfig):
        if config.head not in HEADS:
            raise MimeticError(f"unknown MLP head {config.head!r}: use one of {', '.join(HEADS)}")
        if config.head == "gmm" and config.components < 1:
            raise MimeticError(f"--components must be >= 1, got {config.components}")
        super().__init__(config)  # checks n_obs_steps, horizon, hidden, dropout
        self.K = 1 if config.head == "gaussian" else config.components
        self.out = config.horizon * config.act_dim
        n_out = {"deterministic": self.out, "gaussian": 2 * self.out, "gmm": self.K * (1 + 2 * self.out)}[config.head]
        self.net = mlp([config.n_obs_steps * self.obs_encoder.output_dim, *config.hidden, n_out], config.dropout)
        # a task-conditioned policy: FiLM (a per-unit scale and bias from the task vector) on every hidden layer
        self.film = nn.Linear(config.task_dim, 2 * sum(config.hidden)) if self.task_cond is not None else None

    def trunk(self, obs_n: torch.Tensor) -> torch.Tensor:
        """(B, To, encoded_dim) -> the network's raw output (B, n_out); with a task, each hidden layer's
        pre-activation h becomes h * (1 + scale) + bias."""
        obs, task = self.split_task(obs_n)
        x = obs.reshape(len(obs), -1)
        if task is None:
            return self.net(x)
        film = iter(self.film(task).split([h for h in self.config.hidden for _ in (0, 1)], dim=-1))
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        for m in self.net:
            x = m(x)
            if isinstance(m, nn.Linear) and m is not linears[-1]:
                x = x * (1 + next(film)) + next(film)
        return x

    def _mixture(self, obs_n: torch.Tensor):
        B = obs_n.shape[0]
        raw = self.trunk(obs_n)
        if self.config.head == "gaussian":
            mean, log_std = raw.split(self.out, dim=-1)
            logits = torch.zeros(B, 1, device=raw.device, dtype=raw.dtype)
            mean, log_std = mean[:, None], log_std[:, None]
        else:
            logits, rest = raw[:, : self.K], raw[:, self.K :].reshape(B, self.K, 2 * self.out)
            mean, log_std = rest.split(self.out, dim=-1)
        std = nn.functional.softplus(log_std) + self.config.min_std
        return logits, mean, std  # (B, K), (B, K, out), (B, K, out)

    def loss(self, batch):
        c = self.config
        obs_n = self.encode(batch)
        target = self.act_norm(batch["action"].to(obs_n.device)).reshape(len(obs_n), -1)  # (B, H*a)
        mask = (~batch["action_pad"].to(obs_n.device)).float().repeat_interleave(c.act_dim, dim=1)  # (B, H*a)
        if c.head == "deterministic":
            pred = self.trunk(obs_n)
            loss = (((pred - target) ** 2) * mask).sum() / mask.sum().clamp(min=1)
            return loss, {"mse": loss.item()}
        logits, mean, std = self._mixture(obs_n)
        z = (target[:, None] - mean) / std
        logp = -0.5 * z**2 - torch.log(std) - 0.5 * math.log(2 * math.pi)  # (B, K, out)
        logp = (logp * mask[:, None]).sum(-1) + torch.log_softmax(logits, -1)  # (B, K)
        nll = -torch.logsumexp(logp, -1).mean() / (mask.sum(1).mean().clamp(min=1))
        with torch.no_grad():
            best = mean[torch.arange(len(mean), device=mean.device), logits.argmax(-1)]
            mse = (((best - target) ** 2) * mask).sum() / mask.sum().clamp(min=1)
        return nll, {"nll": nll.item(), "mse": mse.item()}

    def predict_normalized(self, obs_n, generators=None):
        c = self.config
        B = obs_n.shape[0]
        if c.head == "deterministic":
            out = self.trunk(obs_n)
        else:
            logits, mean, std = self._mixture(obs_n)
            if c.sample:  # each row from its episode's generator (see mimetic.policies.base)
                u = self.uniform((B, 1 + self.out), generators)
                cdf = torch.softmax(logits, -1).cumsum(-1)
                k = (u[:, :1] > cdf).sum(-1).clamp(max=self.K - 1)  # inverse-CDF draw of the component
                idx = torch.arange(B, device=mean.device)
                z = torch.special.ndtri(u[:, 1:].clamp(1e-7, 1 - 1e-7))  # standard normal from the same uniforms
                out = mean[idx, k] + std[idx, k] * z
            else:
                out = mean[torch.arange(B, device=mean.device), logits.argmax(-1)]
        return out.reshape(B, c.horizon, c.act_dim)
