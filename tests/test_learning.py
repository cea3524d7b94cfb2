"""Learning tests: every training method learns, in CI, on a configuration sized for 2 CPU cores.

Each test trains one method on a small configuration and asserts a statistical criterion that a broken
learner cannot meet, and checks in the same test that the policy it started from (or the baseline a
broken version of the method degenerates to) fails that same criterion:

- supervised methods (bc heads, act, diffusion, flow) on `reach` (50 demonstrations): the 95% Wilson
  lower bound of success over 100 evaluation episodes must exceed a level that the untrained policy
  (same configuration, weights as initialised, normalization fitted) stays below with its upper bound;
- dagger / HG-DAgger (each gate) from a few demonstrations: the learner must beat BC trained on the same
  initial demonstrations with as many gradient steps (disjoint Wilson intervals), which is what DAgger
  degenerates to when it stops aggregating data;
- gail / airl (each generator): the normalized return (0 = uniform random actions, 1 = the expert) over
  100 episodes, lower end of its 95% interval above a level the untrained policy's upper end stays below;
- maxent-irl (and its tabular reward term) on objectworld: the true return of the policy that is optimal
  for the learned reward, and the learned reward's correlation with the true one, against rewards drawn
  at random.

Every training call passes an explicit configuration, so a change of a method's defaults does not change
these tests. The numbers in the comments were measured on 2 shared CPU cores; the mutations tried
against this file (and which test caught each) are in tests/MUTATIONS.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from mimetic.algos import method_module
from mimetic.data import Dataset
from mimetic.evaluate import evaluate
from mimetic.policies.base import PolicyActor, load_policy

N_EVAL = 100  # evaluation episodes of a trained policy (the same seeds for every policy)
N_INITIAL = 50  # episodes of an untrained policy: it fails nearly every one (Wilson upper bound 0.07 at 0 / 50, 0.16 at 3 / 50)


@pytest.fixture(scope="module")
def reach(reach_demos):
    return Dataset.load(reach_demos)


def train_run(method: str, options: dict, dataset, run_dir):
    """Train `method` with exactly `options` (every other field at its default) into run_dir; return the checkpoint."""
    module = method_module(method)
    module.train(module.Config(**options), dataset, run_dir, progress=False)
    return load_policy(run_dir)


def untrained_run(method: str, options: dict, dataset, run_dir):
    """The same configuration, not trained: one step at learning rate 0 (initial weights, fitted normalization)."""
    return train_run(method, {**options, "steps": 1, "lr": 0.0, "warmup_steps": 1}, dataset, run_dir)


def success(policy, episodes: int = N_EVAL):
    return evaluate(PolicyActor(policy), "reach", episodes)


def assert_learns(method: str, options: dict, level: float, dataset, tmp_path):
    """Trained: Wilson lower bound > level; untrained (same configuration): Wilson upper bound < level."""
    trained = success(train_run(method, options, dataset, tmp_path / "trained"))
    initial = success(untrained_run(method, options, dataset, tmp_path / "initial"), N_INITIAL)
    assert initial.ci95[1] < level, f"the untrained {method} policy already passes: {initial.success_rate} {initial.ci95}"
    assert trained.ci95[0] > level, f"{method} did not learn reach: {trained.success_rate} {trained.ci95} (level {level})"
    return trained, initial


def expert_states(episodes: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """States the expert visits on evaluation seeds, and its actions there."""
    from mimetic.envs import make_expert
    from mimetic.evaluate import EVAL_SEED
    from mimetic.rollout import rollout

    eps = rollout("reach", make_expert("reach"), range(EVAL_SEED, EVAL_SEED + episodes))
    return np.concatenate([ep.observations for ep in eps]), np.concatenate([ep.actions for ep in eps])


def action_error(policy, obs: np.ndarray, act: np.ndarray) -> float:
    """Mean |a - a_expert| of the policy's action for the current step (raw units, one observation of history)."""
    import torch

    assert policy.config.n_obs_steps == 1
    pred = policy.predict(torch.as_tensor(obs[:, None], dtype=torch.float32))[:, -policy.config.action_start]
    return float(np.abs(pred.numpy() - act).mean())


