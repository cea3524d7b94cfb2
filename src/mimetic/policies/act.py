"""ACT: Action Chunking with Transformers (Zhao et al. 2023), on state observations.

A conditional VAE over action chunks:
- encoder (training only): a transformer over [CLS, state, a_1..a_k] (padded actions masked out);
  the CLS output gives the latent's mean and log-variance;
- decoder: a transformer encoder over [latent, state_1..state_To] tokens, then a transformer
  decoder whose k learned queries cross-attend to it and predict the chunk. Every one of the
  `n_decoder_layers` layers is applied (LeRobot's ACT builds 7 and runs only the first).
Loss: L1 between predicted and true normalized actions, masked by padding, + kl_weight * KL.
At test time the latent is 0 (the prior mean). Execute chunks with `n_action_steps`, or ensemble
them with `PolicyActor(temporal_ensemble=m)` (`mimetic eval --temporal-ensemble m`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mimetic.errors import MimeticError
from mimetic.policies.base import Policy, PolicyConfig


@dataclass
class ACTConfig(PolicyConfig):
    horizon: int = 16
    n_action_steps: int = 8
    dim_model: int = 64  # sized to train in minutes on a CPU (BENCHMARKS.md)
    n_heads: int = 4
    dim_feedforward: int = 256
    n_vae_layers: int = 2
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    latent_dim: int = 16
    kl_weight: float = 10.0
    dropout: float = 0.1


def _encoder(c: ACTConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(c.dim_model, c.n_heads, c.dim_feedforward, c.dropout, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class ACTPolicy(Policy):
    type_name = "act"
    config_class = ACTConfig

    def __init__(self, config: ACTConfig):
        c = config
        if c.dim_model % c.n_heads:
            raise MimeticError(f"dim_model {c.dim_model} must be divisible by n_heads {c.n_heads}")
        if min(c.n_vae_layers, c.n_encoder_layers, c.n_decoder_layers, c.latent_dim) < 1:
            raise MimeticError("n_vae_layers, n_encoder_layers, n_decoder_layers and latent_dim must be >= 1")
        super().__init__(config)
        d = c.dim_model
        # CVAE encoder
        self.vae_cls = nn.Parameter(torch.zeros(1, 1, d))
        self.vae_state = nn.Linear(c.obs_dim, d)
        self.vae_action = nn.Linear(c.act_dim, d)
        self.vae_pos = nn.Parameter(torch.randn(1, 2 + c.horizon, d) * 0.02)
        self.vae = _encoder(c, c.n_vae_layers)
        self.latent_out = nn.Linear(d, 2 * c.latent_dim)
        # decoder side
        self.latent_in = nn.Linear(c.latent_dim, d)
        self.state_in = nn.Linear(c.obs_dim, d)
        self.enc_pos = nn.Parameter(torch.randn(1, 1 + c.n_obs_steps, d) * 0.02)
        self.encoder = _encoder(c, c.n_encoder_layers)
        self.queries = nn.Parameter(torch.randn(1, c.horizon, d) * 0.02)
        layer = nn.TransformerDecoderLayer(d, c.n_heads, c.dim_feedforward, c.dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, c.n_decoder_layers)  # applies all n_decoder_layers layers
        self.action_out = nn.Linear(d, c.act_dim)

    def encode_latent(self, obs_n: torch.Tensor, act_n: torch.Tensor, pad: torch.Tensor):
        """(B, To, d) obs, (B, H, a) actions, (B, H) pad -> latent mean and log-variance (B, latent_dim)."""
        B = len(obs_n)
        tokens = torch.cat([self.vae_cls.expand(B, -1, -1), self.vae_state(obs_n[:, -1:]), self.vae_action(act_n)], 1)
        mask = torch.cat([torch.zeros(B, 2, dtype=torch.bool), pad], 1)  # True = ignored
        h = self.vae(tokens + self.vae_pos, src_key_padding_mask=mask)
        mu, logvar = self.latent_out(h[:, 0]).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, obs_n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        B = len(obs_n)
        tokens = torch.cat([self.latent_in(z)[:, None], self.state_in(obs_n)], 1) + self.enc_pos
        memory = self.encoder(tokens)
        h = self.decoder(self.queries.expand(B, -1, -1), memory)
        return self.action_out(h)

    def loss(self, batch):
        c = self.config
        obs_n, act_n, pad = self.obs_norm(batch["obs"]), self.act_norm(batch["action"]), batch["action_pad"]
        mu, logvar = self.encode_latent(obs_n, act_n, pad)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        pred = self.decode(obs_n, z)
        valid = (~pad).float()[:, :, None]
        l1 = ((pred - act_n).abs() * valid).sum() / (valid.sum() * c.act_dim).clamp(min=1)
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(-1).mean()
        loss = l1 + c.kl_weight * kl
        return loss, {"l1": l1.item(), "kl": kl.item()}

    def predict_normalized(self, obs_n, generators=None):  # deterministic: nothing to sample
        z = torch.zeros(len(obs_n), self.config.latent_dim, device=obs_n.device)
        return self.decode(obs_n, z)
