"""Behavioral cloning: supervised regression of the expert's actions with an MLP policy.

Heads: deterministic (MSE), gaussian (NLL), gmm (NLL of a 5-component mixture). Optional
observation history (`n_obs_steps`) and action chunks (`horizon`, executing `n_action_steps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mimetic.algos.trainer import TrainConfig, train_supervised
from mimetic.policies.mlp import MLPPolicy


@dataclass
class Config(TrainConfig):
    head: str = "deterministic"  # deterministic | gaussian | gmm
    hidden: list[int] = field(default_factory=lambda: [256, 256, 256])
    dropout: float = 0.0
    components: int = 5
    n_obs_steps: int = 1
    horizon: int = 1
    n_action_steps: int = 1


def train(cfg: Config, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True) -> MLPPolicy:
    return train_supervised(MLPPolicy, "bc", cfg, dataset, run_dir, env=env, env_options=env_options,
                            resume=resume, progress=progress)