# ------------------------------------------------------------------------------ supervised: bc, act, diffusion, flow
# bc, every head: 1000 steps of a 64x64 MLP, ~2-3 s each on an idle machine. Measured (seeds 0, 1): 1.00 success
# for every head; untrained (50 episodes) 0.00-0.04 (upper bound <= 0.13). The mean action error on expert states (raw units; the expert's mean
# |a| is 0.38) catches an action normalizer left out at inference, which `reach` forgives in rollouts (the actions
# saturate anyway): measured trained / without the inverse normalization / untrained: deterministic 0.05-0.07 /
# 0.36 / 0.43-0.52, gaussian 0.21-0.23 / 0.74 / same, gmm 0.08 / 0.36-0.42 / same.
BC = dict(hidden=[64, 64], lr=3e-3, steps=1000, log_every=500)
BC_ACTION_ERROR = {"deterministic": 0.15, "gaussian": 0.35, "gmm": 0.2}


def assert_imitates(error_level: float, run_dir):
    """The trained policy's action error on expert states is below `error_level`, the untrained policy's above."""
    obs, act = expert_states()
    err, err0 = action_error(load_policy(run_dir / "trained"), obs, act), action_error(load_policy(run_dir / "initial"), obs, act)
    assert err < error_level < err0, (err, err0)


@pytest.mark.parametrize("head", ["deterministic", "gaussian", "gmm"])
def test_bc_learns_reach(head, reach, tmp_path):
    assert_learns("bc", {**BC, "head": head}, 0.8, reach, tmp_path)
    assert_imitates(BC_ACTION_ERROR[head], tmp_path)


# act: a 1+1+1-layer transformer (d=32), chunks of 8, 400 steps, ~5 s. Measured (seeds 0, 1, 2): 1.00 success;
# at 250 steps 0.59-1.00; untrained 0.01-0.06 (upper bound <= 0.16). Action error: 0.11 trained, 0.27-0.28 without
# the inverse action normalization, 0.5 untrained.
ACT = dict(dim_model=32, n_heads=2, dim_feedforward=64, n_vae_layers=1, n_encoder_layers=1, n_decoder_layers=1,
           horizon=8, n_action_steps=4, batch_size=64, lr=1e-3, steps=400, log_every=400)


def test_act_learns_reach(reach, tmp_path):
    assert_learns("act", ACT, 0.8, reach, tmp_path)
    assert_imitates(0.2, tmp_path)


# diffusion and flow: a one-level U-Net (32 channels, kernel 3), chunks of 8 from step -1 (two observations), 6 actions
# executed per chunk, 600 steps at lr 3e-3, ~7-9 s each on an idle machine. The prediction type and the conditioning
# MLP are NOT set: the test trains the shipped defaults (sample prediction, cond_hidden [256, 256]). Measured (seeds
# 0, 1, 2, 2026-11-28, commit 338c068): diffusion 1.00 [0.96, 1.00] at each seed, flow 1.00 [0.96, 1.00] at each;
# untrained 0.04 [0.01, 0.13] / 0.02 [0.00, 0.10]. (With epsilon prediction and no conditioning MLP, the earlier
# defaults: diffusion 0.76-0.90, flow 0.91-0.99.)
CHUNK = dict(down_dims=[32], kernel_size=3, time_embed_dim=32, horizon=8, n_action_steps=6, batch_size=64, lr=3e-3,
             warmup_steps=50, steps=600, log_every=600)


def test_diffusion_learns_reach(reach, tmp_path):
    assert_learns("diffusion", CHUNK, 0.8, reach, tmp_path)


def test_flow_learns_reach(reach, tmp_path):
    assert_learns("flow", CHUNK, 0.8, reach, tmp_path)


# The samplers are checked with an exact model in test_expressive.py; these check that loss() trains the network
# toward that same exact model: with a single data point, the exact denoiser / velocity field has zero loss, and the
# model of the other target a large one (a swapped target or a reversed interpolation fails here in a second).
def _one_point_batch(policy, B=64):
    import torch

    c = policy.config
    g = torch.Generator().manual_seed(0)
    chunk = torch.rand(1, c.horizon, c.act_dim, generator=g) * 1.6 - 0.8
    policy.fit_normalization(np.random.default_rng(0).normal(size=(50, c.obs_dim)), np.random.default_rng(1).uniform(-1, 1, (50, c.act_dim)))
    batch = {"obs": torch.randn(B, c.n_obs_steps, c.obs_dim, generator=g), "action": chunk.expand(B, -1, -1).clone(),
             "action_pad": torch.zeros(B, c.horizon, dtype=torch.bool)}
    return batch, policy.act_norm(chunk)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample"])
