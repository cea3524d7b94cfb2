"""GAIL / AIRL (SAC and PPO generators), the Pendulum expert, the learned reward (fast: well under 60 s)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mimetic.actors import RandomActor
from mimetic.algos.adversarial.discriminator import (KINDS, REWARD_DIR, Discriminator, discriminator_step, learned_rewards,
                                                     load_reward, save_reward)
from mimetic.algos.adversarial.training import AdversarialConfig, train_adversarial
from mimetic.cli import main
from mimetic.data import Dataset, Episode
from mimetic.envs import make_env, make_expert
from mimetic.errors import MimeticError
from mimetic.evaluate import evaluate
from mimetic.policies.base import PolicyActor, load_policy
from mimetic.policies.gaussian import TanhGaussianConfig, TanhGaussianPolicy

N_EVAL = 100


def normalized(ret: np.ndarray, random_mean: float, expert_mean: float) -> np.ndarray:
    return (np.asarray(ret) - random_mean) / (expert_mean - random_mean)


def lower_bound(x: np.ndarray) -> float:
    """Lower end of a 95% normal interval for the mean of x."""
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean() - 1.96 * x.std(ddof=1) / np.sqrt(len(x)))


def test_pendulum_expert_swings_up_and_balances():
    env = "gym/Pendulum-v1"
    expert = evaluate(make_expert(env), env, N_EVAL)
    rand = evaluate(RandomActor(make_env(env).action_space, seed=0), env, N_EVAL)
    # random ~ -1200; the best known policies score about -150 on average.
    assert np.mean(rand.returns) < -900
    assert lower_bound(expert.returns) > -250
    # nearly every episode ends balanced: the last 50 steps cost little (upright, slow)
    assert np.mean(np.array(expert.returns) > -450) >= 0.95


# ~600 generator updates. Measured on reach (50 demos): normalized return 0.32 and 0.41 for seeds 0 and 1;
# an untrained policy scores -0.24..0.05 and so fails the bound below.
SMALL = dict(steps=1600, num_envs=4, hidden=[64, 64], disc_hidden=[64, 64], batch_size=128, learning_starts=400,
             utd=0.5, disc_every=2, lr=1e-3, disc_lr=1e-3, log_every=800, seed=0)
THRESHOLD_REACH = 0.15  # lower end of the 95% interval of the mean normalized return over 100 episodes


@pytest.fixture(scope="module")
def gail_reach_run(reach_demos, tmp_path_factory):
    run = tmp_path_factory.mktemp("gail") / "run"
    cfg = AdversarialConfig(generator="sac", **SMALL)
    train_adversarial("gail", cfg, Dataset.load(reach_demos), run, progress=False)
    return run


def test_gail_sac_improves_reach_return(gail_reach_run):
    # normalized return (0 = uniform random actions, 1 = the expert) on 100 evaluation episodes, paired seeds
    expert = evaluate(make_expert("reach"), "reach", N_EVAL)
    rand = evaluate(RandomActor(make_env("reach").action_space, seed=0), "reach", N_EVAL)
    policy = load_policy(gail_reach_run)  # a normal checkpoint: what `mimetic eval RUN` loads
    assert policy.type_name == "tanh-gaussian"
    res = evaluate(PolicyActor(policy), "reach", N_EVAL)
    score = normalized(res.returns, np.mean(rand.returns), np.mean(expert.returns))
    assert lower_bound(score) > THRESHOLD_REACH, score.mean()
    rows = [json.loads(line) for line in (gail_reach_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] >= SMALL["steps"] and rows[-1]["disc_acc"] > 0.5



def test_reward_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    for kind in KINDS:
        disc = Discriminator(kind, obs_dim=6, act_dim=2, hidden=[16, 16], gamma=0.95)
        disc.obs_norm.fit(np.random.default_rng(0).normal(2.0, 3.0, size=(50, 6)))
        save_reward(disc, tmp_path / kind / REWARD_DIR, {"method": kind, "env": "reach", "env_options": {}, "act_dim": 2})
        loaded, cfg = load_reward(tmp_path / kind)
        assert cfg["kind"] == kind and cfg["gamma"] == 0.95
        rng = np.random.default_rng(1)
        obs, act, nxt = rng.normal(size=(20, 6)), rng.uniform(-1, 1, (20, 2)), rng.normal(size=(20, 6))
        a, b = learned_rewards(disc, obs, act, nxt), learned_rewards(loaded, obs, act, nxt)
        assert a.shape == (20,) and np.ptp(a) > 0
        np.testing.assert_array_equal(a, b)
    (tmp_path / "gail" / REWARD_DIR / "reward.safetensors").write_bytes(b"garbage")
    with pytest.raises(MimeticError, match="cannot load the learned reward"):
        load_reward(tmp_path / "gail")


def test_cli_eval_and_reward(gail_reach_run, tmp_path, capsys):
    out = tmp_path / "reward.json"
    capsys.readouterr()
    assert main(["-q", "reward", str(gail_reach_run), "--episodes", "5", "--json", str(out)]) == 0
    assert "episodes 5," in capsys.readouterr().out  # a count prints as a count (it read "episodes 5.000")
    assert main(["-q", "reward", str(gail_reach_run), "--episodes", "0"]) == 2  # was a numpy ValueError traceback
    assert capsys.readouterr().err.strip() == "mimetic: error: reward: --episodes must be at least 1, got 0"
    report = json.loads(out.read_text())
    assert report["method"] == "gail" and report["env"] == "reach"
    assert {"pearson", "spearman"} <= set(report) and (gail_reach_run / "reward.png").stat().st_size > 1000
    # the discriminator prefers expert behaviour to random behaviour
    assert report["expert_learned_reward"] > report["random_learned_reward"]
    assert main(["-q", "eval", str(gail_reach_run), "--episodes", "4", "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["episodes"] == 4


def test_airl_and_ppo_run_and_save(reach_demos, tmp_path):
    ds = Dataset.load(reach_demos)
    tiny = dict(steps=256, num_envs=2, hidden=[16], disc_hidden=[16], batch_size=32, learning_starts=64, log_every=128,
                rollout_steps=64, ppo_epochs=1, disc_epochs=1)
    for kind, gen, absorbing in (("airl", "sac", True), ("airl", "ppo", False), ("gail", "ppo", True)):
        run = tmp_path / f"{kind}-{gen}"
        train_adversarial(kind, AdversarialConfig(generator=gen, absorbing=absorbing, **tiny), ds, run, progress=False)
        assert load_policy(run).config.env == "reach"
        disc, cfg = load_reward(run)
        assert cfg["kind"] == kind and cfg["generator"] == gen and cfg["env_steps"] >= 256 and cfg["absorbing"] == absorbing
        r = learned_rewards(disc, ds.observations[:10], np.zeros((10, 2)), ds.observations[1:11])
        assert np.all(np.isfinite(r))


def _dataset(tmp_path, name, obs, act, env):
    eps = [Episode(obs, act, np.zeros(len(obs)), np.zeros(len(obs), bool))]
    return Dataset.create(tmp_path / name, eps, env=env)


def test_bad_input(reach_demos, tmp_path):
    ds = Dataset.load(reach_demos)
    cfg = AdversarialConfig(steps=8, num_envs=1, hidden=[8], disc_hidden=[8], learning_starts=4)
    with pytest.raises(MimeticError, match="observations of size 6 .* but environment 'gym/Pendulum-v1' has 3 and 1"):
        train_adversarial("gail", cfg, ds, tmp_path / "a", env="gym/Pendulum-v1", progress=False)
    with pytest.raises(MimeticError, match="discrete action space"):
        train_adversarial("gail", cfg, ds, tmp_path / "b", env="objectworld", progress=False)
    rng = np.random.default_rng(0)
    discrete = _dataset(tmp_path, "discrete", rng.normal(size=(20, 3)).astype(np.float32),
                        rng.integers(0, 3, size=(20, 1)).astype(np.float32), "gym/Pendulum-v1")
    with pytest.raises(MimeticError, match="looks like discrete actions"):
        train_adversarial("airl", cfg, discrete, tmp_path / "c", progress=False)
    with pytest.raises(MimeticError, match="generator"):
        train_adversarial("gail", AdversarialConfig(generator="dqn"), ds, tmp_path / "d", progress=False)
    with pytest.raises(MimeticError, match="--ckpt-every must be at least 1"):
        train_adversarial("gail", AdversarialConfig(ckpt_every=0), ds, tmp_path / "e", progress=False)
    for p in "abcde":
        assert not (tmp_path / p / "config.json").exists()  # nothing half-written
    # the CLI: spaces that do not match, one line, exit status 2
    assert main(["-q", "train", "gail", "--data", str(reach_demos), "--out", str(tmp_path / "f"), "--env", "gym/Pendulum-v1"]) == 2
    assert main(["-q", "reward", str(reach_demos)]) == 2  # a dataset, not a run with a learned reward


def test_resuming_a_bc_checkpoint_as_gail_names_it_plainly(reach_demos, tmp_path):
    """A supervised checkpoint also has a "generator" entry (its RNG state): the refusal used to print that tensor."""
    from mimetic.algos import bc
    from mimetic.algos.run_dir import RunDir

    ds = Dataset.load(reach_demos)
    bc.train(bc.Config(steps=2, hidden=[8], log_every=1, ckpt_every=1), ds, tmp_path / "r", progress=False)
    assert "generator" in RunDir(tmp_path / "r").load_checkpoint()
    cfg = AdversarialConfig(steps=8, num_envs=1, hidden=[8], disc_hidden=[8], learning_starts=4)
    with pytest.raises(MimeticError, match="holds a non-adversarial checkpoint, not gail-sac") as e:
        train_adversarial("gail", cfg, ds, tmp_path / "r", resume=True, progress=False)
    assert "tensor" not in str(e.value)


def test_diverging_discriminator_is_an_error():
    torch.manual_seed(0)
    policy_cfg = TanhGaussianConfig(obs_dim=3, act_dim=1, hidden=[8])
    policy = TanhGaussianPolicy(policy_cfg)
    for kind in KINDS:
        disc = Discriminator(kind, 3, 1, [8], 0.99)
        opt = torch.optim.Adam(disc.parameters(), lr=1e-3)

        def batch(nan: bool):
            obs = torch.randn(16, 3)
            if nan:
                obs[3, 1] = float("nan")  # what a diverged network or a NaN observation produces
            return {"obs": obs, "act": torch.rand(16, 1) * 2 - 1, "next_obs": torch.randn(16, 3),
                    "terminal": torch.zeros(16, dtype=torch.bool), "absorbing": torch.zeros(16, dtype=torch.bool)}

        discriminator_step(disc, opt, batch(False), batch(False), policy, 10.0)  # fine
        with pytest.raises(MimeticError, match="discriminator diverged"):
            discriminator_step(disc, opt, batch(False), batch(True), policy, 10.0)


@pytest.mark.parametrize("kind,gen", [("gail", "sac"), ("airl", "ppo")])
def test_killed_run_resumes_from_its_checkpoint(kind, gen, reach_demos, tmp_path, monkeypatch, capsys):
    from mimetic.algos import rl
    from mimetic.algos.run_dir import RunDir, read_metrics

    ds = Dataset.load(reach_demos)
    tiny = dict(generator=gen, num_envs=2, hidden=[16], disc_hidden=[16], batch_size=32, learning_starts=64, log_every=64,
                ckpt_every=128, rollout_steps=32, ppo_epochs=1, disc_epochs=1)
    run = tmp_path / "run"
    real_step, calls = rl.VecEnv.step, {"n": 0, "die_at": 100}  # 2 envs: killed at step 200, after the checkpoint of 128

    def counted_step(self, action):
        calls["n"] += 1
        if calls["n"] == calls["die_at"]:
            raise KeyboardInterrupt
        return real_step(self, action)

    monkeypatch.setattr(rl.VecEnv, "step", counted_step)
    with pytest.raises(KeyboardInterrupt):
        train_adversarial(kind, AdversarialConfig(steps=384, **tiny), ds, run, progress=False)
    calls["die_at"] = None
    before = read_metrics(run)
    assert [r["step"] for r in before] == [64, 128, 192]
    saved = RunDir(run).load_checkpoint()
    assert saved["step"] == 128 and saved["kind"] == kind and saved["generator"] == gen
    with pytest.raises(MimeticError, match="already holds a .* run: pass --resume"):
        train_adversarial(kind, AdversarialConfig(steps=384, **tiny), ds, run, progress=False)
    other = "ppo" if gen == "sac" else "sac"
    with pytest.raises(MimeticError, match="resume it with the same method and --generator"):
        train_adversarial(kind, AdversarialConfig(steps=384, **{**tiny, "generator": other}), ds, run, resume=True, progress=False)

    # resuming to the checkpoint's own step trains nothing: the policy and reward are the checkpointed ones
    policy = train_adversarial(kind, AdversarialConfig(steps=128, **tiny), ds, run, resume=True, progress=False)
    for k, v in policy.state_dict().items():
        assert torch.equal(v, saved["policy"][k]), k
    disc, _ = load_reward(run)
    for k, v in disc.state_dict().items():
        assert torch.equal(v, saved["disc"][k]), k
    if gen == "sac":  # the replay buffer came back whole
        assert saved["generator_state"]["buffer_size"] == 128 + int(saved["generator_state"]["buffer"]["absorbing"].sum())

    # the CLI continues the run from its checkpoint: only the remaining environment steps are taken
    calls["n"] = 0
    assert main(["-q", "train", kind, "--out", str(run), "--resume", "--steps", "384"]) == 0, capsys.readouterr().err
    assert calls["n"] == (384 - 128) // 2
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [64, 128, 192, 256, 320, 384]  # no step twice, none lost
    assert rows[:2] == before[:2]  # the rows up to the checkpoint are kept as they were
    assert RunDir(run).load_checkpoint()["step"] == 384 and load_reward(run)[1]["env_steps"] == 384
