"""`mimetic train gail`: GAIL with a SAC (default) or PPO generator; see `mimetic.algos.adversarial.training`."""

from __future__ import annotations

from dataclasses import dataclass

from mimetic.algos.adversarial.training import AdversarialConfig, train_adversarial


@dataclass
class Config(AdversarialConfig):
    pass


def train(cfg: Config, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True):
    return train_adversarial("gail", cfg, dataset, run_dir, env=env, env_options=env_options, resume=resume, progress=progress)
