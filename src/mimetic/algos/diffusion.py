"""Diffusion Policy: DDPM-trained conditional U-Net over action chunks, DDIM sampling (see
`mimetic.policies.diffusion`). Defaults: To=2, Tp=16, Ta=4, actions predicted from step -(To-1)
(`action_start`, derived from `n_obs_steps` unless given), min-max normalization, 100 training
steps of a cosine schedule, the clean chunk predicted (`prediction_type="sample"`), 10 DDIM steps, EMA 0.995,
AdamW with warmup + cosine learning rate; a small U-Net (down_dims [32, 64], kernel 3) whose FiLM layers read
the observations through a [256, 256] MLP, trained 2000 steps at batch 128 (about 2 minutes on one CPU core
for a state-based task; with a camera, batch 64 and 4000 steps, the first half a regression warm-up of the image
encoder, `regression_warmup`). Ta=4, sample prediction and the MLP were chosen on validation seeds
(benchmarks/generative_ablation.py; BENCHMARKS.md "Diffusion and flow pull their weight"). With cameras, the observation encoder's features of the To observations (normalized
state, then one vector per camera and step) condition the U-Net through FiLM. `aux_weight` > 0 adds an auxiliary
regression head on that condition and `noise_samples` K draws K noises per encoded observation (both off by
default: neither reliably helped on validation seeds, BENCHMARKS.md).
"""

from __future__ import annotations

from mimetic.algos.trainer import IMAGE_DEFAULTS, method_config, train_supervised
from mimetic.policies.diffusion import DiffusionConfig, DiffusionPolicy

# action_start None (the policy config's default): -(To-1), as in Diffusion Policy, resolved by the policy config
# the configuration benchmarked on Meta-World and reach-fork (BENCHMARKS.md): minutes on one CPU core. A policy
# that reads a camera trains 4000 steps, the first half a regression warm-up of its image encoder, as flow: chosen
# on Meta-World validation seeds (BENCHMARKS.md, "Sixth step").
Config = method_config(DiffusionConfig, ema_decay=0.995, batch_size=128, steps=2000,
                       images={**IMAGE_DEFAULTS, "steps": 4000, "regression_warmup": 0.5})


def train(cfg, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True, **kw) -> DiffusionPolicy:
    return train_supervised(DiffusionPolicy, "diffusion", cfg, dataset, run_dir, env=env, env_options=env_options,
                            resume=resume, progress=progress, **kw)
