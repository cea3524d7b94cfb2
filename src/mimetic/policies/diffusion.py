"""Diffusion Policy (Chi et al. 2023) on state and camera observations: DDPM training, DDIM sampling.

Training: a clean normalized action chunk x0 (min-max normalized to [-1, 1]), a step t drawn
uniformly from the `num_train_timesteps` steps of a "squaredcos_cap_v2" (cosine) schedule, and
x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. The U-Net predicts x0 (`prediction_type="sample"`, the
default) or eps (`"epsilon"`, Diffusion Policy's choice for its large U-Nets); the loss is their MSE. With
the small CPU-sized U-Net, sample prediction scored higher on Meta-World validation seeds
(benchmarks/generative_ablation.py). Windows that run past an episode's edges repeat the edge
action (see `mimetic.data.windows`), as in Diffusion Policy, so every chunk position is a target.

Inference: deterministic DDIM (eta = 0) in `num_inference_steps` steps, "leading" timestep
spacing, predicted x0 clipped to [-1, 1], starting from noise drawn from the episode's generator
(seeded from the episode's seed, see `mimetic.policies.base`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mimetic.errors import MimeticError
from mimetic.policies.unet import ChunkGenerativeConfig, ChunkGenerativePolicy

PREDICTION_TYPES = ("epsilon", "sample")


def cosine_alphas_cumprod(steps: int, max_beta: float = 0.999) -> torch.Tensor:
    """abar_t of the squaredcos_cap_v2 schedule (Nichol & Dhariwal 2021), as diffusers computes it."""
    def abar(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - abar((i + 1) / steps) / abar(i / steps), max_beta) for i in range(steps)]
    return torch.cumprod(1 - torch.tensor(betas, dtype=torch.float64), 0).float()


@dataclass
class DiffusionConfig(ChunkGenerativeConfig):
    num_train_timesteps: int = 100
    prediction_type: str = "sample"  # sample (predict the clean chunk: chosen on validation seeds) | epsilon
    clip_sample: bool = True


class DiffusionPolicy(ChunkGenerativePolicy):
    type_name = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig):
        if config.prediction_type not in PREDICTION_TYPES:
            raise MimeticError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, got {config.prediction_type!r}")
        super().__init__(config)
        self.register_buffer("alphas_cumprod", cosine_alphas_cumprod(config.num_train_timesteps), persistent=False)

    def loss(self, batch):
        if (warm := self.warmup_loss(batch)) is not None:
            return warm
        c = self.config
        cond, x0, aux = self.training_targets(batch)
        eps = torch.randn_like(x0)
        t = torch.randint(0, c.num_train_timesteps, (len(x0),), device=x0.device)
        ab = self.alphas_cumprod[t][:, None, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        target = eps if c.prediction_type == "epsilon" else x0
        mse = torch.nn.functional.mse_loss(self.model(xt, t, cond), target)
        return mse + aux, {"mse": mse.item(), "aux": aux.item()}

    def timesteps(self, steps: int) -> list[int]:
        stride = self.config.num_train_timesteps // steps
        return [i * stride for i in reversed(range(steps))]

    def predict_normalized(self, obs_n, generators=None, steps: int | None = None):
        c = self.config
        steps = steps or self.sampling_steps
        cond = self.condition(obs_n)
        x = self.noise((len(obs_n), c.horizon, c.act_dim), generators)
        ts = self.timesteps(steps)
        abar = self.alphas_cumprod.tolist()
        for i, t in enumerate(ts):
            ab = abar[t]
            ab_prev = abar[ts[i + 1]] if i + 1 < len(ts) else 1.0
            out = self.denoise(x, torch.full((len(x),), t, device=x.device), cond)
            if c.prediction_type == "epsilon":
                x0 = (x - math.sqrt(1 - ab) * out) / math.sqrt(ab)
            else:
                x0 = out
            if c.clip_sample:
                x0 = x0.clamp(-1, 1)
            eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
            x = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
        return x
