"""Flow matching (rectified flow) on action chunks, with the Diffusion Policy U-Net as backbone.

Training: noise x0 ~ N(0, I), a normalized action chunk x1, t ~ U(0, 1), x_t = (1 - t) x0 + t x1;
the U-Net predicts the velocity x1 - x0 (MSE). Inference: `num_inference_steps` Euler steps of
dx/dt = v(x, t) from t = 0 to 1 (one step is the straight-line jump), starting from noise drawn
from the episode's generator (seeded from the episode's seed). The time is fed to the U-Net's
embedding as 100 t.

Without reflow the learned field is curved where the data is multimodal: one Euler step lands on
the conditional mean (the average of the modes), so on `reach-bimodal` 1 step fails like MLP
regression while 2-16 steps pick a mode (benchmarks/results/expressive.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mimetic.policies.unet import ChunkGenerativeConfig, ChunkGenerativePolicy

TIME_SCALE = 100.0  # t in [0, 1] -> the sinusoidal embedding's range used by diffusion steps


@dataclass
class FlowConfig(ChunkGenerativeConfig):
    num_inference_steps: int = 4
    clip_sample: bool = True  # clip the final sample to [-1, 1] (the min-max normalized action range)


class FlowPolicy(ChunkGenerativePolicy):
    type_name = "flow"
    config_class = FlowConfig

    def loss(self, batch):
        if (warm := self.warmup_loss(batch)) is not None:
            return warm
        cond, x1, aux = self.training_targets(batch)
        x0 = torch.randn_like(x1)
        t = torch.rand(len(x1), device=x1.device)
        xt = (1 - t)[:, None, None] * x0 + t[:, None, None] * x1
        mse = torch.nn.functional.mse_loss(self.model(xt, TIME_SCALE * t, cond), x1 - x0)
        return mse + aux, {"mse": mse.item(), "aux": aux.item()}

    def predict_normalized(self, obs_n, generators=None, steps: int | None = None):
        c = self.config
        steps = steps or self.sampling_steps
        cond = self.condition(obs_n)
        x = self.noise((len(obs_n), c.horizon, c.act_dim), generators)
        dt = 1.0 / steps
        for i in range(steps):
            t = torch.full((len(x),), TIME_SCALE * i * dt, device=x.device)
            x = x + dt * self.denoise(x, t, cond)
        return x.clamp(-1, 1) if c.clip_sample else x
