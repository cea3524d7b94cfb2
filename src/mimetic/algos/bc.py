"""Behavioral cloning: supervised regression of the expert's actions with an MLP policy.

Heads: deterministic (MSE), gaussian (NLL), gmm (NLL of a 5-component mixture). Optional
observation history (`n_obs_steps`) and action chunks (`horizon`, executing `n_action_steps`).
Options: the trainer's (`TrainConfig`) and the policy's (`MLPConfig`), the observation encoder's among them.
Inputs: every observation feature of the dataset by default (`--obs-keys` chooses); cameras go through the
observation encoder (`mimetic.policies.encoders`: a small conv net with spatial softmax by default,
`--vision-backbone resnet18`, `--crop-ratio`, `--color-jitter`, `--shared-backbone`, `--pretrained-backbone FILE`).
With a camera among the inputs, unless given: batch 64, 2000 steps, 2 observation steps, chunks of 16 actions
executing 8 (state: batch 256, 3000 steps, one step, one action).
Where the state names a hand and other points (Meta-World's full state), BC also reads their offsets from the hand
(`relative_to="auto"`; `--relative-to none` turns it off): the development suite 0.812 -> 0.855 (BENCHMARKS.md).
Measured: visual BC on `reach` with the proprioceptive state and a 24 px camera succeeds in 0.70-0.86 of
episodes after 300 steps at the image defaults (0.57-0.66 with one step and single actions), the same BC on the
state alone 0.06-0.09 (tests/test_visual_learning.py).
"""

from __future__ import annotations

from mimetic.algos.trainer import IMAGE_DEFAULTS, method_config, train_supervised
from mimetic.policies.mlp import MLPConfig, MLPPolicy

# 3000 steps: the configuration benchmarked on Meta-World (BENCHMARKS.md), under a minute on one CPU core.
# A policy that reads a camera sees 2 observation steps and predicts chunks of 16 actions, executing 8 (Diffusion
# Policy's horizons): chosen on Meta-World validation seeds, where it beat one step and single actions
# (BENCHMARKS.md, "Tuning for images"); a state policy keeps one step and one action.
# A task-conditioned policy on a multi-task dataset from states: a third of the specialists' total steps, every task
# drawn alike (chosen on MT10's and ML10's validation seeds, BENCHMARKS.md "BC's multi-task default"); blind, or with
# cameras (untested): K x S, frames.
Config = method_config(MLPConfig, steps=3000,
                       images={**IMAGE_DEFAULTS, "n_obs_steps": 2, "horizon": 16, "n_action_steps": 8,
                               "task_sampling": "frames"},
                       multi_task={"steps": 1000, "task_sampling": "tasks"})


def train(cfg, dataset, run_dir, *, env=None, env_options=None, resume=False, progress=True, **kw) -> MLPPolicy:
    return train_supervised(MLPPolicy, "bc", cfg, dataset, run_dir, env=env, env_options=env_options,
                            resume=resume, progress=progress, **kw)
