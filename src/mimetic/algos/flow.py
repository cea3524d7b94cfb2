"""Flow matching (rectified flow) on action chunks with the Diffusion Policy U-Net (see
`mimetic.policies.flow`). Same defaults as `diffusion`, sampled with 4 Euler steps.
"""

from __future__ import annotations

from mimetic.algos.diffusion import resolve_action_start
from mimetic.algos.trainer import method_config, train_supervised
from mimetic.policies.flow import FlowConfig, FlowPolicy


# action_start None: derived from n_obs_steps (-(To-1), as in Diffusion Policy) unless given
# the configuration benchmarked on Meta-World and reach-fork (BENCHMARKS.md): minutes on one CPU core
Config = method_config(FlowConfig, ema_decay=0.995, action_start=None, batch_size=128, steps=2000)


def train(cfg, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True, **kw) -> FlowPolicy:
    resolve_action_start(cfg)
    return train_supervised(FlowPolicy, "flow", cfg, dataset, run_dir, env=env, env_options=env_options,
                            resume=resume, progress=progress, **kw)
