"""Task-balanced batches (`--task-sampling tasks`) for multi-task datasets."""

import numpy as np
import pytest
import torch

from mimetic.data import Dataset, Episode
from mimetic.data.windows import WindowSampler, task_balanced_weights, window_index
from mimetic.errors import MimeticError
from test_learning import BC, train_run


def test_weights_give_every_task_the_same_share():
    tasks = np.repeat([0, 1, 2], [100, 10, 1])
    w = task_balanced_weights(tasks)
    shares = [w[tasks == t].sum() for t in range(3)]
    np.testing.assert_allclose(shares, shares[0])
    assert task_balanced_weights(np.zeros(50)) is None  # one task: frames are drawn alike, as without the option


def _two_task_sampler(weights_of):
    n_a, n_b = 200, 20
    tasks = np.repeat([0, 1], [n_a, n_b])
    obs = np.stack([tasks, np.zeros(len(tasks))], 1).astype(np.float32)  # the first dimension says the task
    index = window_index(np.array([0, n_a]), np.array([n_a, n_a + n_b]), n_obs_steps=2)
    return WindowSampler(obs, np.zeros((len(tasks), 1), np.float32), index, weights=weights_of(tasks)), n_b / len(tasks)


@pytest.mark.parametrize("balanced", [False, True])
def test_balanced_batches_draw_a_small_task_as_often_as_a_large_one(balanced):
    sampler, frame_share = _two_task_sampler(task_balanced_weights if balanced else lambda t: None)
    gen = torch.Generator().manual_seed(0)
    drawn = torch.cat([sampler.sample(500, gen)["obs"][:, -1, 0] for _ in range(20)])
    share = float(drawn.mean())  # 10000 draws: the share's standard error is at most 0.005
    assert abs(share - (0.5 if balanced else frame_share)) < 0.025, share


def test_weights_of_the_wrong_length_are_refused():
    with pytest.raises(MimeticError, match="weights must be 220"):
        _two_task_sampler(lambda t: np.ones(5))


def test_trainer_balances_the_tasks(tmp_path):
    """The same (constant) observation, action +1 in task "a" (one 10-step episode) and -1 in task "b" (four of
    20 steps). A blind regression learns the mean action of what it is shown: over frames (10 - 80) / 90 = -0.78,
    over tasks 0."""
    obs = np.zeros((1, 3), np.float32)
    episodes = [Episode(np.zeros((10, 3)), np.ones((10, 1)), np.zeros(10), np.zeros(10), task="a")]
    episodes += [Episode(np.zeros((20, 3)), -np.ones((20, 1)), np.zeros(20), np.zeros(20), task="b") for _ in range(4)]
    ds = Dataset.create(tmp_path / "demos", episodes, fps=10)
    out = {}
    for sampling in ("frames", "tasks"):
        policy = train_run("bc", {**BC, "head": "deterministic", "steps": 300, "val_fraction": 0.0,
                                  "task_sampling": sampling}, ds, tmp_path / sampling)
        with torch.no_grad():
            out[sampling] = float(policy.predict(torch.as_tensor(obs)[:, None]).reshape(-1)[0])
    assert abs(out["frames"] - (-70 / 90)) < 0.1, out
    assert abs(out["tasks"]) < 0.1, out


def test_the_validation_holdout_takes_every_task_in_turn():
    from mimetic.algos.trainer import split_episodes

    tasks = np.repeat(np.arange(10), 10)  # MT10's shape: 10 demonstrations of each of 10 tasks
    for seed in range(20):
        plain = split_episodes(100, 0.1, seed)[1]
        train, val = split_episodes(100, 0.1, seed, tasks=tasks)
        assert sorted([*train, *val]) == list(range(100)) and len(val) == len(plain) == 10
        assert np.bincount(tasks[val], minlength=10).tolist() == [1] * 10  # one of each task
    # a plain shuffle often takes two or more of one task's ten (what the per-task turn prevents)
    assert any(np.bincount(tasks[split_episodes(100, 0.1, s)[1]]).max() >= 2 for s in range(20))
    uneven = np.repeat([0, 1, 2], [12, 3, 5])
    counts = np.bincount(uneven[split_episodes(20, 0.3, 0, tasks=uneven)[1]], minlength=3)
    assert counts.sum() == 6 and counts.max() - counts.min() <= 1
    for seed in range(5):  # one task: exactly the split without tasks
        for a, b in zip(split_episodes(30, 0.2, seed), split_episodes(30, 0.2, seed, tasks=np.zeros(30, int))):
            np.testing.assert_array_equal(a, b)


def test_training_holds_out_every_task_in_turn(tmp_path):
    """The trainer's own holdout on a multi-task dataset: 4 tasks of 5 synthetic episodes, val_fraction 0.2, for
    training seeds where a plain shuffle takes two of one task: one held-out episode of each task."""
    import json

    from mimetic.algos.trainer import split_episodes

    tasks = np.repeat(np.arange(4), 5)
    seeds = [s for s in range(50) if np.bincount(tasks[split_episodes(20, 0.2, s)[1]]).max() >= 2][:2]
    assert seeds, "no seed where a plain shuffle is uneven: the test cannot tell"
    episodes = [Episode(np.zeros((4, 3)), np.zeros((4, 1)), np.zeros(4), np.zeros(4), task=f"task {t}") for t in tasks]
    ds = Dataset.create(tmp_path / "demos", episodes, fps=10)
    for seed in seeds:
        train_run("bc", {**BC, "steps": 1, "val_fraction": 0.2, "seed": seed}, ds, tmp_path / str(seed))
        held_out = json.loads((tmp_path / str(seed) / "train.json").read_text())["val_episodes"]
        assert sorted(tasks[held_out].tolist()) == [0, 1, 2, 3], (seed, held_out)
