"""Tabular Maximum-Entropy inverse RL: the method `mimetic train maxent-irl` (METHODS maps it here).

Split by job, so each part reads on its own:
    maxent.py    the training loop: `MaxEntIRLConfig` (= `Config`), `maxent_irl`, `train_maxent_irl`, `train`
    demos.py     demonstrations as tabular index sequences (from Episodes, a Dataset, or sampled)
    reward.py    the run folder: save / `load_reward`, the reward in a world, the learned policy as an actor
    metrics.py   correlation with the true reward, EVD, transfer to a changed world, `reward_report`
    plots.py     true | learned heat maps
The exact dynamic programming (soft value iteration, policy values, visitation frequencies) is in
`mimetic.tabular`, below both the environments and the algorithms.
"""

from __future__ import annotations

from mimetic.algos.irl.demos import Demonstrations, demonstrations_from_episodes, sample_demonstrations, tabular_env
from mimetic.algos.irl.maxent import Config, IRLResult, MaxEntIRLConfig, maxent_irl, train, train_maxent_irl
from mimetic.algos.irl.metrics import bc_policy, expected_value_difference, reward_correlation, reward_report, transfer_experiment
from mimetic.algos.irl.plots import save_reward_heatmap
from mimetic.algos.irl.reward import LearnedReward, is_irl_run, load_reward, policy_actor

__all__ = [
    "Config",
    "Demonstrations",
    "IRLResult",
    "LearnedReward",
    "MaxEntIRLConfig",
    "bc_policy",
    "demonstrations_from_episodes",
    "expected_value_difference",
    "is_irl_run",
    "load_reward",
    "maxent_irl",
    "policy_actor",
    "reward_correlation",
    "reward_report",
    "sample_demonstrations",
    "save_reward_heatmap",
    "tabular_env",
    "train",
    "train_maxent_irl",
    "transfer_experiment",
]
