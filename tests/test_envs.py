import numpy as np
import pytest

from mimetic.envs import list_envs, make_env, make_expert
from mimetic.errors import MimeticError
from mimetic.evaluate import evaluate, wilson_interval


def test_reach_expert_succeeds_and_seeds_reproduce():
    env = make_env("reach")
    o1, _ = env.reset(seed=5)
    o2, _ = env.reset(seed=6)
    o3, _ = env.reset(seed=5)
    assert np.array_equal(o1, o3) and not np.array_equal(o1, o2)
    res = evaluate(make_expert("reach"), "reach", 100)
    assert res.success_rate == 1.0 and res.episodes == 100


def test_random_actions_rarely_reach():
    from mimetic.actors import RandomActor

    env = make_env("reach")
    res = evaluate(RandomActor(env.action_space, seed=0), "reach", 100)
    assert res.ci95[1] < 0.5  # a random policy does not solve the task: the success check can fail


def test_actor_with_old_reset_signature_runs():
    """A user-written actor whose reset takes only num_envs (no seeds) still rolls out and evaluates."""
    from mimetic.actors import reset_actor
    from mimetic.rollout import rollout

    expert = make_expert("reach")

    class OldActor:
        def __init__(self):
            self.resets = []

        def reset(self, num_envs):
            self.resets.append(num_envs)
            expert.reset(num_envs)

        def act(self, obs):
            return expert.act(obs)

    old = OldActor()
    res = evaluate(old, "reach", 5, num_envs=2)
    assert res.episodes == 5 and res.success_rate == 1.0 and old.resets == [2, 2, 1]
    episodes = rollout("reach", OldActor(), [0, 1, 2])
    assert len(episodes) == 3

    class KwargsActor(OldActor):
        def reset(self, num_envs, **kwargs):
            self.resets.append((num_envs, kwargs))

    k = KwargsActor()
    reset_actor(k, 2, [7, 8])
    reset_actor(k, 1, None)
    assert k.resets == [(2, {"seeds": [7, 8]}), (1, {})]

def test_metaworld_tasks_and_expert():
    names = [n for n in list_envs() if n.startswith("metaworld/")]
    assert len(names) == 50
    for n in names:
        make_expert(n)  # every task has its scripted expert
    env = make_env("metaworld/drawer-open-v3")
    assert env.observation_space.shape == (39,) and env.action_space.shape == (4,)
    o1, _ = env.reset(seed=3)
    o2, _ = env.reset(seed=3)
    assert np.array_equal(o1, o2)
    res = evaluate(make_expert("metaworld/drawer-open-v3"), "metaworld/drawer-open-v3", 10, num_envs=5)
    assert res.success_rate >= 0.9
    assert res.mean_length < 500  # ends at the first success


def test_gym_env_reports_success():
    env = make_env("gym/CartPole-v1")
    _, info = env.reset(seed=0)
    assert info["success"] is False
    *_, info = env.step(0)
    assert "success" in info


@pytest.mark.parametrize("name", ["nope", "metaworld/nope-v3", "gym/NoSuchEnv-v0"])
def test_unknown_env(name):
    with pytest.raises(MimeticError, match="nope|NoSuchEnv"):
        make_env(name)


def test_wilson_interval():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_metaworld_task_list_matches_metaworld():
    """`mimetic envs` lists Meta-World tasks from a written-out list (no metaworld import): it must be metaworld's."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    from mimetic.envs.metaworld import TASKS

    assert sorted(TASKS) == sorted(ALL_V3_ENVIRONMENTS) and len(TASKS) == 50