def test_diffusion_loss_is_zero_for_the_exact_denoiser(prediction_type):
    import torch

    from mimetic.policies.diffusion import DiffusionConfig, DiffusionPolicy

    policy = DiffusionPolicy(DiffusionConfig(obs_dim=6, act_dim=2, down_dims=[16], horizon=8, prediction_type=prediction_type))
    batch, x0 = _one_point_batch(policy)
    ab = policy.alphas_cumprod

    def exact(kind):
        def model(x, t, cond):
            a = ab[t][:, None, None]
            return (x - a.sqrt() * x0) / (1 - a).sqrt() if kind == "epsilon" else x0.expand_as(x)
        return model

    torch.manual_seed(0)
    policy.model.forward = exact(prediction_type)
    assert policy.loss(batch)[0].item() < 1e-6
    policy.model.forward = exact("sample" if prediction_type == "epsilon" else "epsilon")
    assert policy.loss(batch)[0].item() > 0.1


def test_flow_loss_is_zero_for_the_exact_velocity():
    import torch

    from mimetic.policies.flow import TIME_SCALE, FlowConfig, FlowPolicy

    policy = FlowPolicy(FlowConfig(obs_dim=6, act_dim=2, down_dims=[16], horizon=8))
    batch, x1 = _one_point_batch(policy)
    torch.manual_seed(0)
    # the straight line from the noise to x1 (what the Euler sampler integrates from t = 0 to 1)
    policy.model.forward = lambda x, t, cond: (x1 - x) / (1 - t / TIME_SCALE)[:, None, None]
    assert policy.loss(batch)[0].item() < 1e-6
    # the exact velocity of the reversed interpolation (data at t = 0, noise at t = 1)
    policy.model.forward = lambda x, t, cond: (x - x1) / (t / TIME_SCALE).clamp(min=1e-3)[:, None, None]
    assert policy.loss(batch)[0].item() > 0.1


# ------------------------------------------------------------------------------ dagger and HG-DAgger
# From 4 demonstrations BC stalls near the goal (covariate shift). Two iterations of 10 rollouts, 400 warm-started
# steps each (64x64 MLP), ~7-13 s per run. Without aggregation DAgger is BC on its initial demonstrations; so the
# learner (the last one, whatever the validation episodes say) must beat BC trained on those same 4 demonstrations
# for as many gradient steps (3 x 400), with a level between them: the learner's Wilson lower bound above it, BC's
# upper bound below. Measured over 100 episodes (seeds 0, 1, 2; Wilson bounds in brackets): BC 0.17 [0.11, 0.26]
# (seed 0, the one used here), 0.17, 0.04; dagger (linear beta 0.5 -> 0) 0.67 [0.57, 0.75], 0.51 [0.41, 0.61],
# 0.56 [0.46, 0.65] (exponential beta 0.48-0.60, 800 steps per iteration no better); HG-DAgger, seeds 0, 1: action
# gate 0.82 [0.73, 0.88], 0.89; state gate 0.78 [0.69, 0.85], 0.71 [0.61, 0.79]; ensemble gate (2 members) 0.83
# [0.74, 0.89], 0.77 [0.68, 0.84].
DAGGER = dict(env="reach", initial_episodes=4, iterations=2, episodes_per_iter=10, steps=400, policy_options={"hidden": [64, 64]},
              eval_episodes=10, select="last")  # the last learner, not the best on 10 validation episodes
DAGGER_LEVEL = 0.33


@pytest.fixture(scope="module")
def few_demos(tmp_path_factory):
    """4 expert demonstrations, and BC trained on them for as many steps as a DAgger run (evaluated)."""
    from mimetic.collect import collect

    root = tmp_path_factory.mktemp("few")
    collect("reach", root / "demos", DAGGER["initial_episodes"], seed=0, progress=False)
    steps = DAGGER["steps"] * (DAGGER["iterations"] + 1)
    bc = train_run("bc", {**DAGGER["policy_options"], "steps": steps, "log_every": steps}, Dataset.load(root / "demos"), root / "bc")
    base = success(bc)
    assert base.ci95[1] < DAGGER_LEVEL, f"BC on 4 demonstrations already passes: {base.success_rate} {base.ci95}"
    return root / "demos", base


def assert_dagger_beats_bc(options: dict, few_demos, tmp_path):
    from mimetic.algos.dagger import DaggerConfig, run_dagger
    from mimetic.envs import make_expert

    demos, base = few_demos
    cfg = DaggerConfig(**{**DAGGER, "initial_data": str(demos), **options})
    rows = run_dagger(cfg, tmp_path / "run", progress=False, expert=make_expert("reach"))
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    learner = success(load_policy(tmp_path / "run"))
    assert learner.ci95[0] > DAGGER_LEVEL, (f"the learner did not beat BC on its initial demonstrations: {learner.success_rate} "
                                            f"{learner.ci95}, BC {base.success_rate} {base.ci95}")
    return rows


