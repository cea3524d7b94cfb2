"""ACT: a CVAE transformer predicting action chunks (see `mimetic.policies.act`).

Defaults for state-based tasks: chunks of 16 actions, 8 executed per prediction (or use
`mimetic eval --temporal-ensemble M`), a small transformer (d=128, 2+2+2 layers), KL weight 10.
"""

from __future__ import annotations

from dataclasses import dataclass

from mimetic.algos.trainer import TrainConfig, train_supervised
from mimetic.policies.act import ACTPolicy


@dataclass
class Config(TrainConfig):
    lr: float = 3e-4
    n_obs_steps: int = 1
    horizon: int = 16
    n_action_steps: int = 8
    dim_model: int = 128
    n_heads: int = 4
    dim_feedforward: int = 512
    n_vae_layers: int = 2
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    latent_dim: int = 16
    kl_weight: float = 10.0
    dropout: float = 0.1


def train(cfg: Config, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True) -> ACTPolicy:
    return train_supervised(ACTPolicy, "act", cfg, dataset, run_dir, env=env, env_options=env_options,
                            resume=resume, progress=progress)
