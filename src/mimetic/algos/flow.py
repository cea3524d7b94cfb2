"""Flow matching (rectified flow) on action chunks with the Diffusion Policy U-Net (see
`mimetic.policies.flow`). Same defaults as `diffusion` (with cameras: batch 64, 4000 steps, the first half a
regression warm-up), sampled with 4 Euler steps; cameras condition the
U-Net through the observation encoder as for `diffusion`.
"""

from __future__ import annotations

from mimetic.algos.trainer import IMAGE_DEFAULTS, method_config, train_supervised
from mimetic.policies.flow import FlowConfig, FlowPolicy

# the configuration benchmarked on Meta-World and reach-fork (BENCHMARKS.md): minutes on one CPU core. A policy
# that reads a camera trains 4000 steps, the first half a regression warm-up of its image encoder: chosen on
# Meta-World validation seeds, where it took flow from half of visual BC to BC's level (BENCHMARKS.md, "Sixth step").
Config = method_config(FlowConfig, ema_decay=0.995, batch_size=128, steps=2000,
                       images={**IMAGE_DEFAULTS, "steps": 4000, "regression_warmup": 0.5})


def train(cfg, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True, **kw) -> FlowPolicy:
    return train_supervised(FlowPolicy, "flow", cfg, dataset, run_dir, env=env, env_options=env_options,
                            resume=resume, progress=progress, **kw)
