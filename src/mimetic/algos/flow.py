"""Flow matching (rectified flow) on action chunks with the Diffusion Policy U-Net (see
`mimetic.policies.flow`). Same defaults as `diffusion` (batch 64 with cameras), sampled with 4 Euler steps; cameras condition the
U-Net through the observation encoder as for `diffusion`.
"""

from __future__ import annotations

from mimetic.algos.trainer import method_config, train_supervised
from mimetic.policies.flow import FlowConfig, FlowPolicy

# the configuration benchmarked on Meta-World and reach-fork (BENCHMARKS.md): minutes on one CPU core
Config = method_config(FlowConfig, ema_decay=0.995, batch_size=128, steps=2000)


def train(cfg, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True, **kw) -> FlowPolicy:
    return train_supervised(FlowPolicy, "flow", cfg, dataset, run_dir, env=env, env_options=env_options,
                            resume=resume, progress=progress, **kw)