def test_dagger_beta_schedule_learns_reach(few_demos, tmp_path):
    rows = assert_dagger_beats_bc({"beta": "linear", "beta0": 0.5}, few_demos, tmp_path)
    assert 0 < rows[1]["rollout_expert_fraction"] < 0.8  # a mixture: the learner acted in the rollouts


def test_hg_dagger_action_gate_learns_reach(few_demos, tmp_path):
    assert_dagger_beats_bc({"gate": "scripted", "gate_metric": "action", "threshold": 0.2}, few_demos, tmp_path)


def test_hg_dagger_state_gate_learns_reach(few_demos, tmp_path):
    assert_dagger_beats_bc({"gate": "scripted", "gate_metric": "state", "threshold": 0.5}, few_demos, tmp_path)


def test_hg_dagger_ensemble_gate_learns_reach(few_demos, tmp_path):
    assert_dagger_beats_bc({"gate": "ensemble", "ensemble_size": 2, "threshold": 0.05}, few_demos, tmp_path)


# ------------------------------------------------------------------------------ gail and airl
# Normalized return on `reach` (0 = uniform random actions, 1 = the expert, on the same 100 seeds): the lower end of
# its 95% interval must exceed ADV_LEVEL, which the untrained policy's upper end stays below. The untrained policy is
# the same for every run (the tanh-Gaussian policy is built first, from the seed: the same initial weights whatever
# the method and generator); it scores -0.24..0.05 (seeds 0, 1). AIRL runs without absorbing states here: with them
# one of two seeds learned to avoid the goal (normalized -0.38 at 4000 SAC steps).
# Measured (seeds 0, 1; lower ends in brackets): gail-sac 0.31, 0.44 [0.25, 0.39] at 1600 steps, ~3 s on an idle
# machine; airl-sac 0.46, 0.50 [0.42, 0.45] at 3200 steps; gail-ppo 0.40, 0.35 [0.34, 0.29] at 16384 steps; airl-ppo
# (seeds 0, 1, 2) 0.34, 0.24, 0.32 [0.27, 0.18, 0.25] at 16384 steps with the discriminator at lr 3e-4 (at 1e-3:
# [0.14, 0.00]; 32768 steps: [0.21, 0.16]). AIRL-PPO is the weakest learner here: its margin over the level is the
# smallest of these tests.
ADV_LEVEL = 0.15
ADV = dict(hidden=[64, 64], disc_hidden=[64, 64], lr=1e-3, disc_lr=1e-3, seed=0)
ADV_SAC = dict(ADV, generator="sac", num_envs=4, batch_size=128, learning_starts=400, utd=0.5, disc_every=2)
ADV_PPO = dict(ADV, generator="ppo", num_envs=8, rollout_steps=128, ppo_epochs=5, minibatch_size=64, disc_epochs=2,
               steps=16384, log_every=4096)


def mean_interval(x) -> tuple[float, float]:
    """95% normal interval of the mean of x."""
    x = np.asarray(x, dtype=np.float64)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


@pytest.fixture(scope="module")
def adversarial_baseline(reach, tmp_path_factory):
    """(normalize returns, the untrained policy's interval): expert and uniform random actions on the evaluation seeds."""
    from mimetic.actors import RandomActor
    from mimetic.envs import make_env, make_expert

    expert = np.mean(evaluate(make_expert("reach"), "reach", N_EVAL).returns)
    rand = np.mean(evaluate(RandomActor(make_env("reach").action_space, seed=0), "reach", N_EVAL).returns)

    def normalize(returns):
        return (np.asarray(returns) - rand) / (expert - rand)

    # one environment step, before any update (learning_starts is larger): the initial policy
    initial = train_run("gail", {**ADV_SAC, "steps": 1, "log_every": 1}, reach, tmp_path_factory.mktemp("adv") / "initial")
    untrained = mean_interval(normalize(success(initial).returns))
    assert untrained[1] < ADV_LEVEL, untrained
    return normalize, untrained


def assert_adversarial_learns(method: str, options: dict, reach, adversarial_baseline, tmp_path):
    normalize, untrained = adversarial_baseline
    policy = train_run(method, options, reach, tmp_path / "run")
    assert policy.type_name == "tanh-gaussian"
    lo, hi = mean_interval(normalize(success(policy).returns))
    assert lo > ADV_LEVEL, f"{method}-{options['generator']}: normalized return in [{lo:.2f}, {hi:.2f}], untrained {untrained}"


