"""The backbone of the generative chunk policies (diffusion, flow): a 1-D temporal conv U-Net
with FiLM conditioning, as in Diffusion Policy (Chi et al. 2023), sized for state inputs.

The network maps a noisy action chunk x (B, H, a), a noise level / time t (B,) and a condition
(the flattened To encoded observations: normalized vector features and, with cameras, the observation
encoder's features of every frame) to a chunk of the same shape. Every residual block
modulates its features with a per-channel scale and bias computed from [embed(t), condition].

`ChunkGenerativePolicy` holds what diffusion and flow share: config fields, the U-Net, the
condition, the validation of the chunk sizes, the number of sampling steps, and `denoise`, the U-Net call
used while sampling: outside training and autograd it runs a TorchScript trace of the U-Net (one
per batch size and device, sharing the live parameters), which removes most of the Python per-op
overhead that dominates a small U-Net on a CPU (about 3x faster per sampling step; measured in
benchmarks/inference_cost.py). The trace computes the same function as the eager module.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from mimetic.errors import MimeticError
from mimetic.policies.base import Policy, PolicyConfig


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / max(1, half - 1))
        x = t.float()[:, None] * freqs[None]
        return torch.cat([x.sin(), x.cos()], dim=-1)


class ConvBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int):
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(groups, c_out), nn.Mish())


class FiLMResBlock(nn.Module):
    """conv -> FiLM(per-channel scale, bias computed from the condition) -> conv, plus a residual connection."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int):
        super().__init__()
        self.c_out = c_out
        self.block1 = ConvBlock(c_in, c_out, kernel, groups)
        self.block2 = ConvBlock(c_out, c_out, kernel, groups)
        self.residual = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h = self.block1(x) * scale + bias
        return self.block2(h) + self.residual(x)


