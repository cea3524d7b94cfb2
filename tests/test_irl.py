"""Tabular MaxEnt IRL and the objectworld task (fast: a few seconds)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import mimetic.envs as envs
from mimetic import tabular
from mimetic.algos import irl
from mimetic.data import Dataset, Episode
from mimetic.envs.objectworld import Objectworld
from mimetic.errors import MimeticError
from mimetic.rollout import rollout


def collect(env_options: dict, n: int, seed: int, expert_seed: int = 0) -> list[Episode]:
    """n episodes of the objectworld expert through the project's rollout (seeds seed..seed+n-1)."""
    expert = envs.make_expert("objectworld", seed=expert_seed, **env_options)
    return rollout("objectworld", expert, range(seed, seed + n), env_options=env_options, num_envs=64)


def tiny_mdp(rng: np.random.Generator, S: int = 3, A: int = 2, deterministic: bool = False):
    if deterministic:
        P = np.zeros((S, A, S))
        P[np.arange(S)[:, None], np.arange(A)[None], rng.integers(S, size=(S, A))] = 1.0
    else:
        P = rng.random((S, A, S))
        P /= P.sum(axis=2, keepdims=True)
    return P, rng.normal(size=S)


# ------------------------------------------------------------------ dynamic programming


def test_finite_horizon_soft_vi_matches_trajectory_enumeration():
    # On a deterministic MDP the MaxEnt distribution over action sequences is exp(return) / Z:
    # V_0(s) = log Z(s) and pi_0(a|s) = Z(s, a...) / Z(s), checked by enumerating all A^T sequences.
    rng = np.random.default_rng(0)
    P, r = tiny_mdp(rng, S=3, A=2, deterministic=True)
    nxt = P.argmax(axis=2)
    T = 4
    pol, V = tabular.soft_value_iteration(P, r, horizon=T, return_values=True)
    assert pol.shape == (T, 3, 2)
    for s0 in range(3):
        weights = np.zeros(2)
        for seq in itertools.product(range(2), repeat=T):
            s, ret = s0, 0.0
            for a in seq:
                ret += r[s]
                s = nxt[s, a]
            weights[seq[0]] += np.exp(ret)
        assert np.isclose(V[0, s0], np.log(weights.sum()))
        assert np.allclose(pol[0, s0], weights / weights.sum())


def test_discounted_soft_vi_is_the_soft_bellman_fixed_point():
    rng = np.random.default_rng(1)
    P, r = tiny_mdp(rng, S=4, A=3)
    pol, V = tabular.soft_value_iteration(P, r, gamma=0.8, tol=1e-12, return_values=True)
    Q = r[:, None] + 0.8 * P @ V
    assert np.allclose(V, np.log(np.exp(Q).sum(axis=1)), atol=1e-9)
    assert np.allclose(pol, np.exp(Q - V[:, None]), atol=1e-9)
    assert np.allclose(pol.sum(axis=1), 1.0)


def test_optimal_policy_beats_every_deterministic_policy():
    rng = np.random.default_rng(2)
    P, r = tiny_mdp(rng, S=3, A=3)
    best = tabular.optimal_policy(P, r, gamma=0.9)
    rho = np.full(3, 1 / 3)
    v_best = tabular.expected_return(P, r, best, rho, 40)
    eye = np.eye(3)
    brute = max(tabular.expected_return(P, r, eye[list(p)], rho, 40) for p in itertools.product(range(3), repeat=3))
    assert v_best >= brute - 1e-6
    # finite horizon: the time-dependent optimum is at least as good as any stationary policy
    v_T = tabular.expected_return(P, r, tabular.optimal_policy(P, r, horizon=40), rho, 40)
    assert v_T >= brute - 1e-9


def test_expected_svf_sums_to_horizon_and_matches_env_rollouts():
    world = Objectworld(size=5, horizon=8, wind=0.3, layout_seed=3)
    expert = envs.make_expert("objectworld", size=5, horizon=8, layout_seed=3, seed=1)
    # Monte Carlo through the gymnasium env (its own sampling of wind and moves)
    n = 800
    eps = collect({"size": 5, "horizon": 8, "layout_seed": 3}, n=n, seed=100, expert_seed=7)
    demos = irl.demonstrations_from_episodes(eps, world)
    discounts = {1.0: None, 0.9: demos.step_weights(0.9)}
    for g, weights in discounts.items():
        expected = tabular.expected_svf(world.transition_matrix, expert.policy, world.start_distribution, world.horizon, weights)
        assert np.isclose(expected.sum(), (g ** np.arange(8)).sum())
        visits = np.zeros((n, world.n_states))
        for i, s in enumerate(demos.states):
            np.add.at(visits[i], s, g ** np.arange(len(s)))
        assert np.allclose(visits.mean(axis=0), demos.state_visits(g))
        se = visits.std(axis=0) / np.sqrt(n)
        z = np.abs(visits.mean(axis=0) - expected) / np.maximum(se, 1e-3)
        assert z.max() < 4.5, f"discount {g}: max z-score {z.max():.2f} over {world.n_states} states"


