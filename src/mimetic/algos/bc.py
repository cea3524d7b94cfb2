"""Behavioral cloning: supervised regression of the expert's actions with an MLP policy.

Heads: deterministic (MSE), gaussian (NLL), gmm (NLL of a 5-component mixture). Optional
observation history (`n_obs_steps`) and action chunks (`horizon`, executing `n_action_steps`).
Options: the trainer's (`TrainConfig`) and the policy's (`MLPConfig`).
"""

from __future__ import annotations

from mimetic.algos.trainer import method_config, train_supervised
from mimetic.policies.mlp import MLPConfig, MLPPolicy

# 3000 steps: the configuration benchmarked on Meta-World (BENCHMARKS.md), under a minute on one CPU core
Config = method_config(MLPConfig, steps=3000)


def train(cfg, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True, **kw) -> MLPPolicy:
    return train_supervised(MLPPolicy, "bc", cfg, dataset, run_dir, env=env, env_options=env_options,
                            resume=resume, progress=progress, **kw)