class ConditionalUnet1D(nn.Module):
    def __init__(self, act_dim: int, cond_dim: int, down_dims: list[int], kernel: int = 5, groups: int = 8,
                 time_embed_dim: int = 64):
        super().__init__()
        self.time_embed = nn.Sequential(SinusoidalEmbedding(time_embed_dim), nn.Linear(time_embed_dim, 4 * time_embed_dim),
                                        nn.Mish(), nn.Linear(4 * time_embed_dim, time_embed_dim))
        dims = [act_dim, *down_dims]
        self.down = nn.ModuleList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(down_dims) - 1
            self.down.append(nn.ModuleList([FiLMResBlock(a, b, kernel, groups), FiLMResBlock(b, b, kernel, groups),
                                            nn.Conv1d(b, b, 3, stride=2, padding=1) if not last else nn.Identity()]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([FiLMResBlock(mid, mid, kernel, groups), FiLMResBlock(mid, mid, kernel, groups)])
        self.up = nn.ModuleList()
        for a, b in reversed(list(zip(dims[1:-1], dims[2:]))):  # level b (with its skip) -> a, upsampled x2
            self.up.append(nn.ModuleList([FiLMResBlock(2 * b, a, kernel, groups), FiLMResBlock(a, a, kernel, groups),
                                          nn.ConvTranspose1d(a, a, 4, stride=2, padding=1)]))
        self.final = nn.Sequential(ConvBlock(down_dims[0], down_dims[0], kernel, groups), nn.Conv1d(down_dims[0], act_dim, 1))
        # The FiLM scales and biases of all blocks, in the order forward() uses them, from one Mish + Linear of
        # [embed(t), cond] (the same function as one Linear per block, in one call instead of one per block).
        blocks = [b for level in self.down for b in level[:2]] + list(self.mid) + [b for level in self.up for b in level[:2]]
        self.film_sizes = [c for b in blocks for c in (b.c_out, b.c_out)]
        self.film = nn.Sequential(nn.Mish(), nn.Linear(time_embed_dim + cond_dim, sum(self.film_sizes)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, H, a), t (B,), cond (B, cond_dim) -> (B, H, a)."""
        film = iter(self.film(torch.cat([self.time_embed(t), cond], dim=-1))[:, :, None].split(self.film_sizes, dim=1))
        h = x.transpose(1, 2)
        skips = []
        for res1, res2, down in self.down:
            h = res1(h, next(film), next(film))
            h = res2(h, next(film), next(film))
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, next(film), next(film))
        for res1, res2, up in self.up:
            h = res1(torch.cat([h, skips.pop()], dim=1), next(film), next(film))
            h = up(res2(h, next(film), next(film)))
        return self.final(h).transpose(1, 2)


@dataclass
class ChunkGenerativeConfig(PolicyConfig):
    """Diffusion Policy's chunking: To=2 observations, Tp=16 predicted actions from step -(To-1); Ta=4 executed
    (Diffusion Policy: 8), and the observations reach FiLM through an MLP (`cond_hidden`): both chosen on
    validation seeds (benchmarks/results/generative_ablation.md)."""

    ABSENT: ClassVar[dict] = {"cond_hidden": []}  # checkpoints from before cond_hidden fed FiLM directly

    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 4
    action_start: int | None = None  # None: -(n_obs_steps - 1), resolved when the config is made
    norm_obs: str = "minmax"
    norm_action: str = "minmax"
    down_dims: list[int] = field(default_factory=lambda: [32, 64])  # minutes on a CPU; [64, 128]: 3x the time, no better
    kernel_size: int = 3
    n_groups: int = 8
    time_embed_dim: int = 64
    # hidden sizes of an MLP (Mish) between the encoded observations and the FiLM layer; [] feeds them straight in
    # (Diffusion Policy's low-dimensional setting, which a U-Net this small cannot make up for)
    cond_hidden: list[int] = field(default_factory=lambda: [256, 256])
    # weight of an auxiliary loss: a linear head regresses the normalized action chunk from the FiLM condition
    # (MSE), so the observation encoder also gets the direct gradient BC's encoder gets; 0 = off. Used in training
    # only: sampling does not read the head.
    aux_weight: float = 0.0
    # noisy copies of each training chunk per step, all sharing one encoding of their observation: the observation
    # encoder (a camera's conv net) runs once per sample and its gradient averages over this many noise draws,
    # for the price of a larger U-Net batch. 1: one draw per sample (Diffusion Policy).
    noise_samples: int = 1
    # the fraction of the training steps, at the start, in which the observation encoder and the condition MLP
    # learn to regress the normalized action chunk through a linear head (BC's loss), before the generative loss
    # trains everything (each part with its own learning-rate schedule). With cameras the denoising loss alone
    # teaches the encoder slowly (BENCHMARKS.md, "Learning from pixels"). 0 = off.
    regression_warmup: float = 0.0
    num_inference_steps: int = 10
    sample_seed: int = 0  # mixed with each episode's seed to seed that episode's sampling noise (see PolicyActor)

    def __post_init__(self):
        super().__post_init__()
        if self.action_start is None:  # a config is complete once made: objects built from it never write into it
            self.action_start = -(self.n_obs_steps - 1)


def check_sampling_steps(config: ChunkGenerativeConfig, steps: int) -> None:
    """Sampling steps: at least 1, and for diffusion at most its number of training timesteps."""
    limit = getattr(config, "num_train_timesteps", None)
    if steps < 1 or (limit is not None and steps > limit):
        raise MimeticError(f"sampling steps must be in 1..{limit or 'any'}, got {steps} (num_inference_steps)")


class ChunkGenerativePolicy(Policy):
    """Shared part of DiffusionPolicy and FlowPolicy: the U-Net on action chunks, conditioned on observations."""

    config_class = ChunkGenerativeConfig

    def __init__(self, config: ChunkGenerativeConfig):
        if config.n_obs_steps < 1 or config.horizon < 1:
            raise MimeticError(f"n_obs_steps and horizon must be >= 1, got {config.n_obs_steps} and {config.horizon}")
        if not -config.action_start < config.horizon:
            raise MimeticError(f"the chunk (horizon {config.horizon}, action_start {config.action_start}) must contain the current step")
        levels = len(config.down_dims)
        if levels < 1 or any(d <= 0 or d % config.n_groups for d in config.down_dims):
            raise MimeticError(f"down_dims {config.down_dims} must be positive multiples of n_groups={config.n_groups}")
        if config.horizon % (2 ** (levels - 1)):
            raise MimeticError(f"horizon {config.horizon} must be divisible by 2^(len(down_dims)-1) = {2 ** (levels - 1)}")
        if config.aux_weight < 0:
            raise MimeticError(f"aux_weight must be >= 0, got {config.aux_weight}")
        if config.noise_samples < 1:
            raise MimeticError(f"noise_samples must be >= 1, got {config.noise_samples}")
        if not 0.0 <= config.regression_warmup < 1.0:
            raise MimeticError(f"regression_warmup must be a fraction of the steps in [0, 1), got {config.regression_warmup}")
        check_sampling_steps(config, config.num_inference_steps)
        super().__init__(config)
        # the flattened encoded observations, and the task vector once (a task-conditioned policy)
        cond_dim = config.n_obs_steps * self.obs_encoder.output_dim + (config.task_dim if self.task_cond is not None else 0)
        layers = []
        for width in config.cond_hidden:
            layers += [nn.Linear(cond_dim, width), nn.Mish()]
            cond_dim = width
        self.cond_mlp = nn.Sequential(*layers)  # empty: the identity
        self.model = ConditionalUnet1D(config.act_dim, cond_dim, list(config.down_dims),
                                       config.kernel_size, config.n_groups, config.time_embed_dim)
        # the regression head: the auxiliary loss's, and the warm-up's
        regress = config.aux_weight > 0 or config.regression_warmup > 0
        self.aux_head = nn.Linear(cond_dim, config.horizon * config.act_dim) if regress else None
        # the warm-up trains a part of the network, the generative loss the rest: some steps leave parameters unused
        self.varying_graph = config.regression_warmup > 0
        self.sampling_steps = config.num_inference_steps
        self._traced: dict[tuple, torch.jit.ScriptModule] = {}

    @property
    def sample_salt(self) -> int:
        return self.config.sample_seed

    def set_sampling_steps(self, steps: int) -> None:
        """Sample with `steps` denoising (DDIM) or integration (Euler) steps from now on (the config keeps its own)."""
        check_sampling_steps(self.config, steps)
        self.sampling_steps = steps

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """One U-Net evaluation during sampling: the traced U-Net when no gradient is needed, else eager."""
        if self.training or torch.is_grad_enabled():
            return self.model(x, t, cond)
        key = (x.shape[0], x.device, x.dtype)
        traced = self._traced.get(key)
        if traced is None:
            with warnings.catch_warnings():  # torch.jit.trace warns that it is deprecated in favour of torch.compile,
                warnings.simplefilter("ignore")  # which compiles for tens of seconds on a CPU and runs slower here
                traced = self._traced[key] = torch.jit.trace(self.model, (x, t, cond), check_trace=False)
        return traced(x, t, cond)

    def train(self, mode: bool = True):
        self._traced.clear()  # traces hold references to the parameters; drop them when anything may change
        return super().train(mode)

    def __getstate__(self):  # copies (e.g. the trainer's EMA) must trace their own parameters, not share these traces
        return {**self.__dict__, "_traced": {}}

    def aux_loss(self, cond: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        """The auxiliary regression loss (weighted) of the normalized chunk (B, H, a) from the condition; 0 when off."""
        if self.config.aux_weight == 0:
            return cond.new_zeros(())
        return self.config.aux_weight * self.regression_mse(cond, chunk)

    def warmup_steps(self, total: int) -> int:
        return int(round(self.config.regression_warmup * total))

    def regression_mse(self, cond: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(self.aux_head(cond).reshape(chunk.shape), chunk)

    def warmup_loss(self, batch) -> tuple[torch.Tensor, dict[str, float]] | None:
        """During the regression warm-up (training, the first `warmup_steps` of the run): the regression loss of the
        normalized chunk from the condition, which trains the encoder, the condition MLP and the head; else None."""
        if not (self.training and self.step < self.warmup_steps(self.total_steps)):
            return None
        mse = self.regression_mse(*self.condition_and_chunk(batch))
        return mse, {"regression": mse.item()}

    def condition_and_chunk(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch's FiLM condition and its normalized action chunk (B, H, a)."""
        cond = self.condition(self.encode(batch))
        return cond, self.act_norm(batch["action"].to(cond.device))

    def training_targets(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The condition and normalized action chunk of a training batch, each repeated `noise_samples` times (one
        encoder pass, several noise draws), and the auxiliary loss on the unrepeated pair."""
        cond, chunk = self.condition_and_chunk(batch)
        aux = self.aux_loss(cond, chunk)
        k = self.config.noise_samples
        if k > 1:
            cond, chunk = cond.repeat_interleave(k, 0), chunk.repeat_interleave(k, 0)
        return cond, chunk, aux

    def condition(self, obs_n: torch.Tensor) -> torch.Tensor:
        """(B, To, encoded_dim) encoded observations -> the FiLM condition: the flattened observations (and the task
        vector once, for a task-conditioned policy), through the `cond_hidden` MLP when there is one."""
        obs, task = self.split_task(obs_n)
        flat = obs.reshape(len(obs), -1)
        return self.cond_mlp(flat if task is None else torch.cat([flat, task], -1))