def test_gail_sac_learns_reach(reach, adversarial_baseline, tmp_path):
    assert_adversarial_learns("gail", {**ADV_SAC, "steps": 1600, "log_every": 800}, reach, adversarial_baseline, tmp_path)


def test_airl_sac_learns_reach(reach, adversarial_baseline, tmp_path):
    assert_adversarial_learns("airl", {**ADV_SAC, "absorbing": False, "steps": 3200, "log_every": 1600}, reach,
                              adversarial_baseline, tmp_path)


def test_gail_ppo_learns_reach(reach, adversarial_baseline, tmp_path):
    assert_adversarial_learns("gail", ADV_PPO, reach, adversarial_baseline, tmp_path)


def test_airl_ppo_learns_reach(reach, adversarial_baseline, tmp_path):
    assert_adversarial_learns("airl", {**ADV_PPO, "absorbing": False, "disc_lr": 3e-4}, reach, adversarial_baseline, tmp_path)


# ------------------------------------------------------------------------------ maxent-irl
# objectworld 10x10 (default layout), 300 expert episodes, 300 Adam steps: ~2 s. The learned reward is judged by
# what it is for: the policy that is optimal for it, scored with the true reward (exact backward induction here, not
# the library's planners), normalized so that 0 is the uniform random policy and 1 the optimal policy; and its
# correlation with the true reward. Rewards drawn at random (N(0, 1) per state) must fail the same levels.
# Measured: learned 0.99 normalized return, correlation 0.96 (the same with the tabular term); 20 random rewards: at
# most 0.58 and |corr| at most 0.22.
IRL_OPTIONS = {"size": 10, "layout_seed": 0}
IRL = dict(gamma=0.9, steps=300, lr=0.1, l2=0.1)


def optimal_true_return(env, reward: np.ndarray) -> float:
    """Expected true return over the horizon of the finite-horizon optimal policy for a state reward."""
    P, S = env.transition_matrix, env.transition_matrix.shape[0]
    V, actions = np.zeros(S), []
    for _ in range(env.horizon):  # backward induction: the last step first
        Q = reward[:, None] + P @ V
        actions.append(Q.argmax(1))
        V = Q[np.arange(S), actions[-1]]
    d, ret = np.asarray(env.start_distribution, float), 0.0
    for a in reversed(actions):
        ret += d @ env.true_reward
        d = d @ P[np.arange(S), a]
    return float(ret)


def uniform_true_return(env) -> float:
    P = env.transition_matrix.mean(1)
    d, ret = np.asarray(env.start_distribution, float), 0.0
    for _ in range(env.horizon):
        ret += d @ env.true_reward
        d = d @ P
    return float(ret)


@pytest.fixture(scope="module")
def objectworld_demos(tmp_path_factory):
    from mimetic.collect import collect

    root = tmp_path_factory.mktemp("objectworld") / "demos"
    collect("objectworld", root, 300, seed=0, env_options=IRL_OPTIONS, num_envs=64, progress=False)
    return Dataset.load(root)


def assert_reward_learned(result, level_return: float, level_corr: float):
    from mimetic.envs import make_env

    env = make_env("objectworld", **IRL_OPTIONS)
    best, uniform = optimal_true_return(env, env.true_reward), uniform_true_return(env)

    def scores(reward):
        return (optimal_true_return(env, reward) - uniform) / (best - uniform), np.corrcoef(reward, env.true_reward)[0, 1]

    learned = scores(np.asarray(result.reward, float))
    rng = np.random.default_rng(0)
    random = np.array([scores(rng.normal(size=len(env.true_reward))) for _ in range(20)])
    assert random[:, 0].max() < level_return and np.abs(random[:, 1]).max() < level_corr, random
    assert learned[0] > level_return and learned[1] > level_corr, (learned, random.max(0))
    return learned, random


def test_maxent_irl_learns_objectworld_reward(objectworld_demos, tmp_path):
    module = method_module("maxent-irl")
    result = module.train(module.Config(**IRL), objectworld_demos, tmp_path / "run", progress=False)
    assert_reward_learned(result, 0.9, 0.7)


def test_maxent_irl_tabular_reward_learns_objectworld(objectworld_demos, tmp_path):
    module = method_module("maxent-irl")
    result = module.train(module.Config(**IRL, tabular=True, tabular_l2=1.0), objectworld_demos, tmp_path / "run", progress=False)
    assert result.tabular is not None and np.ptp(result.tabular) > 0
    assert_reward_learned(result, 0.9, 0.7)
