"""ACT: a CVAE transformer predicting action chunks (see `mimetic.policies.act`).

Defaults for state-based tasks: chunks of 16 actions, 8 executed per prediction (or use
`mimetic eval --temporal-ensemble M`), a small transformer (d=64, feed-forward 256, 2+2+2 layers), KL weight 10; 2000 steps at batch 64,
lr 1e-3 (about 3 minutes on one CPU core for a state-based task; the same batch and steps with cameras). Cameras become tokens: each camera's backbone
feature map (before pooling, at most 8 x 8 positions) projected to dim_model, with 2-D sinusoidal position,
camera and observation-step embeddings, next to the state tokens (see `mimetic.policies.act`).
"""

from __future__ import annotations

from mimetic.algos.trainer import method_config, train_supervised
from mimetic.policies.act import ACTConfig, ACTPolicy

# the configuration benchmarked on Meta-World and reach-fork (BENCHMARKS.md): minutes on one CPU core
Config = method_config(ACTConfig, lr=1e-3, batch_size=64, steps=2000)


def train(cfg, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True, **kw) -> ACTPolicy:
    return train_supervised(ACTPolicy, "act", cfg, dataset, run_dir, env=env, env_options=env_options,
                            resume=resume, progress=progress, **kw)
