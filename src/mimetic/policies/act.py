"""ACT: Action Chunking with Transformers (Zhao et al. 2023), on state and camera observations.

A conditional VAE over action chunks:
- encoder (training only): a transformer over [CLS, state, a_1..a_k] (padded actions masked out;
  no state token without vector features); the CLS output gives the latent's mean and log-variance;
- decoder: a transformer encoder over [latent, state_1..state_To, image tokens, task token], then a transformer
  decoder whose k learned queries cross-attend to it and predict the chunk. Image tokens, as in the
  ACT paper: each camera's backbone feature map before pooling (`ObservationEncoder.feature_maps`),
  average-pooled to at most 8 x 8 positions (ResNet-18's map at 84 px is 3 x 3 already), projected to
  dim_model by a 1x1 conv, one token per position, plus a fixed 2-D sinusoidal position
  embedding, a learned embedding per camera and one per observation step. Every one of the
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
from mimetic.policies.encoders import sincos_2d

MAX_GRID = 8  # image tokens per camera and step: the feature map average-pooled to at most 8 x 8 positions


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
    pooled_encoder = False  # cameras become tokens (feature maps), not pooled vectors

    def __init__(self, config: ACTConfig):
        c = config
        if c.dim_model % c.n_heads:
            raise MimeticError(f"dim_model {c.dim_model} must be divisible by n_heads {c.n_heads}")
        if min(c.n_vae_layers, c.n_encoder_layers, c.n_decoder_layers, c.latent_dim) < 1:
            raise MimeticError("n_vae_layers, n_encoder_layers, n_decoder_layers and latent_dim must be >= 1")
        super().__init__(config)
        d = c.dim_model
        has_state = c.obs_dim > 0
        # CVAE encoder
        self.vae_cls = nn.Parameter(torch.zeros(1, 1, d))
        self.vae_state = nn.Linear(self.vector_width, d) if has_state else None
        self.vae_action = nn.Linear(c.act_dim, d)
        self.vae_pos = nn.Parameter(torch.randn(1, 2 + c.horizon, d) * 0.02)
        self.vae = _encoder(c, c.n_vae_layers)
        self.latent_out = nn.Linear(d, 2 * c.latent_dim)
        # decoder side
        self.latent_in = nn.Linear(c.latent_dim, d)
        self.state_in = nn.Linear(self.vector_width, d) if has_state else None
        self.enc_pos = nn.Parameter(torch.randn(1, 1 + c.n_obs_steps, d) * 0.02)
        self.encoder = _encoder(c, c.n_encoder_layers)
        self.queries = nn.Parameter(torch.randn(1, c.horizon, d) * 0.02)
        layer = nn.TransformerDecoderLayer(d, c.n_heads, c.dim_feedforward, c.dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, c.n_decoder_layers)  # applies all n_decoder_layers layers
        self.action_out = nn.Linear(d, c.act_dim)
        cams = len(self.obs_encoder.image_keys)
        if cams:  # made last: a state-only ACT has the parameters (and the initial weights) it always had
            self.image_proj = nn.ModuleList([nn.Conv2d(self.obs_encoder.feature_channels, d, 1) for _ in range(cams)])
            self.camera_embed = nn.Parameter(torch.randn(cams, d) * 0.02)
            self.step_embed = nn.Parameter(torch.randn(c.n_obs_steps, d) * 0.02)
        if self.task_cond is not None:  # the task vector becomes one more token of the decoder's encoder
            self.task_in = nn.Linear(c.task_dim, d)
            self.task_embed = nn.Parameter(torch.randn(1, 1, d) * 0.02)

    def encode(self, obs):
        """Raw inputs -> (normalized vector features (B, To, d), extra tokens (B, n, dim_model) or None): the image
        tokens, then the task token of a task-conditioned policy."""
        vec, images = self.split_inputs(obs)
        obs_n = self.normalize_vector(vec)
        task = self.task_vector(obs)
        task_token = None if task is None else self.task_in(task.to(obs_n.dtype))[:, None] + self.task_embed
        if not self.obs_encoder.image_keys:
            return obs_n, task_token
        tokens = []
        for i, fmap in enumerate(self.obs_encoder.feature_maps(images, task)):  # (B, To, C, h, w)
            B, To, C, h, w = fmap.shape
            fmap = fmap.reshape(B * To, C, h, w)
            if h > MAX_GRID or w > MAX_GRID:  # the conv backbone keeps half the resolution: at most 8 x 8 tokens
                fmap = nn.functional.adaptive_avg_pool2d(fmap, (min(h, MAX_GRID), min(w, MAX_GRID)))
                h, w = fmap.shape[-2:]
            t = self.image_proj[i](fmap).flatten(2).transpose(1, 2)  # (B*To, h*w, d)
            t = t + sincos_2d(h, w, t.shape[-1], t.device).to(t.dtype) + self.camera_embed[i]
            t = t.reshape(B, To, h * w, -1) + self.step_embed[:To, None]
            tokens.append(t.reshape(B, To * h * w, -1))
        if task_token is not None:
            tokens.append(task_token)
        return obs_n, torch.cat(tokens, 1)

    def encode_latent(self, obs_n: torch.Tensor, act_n: torch.Tensor, pad: torch.Tensor):
        """(B, To, d) obs, (B, H, a) actions, (B, H) pad -> latent mean and log-variance (B, latent_dim)."""
        B = len(obs_n)
        if self.vae_state is not None:
            tokens = torch.cat([self.vae_cls.expand(B, -1, -1), self.vae_state(obs_n[:, -1:]), self.vae_action(act_n)], 1)
            pos = self.vae_pos
        else:  # cameras only: [CLS, actions]
            tokens = torch.cat([self.vae_cls.expand(B, -1, -1), self.vae_action(act_n)], 1)
            pos = torch.cat([self.vae_pos[:, :1], self.vae_pos[:, 2:]], 1)
        mask = torch.cat([torch.zeros(B, tokens.shape[1] - pad.shape[1], dtype=torch.bool, device=pad.device), pad], 1)
        h = self.vae(tokens + pos, src_key_padding_mask=mask)  # mask: True = ignored
        mu, logvar = self.latent_out(h[:, 0]).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, obs_n: torch.Tensor, z: torch.Tensor, image_tokens: torch.Tensor | None = None) -> torch.Tensor:
        B = len(obs_n)
        if self.state_in is not None:
            tokens = torch.cat([self.latent_in(z)[:, None], self.state_in(obs_n)], 1) + self.enc_pos
        else:
            tokens = self.latent_in(z)[:, None] + self.enc_pos[:, :1]
        if image_tokens is not None:
            tokens = torch.cat([tokens, image_tokens], 1)
        memory = self.encoder(tokens)
        h = self.decoder(self.queries.expand(B, -1, -1), memory)
        return self.action_out(h)

    def loss(self, batch):
        c = self.config
        obs_n, image_tokens = self.encode(batch)
        act_n, pad = self.act_norm(batch["action"].to(obs_n.device)), batch["action_pad"].to(obs_n.device)
        mu, logvar = self.encode_latent(obs_n, act_n, pad)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        pred = self.decode(obs_n, z, image_tokens)
        valid = (~pad).float()[:, :, None]
        l1 = ((pred - act_n).abs() * valid).sum() / (valid.sum() * c.act_dim).clamp(min=1)
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(-1).mean()
        loss = l1 + c.kl_weight * kl
        return loss, {"l1": l1.item(), "kl": kl.item()}

    def predict_normalized(self, obs_n, generators=None):  # deterministic: nothing to sample
        """`obs_n`: normalized vector features (B, To, d), or what `encode` returns (with image tokens)."""
        obs_n, image_tokens = obs_n if isinstance(obs_n, tuple) else (obs_n, None)
        z = torch.zeros(len(obs_n), self.config.latent_dim, device=obs_n.device)
        return self.decode(obs_n, z, image_tokens)
