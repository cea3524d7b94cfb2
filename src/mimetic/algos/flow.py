"""Flow matching (rectified flow) on action chunks with the Diffusion Policy U-Net (see
`mimetic.policies.flow`). Same defaults as `diffusion`, sampled with 4 Euler steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mimetic.algos.diffusion import resolve_action_start
from mimetic.algos.trainer import TrainConfig, train_supervised
from mimetic.policies.flow import FlowPolicy


@dataclass
class Config(TrainConfig):
    ema_decay: float = 0.995
    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    action_start: int | None = None  # default -(n_obs_steps - 1)
    down_dims: list[int] = field(default_factory=lambda: [64, 128, 256])
    kernel_size: int = 5
    n_groups: int = 8
    num_inference_steps: int = 4
    norm_obs: str = "minmax"
    norm_action: str = "minmax"


def train(cfg: Config, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True) -> FlowPolicy:
    resolve_action_start(cfg)
    return train_supervised(FlowPolicy, "flow", cfg, dataset, run_dir, env=env, env_options=env_options,
                            resume=resume, progress=progress)
