"""ACT: a CVAE transformer predicting action chunks (see `mimetic.policies.act`).

Defaults for state-based tasks: chunks of 16 actions, 8 executed per prediction (or use
`mimetic eval --temporal-ensemble M`), a small transformer (d=128, 2+2+2 layers), KL weight 10.
"""

from __future__ import annotations

from mimetic.algos.trainer import method_config, train_supervised
from mimetic.policies.act import ACTConfig, ACTPolicy

Config = method_config(ACTConfig, lr=3e-4)


def train(cfg, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True, **kw) -> ACTPolicy:
    return train_supervised(ACTPolicy, "act", cfg, dataset, run_dir, env=env, env_options=env_options,
                            resume=resume, progress=progress, **kw)