def _mimetic_imports(path) -> list[str]:
    import ast

    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "mimetic":
            out += [f"mimetic.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return [m for m in out if m == "mimetic" or m.startswith("mimetic.")]


def test_tabular_planning_sits_below_envs_and_algos():
    # envs must not import algos: objectworld plans (its success threshold, its expert) with
    # mimetic.tabular, which imports nothing of mimetic but the error type.
    from pathlib import Path

    import mimetic

    src = Path(mimetic.__file__).parent
    assert _mimetic_imports(src / "tabular.py") == ["mimetic.errors"]
    # (mimetic.actors, the actor protocol and FunctionActor on numpy alone, serves the scripted experts)
    above_envs = tuple(f"mimetic.{m}" for m in ("algos", "policies", "rollout", "evaluate", "analysis", "cli", "collect", "teleop", "quickstart"))
    upward = {f.name: [m for m in _mimetic_imports(f) if m.startswith(above_envs)] for f in sorted((src / "envs").glob("*.py"))}
    assert not any(upward.values()), upward
    assert "mimetic.tabular" in _mimetic_imports(src / "envs" / "objectworld.py")


# ------------------------------------------------------------------ env and expert


def test_objectworld_env_and_expert_through_registry():
    env = envs.make_env("objectworld", seed=0)
    assert env.transition_matrix.shape == (100, 5, 100)
    assert np.allclose(env.transition_matrix.sum(axis=2), 1.0)
    assert env.features.shape[0] == 100 and env.true_reward.shape == (100,)
    obs, info = env.reset(seed=5)
    assert obs.shape == (100,) and obs.dtype == np.float32 and info["success"] is False
    assert env.state_index(obs) == info["state"]
    expert = envs.make_expert("objectworld", seed=0)
    action = expert.act(np.stack([obs, obs, obs]))
    assert action.shape == (3, 1) and action.dtype == np.float32 and set(action.ravel()) <= set(range(5))
    eps = collect({}, n=200, seed=1000)
    assert all(len(ep) == env.horizon for ep in eps)
    rate = np.mean([ep.success for ep in eps])
    assert rate > 0.6, rate  # ~0.75 expected (200 episodes: standard error 0.03)
    # the random policy rarely succeeds
    world = env.world
    rng = np.random.default_rng(0)
    uniform = np.full((100, 5), 0.2)
    demos = irl.sample_demonstrations(world.transition_matrix, uniform, world.start_distribution, world.horizon, 400, rng)
    rand_rate = np.mean([world.normalized_return(world.true_reward[s].sum(), s[0]) >= 0.5 for s in demos.states])
    assert rand_rate < 0.3, rand_rate


def test_features_observation_mode_roundtrips():
    world = Objectworld(size=6, observation="features")
    s = np.arange(world.n_states)
    assert np.array_equal(world.state_index(world.observation(s)), s)


# ------------------------------------------------------------------ IRL end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """300 expert episodes on the default 10x10 objectworld -> Dataset -> train_maxent_irl."""
    root = tmp_path_factory.mktemp("irl")
    options = {"size": 10, "layout_seed": 0}
    ds = Dataset.create(root / "demos", collect(options, n=300, seed=0), env="objectworld", env_options=options)
    result = irl.train_maxent_irl(ds, root / "run")
    return root / "run", result, ds, options


def test_maxent_irl_recovers_the_reward(trained):
    run, result, _, _ = trained
    report = irl.reward_report(run)
    assert report["pearson"] >= 0.9, report
    assert report["spearman"] > 0.7, report
    assert 0 <= report["evd"] < 0.1 * report["optimal_return"], report
    assert (run / "reward.png").stat().st_size > 1000


def test_saved_reward_loads_without_pickle(trained):
    run, result, _, options = trained
    assert sorted(p.name for p in run.iterdir() if not p.name.endswith(".png")) == ["metrics.jsonl", "reward.safetensors", "train.json"]
    learned = irl.load_reward(run)
    assert np.allclose(learned.weights, result.weights) and np.allclose(learned.reward, result.reward)
    assert learned.env_name == "objectworld" and learned.env_options == options
    cfg = json.loads((run / "train.json").read_text())
    assert cfg["method"] == "maxent-irl" and cfg["n_demonstrations"] == 300


def test_learned_reward_transfers_better_than_bc(trained):
    _, result, ds, options = trained
    world = Objectworld(**options)
    demos = irl.demonstrations_from_episodes(ds, world)
    for changes in ({"wind": 0.0}, {"layout_seed": 123}):
        out = irl.transfer_experiment(world, result.weights, demos, changes)
        assert out["irl"] > out["bc"], out
        assert out["irl_normalized"] > 0.8, out


def test_tabular_reward_option_runs(tmp_path):
    world = Objectworld(size=5, layout_seed=1)
    pol = tabular.soft_value_iteration(world.transition_matrix, world.true_reward, gamma=0.9)
    demos = irl.sample_demonstrations(world.transition_matrix, pol, world.start_distribution, world.horizon, 50, np.random.default_rng(0))
    res = irl.maxent_irl(world.transition_matrix, world.features, demos, config=irl.MaxEntIRLConfig(steps=20, tabular=True))
    assert res.tabular.shape == (25,) and res.reward.shape == (25,) and np.isfinite(res.reward).all()


# ------------------------------------------------------------------ bad input


def test_demonstrations_of_the_wrong_size_raise(tmp_path):
    small = collect({"size": 6}, n=2, seed=0)
    with pytest.raises(MimeticError, match=r"episode 0.*observations have shape \(12, 36\).*expects vectors of 100"):
        irl.demonstrations_from_episodes(small, Objectworld(size=10))
    ds = Dataset.create(tmp_path / "small", small, env="objectworld", env_options={"size": 6})
    with pytest.raises(MimeticError, match="expects vectors of 100"):
        irl.train_maxent_irl(ds, tmp_path / "run", env_options={"size": 10})
    bad_action = Episode(observations=small[0].observations, actions=np.full((12, 1), 7.0), rewards=np.zeros(12), successes=np.zeros(12))
    with pytest.raises(MimeticError, match="action 7.0 at step 0"):
        irl.demonstrations_from_episodes([bad_action], Objectworld(size=6))
    with pytest.raises(MimeticError, match="not a tabular MDP"):
        irl.train_maxent_irl(ds, tmp_path / "run2", env_name="reach", env_options={})
    with pytest.raises(MimeticError, match="wind"):
        envs.make_env("objectworld", wind=1.5)


# ------------------------------------------------------------------ the CLI: train, eval, reward


@pytest.fixture(scope="module")
def cli_run(trained, tmp_path_factory):
    """`mimetic train maxent-irl --seed 3` on the fixture's demonstrations, through the CLI."""
    from mimetic.cli import main

    _, _, ds, options = trained
    run = tmp_path_factory.mktemp("irl-cli") / "run"
    assert main(["-q", "train", "maxent-irl", "--data", str(ds.root), "--out", str(run), "--seed", "3"]) == 0
    return run, options


def test_train_maxent_irl_takes_seed_and_refuses_resume_in_one_line(cli_run, capsys):
    from mimetic.cli import main

    run, options = cli_run
    info = json.loads((run / "train.json").read_text())
    assert info["method"] == "maxent-irl" and info["config"]["seed"] == 3 and info["env_options"] == options
    assert irl.load_reward(run).seed == 3
    capsys.readouterr()
    assert main(["-q", "train", "maxent-irl", "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--resume does not apply" in err, err


def test_every_train_method_accepts_the_common_options():
    from mimetic.algos import METHODS
    from mimetic.cli import build_parser

    for method in METHODS:
        argv = ["train", method, "--data", "d", "--out", "o", "--env", "objectworld", "--env-option", "size=5",
                "--seed", "7", "--steps", "11", "--resume"]
        args = build_parser(argv).parse_args(argv)  # the parser holds the options of the method argv names
        assert (args.method, args.seed, args.steps, args.data, args.out, args.env, args.env_option, args.resume) == \
            (method, 7, 11, "d", "o", "objectworld", ["size=5"], True), method


def test_eval_of_a_maxent_irl_run_beats_the_random_policy(cli_run, tmp_path):
    # `mimetic eval RUN` plays the soft-optimal policy under the learned reward in the run's world,
    # through the ordinary evaluate() path. The random (uniform) policy is measured on the same seeds;
    # the learned policy's Wilson lower bound must clear the random policy's upper bound.
    from mimetic.cli import main
    from mimetic.envs.objectworld import Objectworld, SoftExpert
    from mimetic.evaluate import evaluate

    run, options = cli_run
    n, seed = 200, 5000
    out = tmp_path / "eval.json"
    assert main(["-q", "eval", str(run), "--episodes", str(n), "--seed", str(seed), "--json", str(out)]) == 0
    learned = json.loads(out.read_text())
    assert learned["episodes"] == n and learned["env"] == "objectworld"
    world = Objectworld(**options)
    uniform = SoftExpert(world, np.full((world.n_states, world.n_actions), 1.0 / world.n_actions), seed=0)
    rand = evaluate(uniform, "objectworld", n, seed, env_options=options, num_envs=16)
    assert learned["ci95"][0] > rand.ci95[1], (learned["success_rate"], learned["ci95"], rand.success_rate, rand.ci95)
    # a world its features do not fit is refused in one line
    assert main(["-q", "eval", str(run), "--env", "reach", "--episodes", "2"]) == 2


def test_reward_accepts_the_runs_own_env_and_refuses_another(cli_run, tmp_path, capsys):
    from mimetic.cli import main

    run, _ = cli_run
    out = tmp_path / "reward.json"
    assert main(["-q", "reward", str(run), "--env", "objectworld", "--json", str(out)]) == 0
    own = json.loads(out.read_text())
    assert own["env"] == "objectworld" and own["pearson"] >= 0.9, own
    # the same env with another layout: the learned weights apply there too
    assert main(["-q", "reward", str(run), "--env", "objectworld", "--env-option", "layout_seed=7", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["env_options"] == {"layout_seed": 7}
    capsys.readouterr()
    assert main(["-q", "reward", str(run), "--env", "reach"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'reach'" in err, err
    # another objectworld whose features differ in number (distance features: one per colour)
    assert main(["-q", "reward", str(run), "--env", "objectworld", "--env-option", "feature_mode=distance"]) == 2
    assert "features" in capsys.readouterr().err


def test_train_json_names_the_dataset_by_its_absolute_path(tmp_path, monkeypatch):
    """Like every other run, a maxent-irl run records where its data is so that `mimetic report` finds it from
    any folder (a relative --data used to be stored as given)."""
    from mimetic.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["-q", "collect", "objectworld", "--episodes", "3", "--out", "d"]) == 0
    assert main(["-q", "train", "maxent-irl", "--data", "d", "--out", "r"]) == 0
    recorded = Path(json.loads((tmp_path / "r/train.json").read_text())["dataset"])
    assert recorded.is_absolute() and recorded == (tmp_path / "d").resolve()


def test_compare_evaluates_a_maxent_irl_run_as_eval_does(tmp_path, capsys):
    """`mimetic compare --methods maxent-irl` trained the reward, then refused: 'left no policy checkpoint'."""
    from mimetic.cli import main

    assert main(["-q", "collect", "objectworld", "--episodes", "6", "--out", str(tmp_path / "d")]) == 0
    assert main(["-q", "compare", "objectworld", "--methods", "maxent-irl", "--data", str(tmp_path / "d"), "--seeds", "0",
                 "--episodes", "4", "--out", str(tmp_path / "c")]) == 0
    res = json.loads((tmp_path / "c/compare.json").read_text())["results"][0]
    assert res["method"] == "maxent-irl" and res["episodes_total"] == 4


def test_eval_of_a_maxent_irl_run_does_not_depend_on_num_envs(cli_run, tmp_path):
    """The learned policy samples each episode from a generator seeded by the episode's seed (as diffusion and
    flow do); it drew from one stream for the whole evaluation, so --num-envs changed the result."""
    from mimetic.cli import main

    run, _ = cli_run
    results = []
    for n in (1, 7):
        out = tmp_path / f"e{n}.json"
        assert main(["-q", "eval", str(run), "--episodes", "30", "--num-envs", str(n), "--json", str(out)]) == 0
        results.append(json.loads(out.read_text()))
    assert results[0]["returns"] == results[1]["returns"] and results[0]["successes"] == results[1]["successes"]
