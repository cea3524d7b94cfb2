"""Expressive chunk policies (ACT, diffusion, flow) and the multimodal task `reach-bimodal`.

Fast tests check the task, the samplers' math, checkpoints, the CLI and bad input. The
statistical test trains the deterministic MLP on `reach-bimodal` and evaluates 100 episodes with a
Wilson interval: it must fail (upper bound <= 0.5). The slow tests that the chunk policies, at
their defaults, solve a multimodal task are in tests/test_reach_fork.py (the benchmark
benchmarks/expressive.py measures the same thing, see benchmarks/results/expressive.md).
"""

import dataclasses
import json

import numpy as np
import pytest
import torch

from mimetic.actors import FunctionActor
from mimetic.algos import act as act_algo
from mimetic.algos import bc
from mimetic.algos import diffusion as diffusion_algo
from mimetic.algos import flow as flow_algo
from mimetic.algos.trainer import resolve_defaults
from mimetic.cli import main
from mimetic.data import Dataset
from mimetic.envs import make_env, make_expert
from mimetic.envs.reach import expert_action as straight_to_goal
from mimetic.evaluate import evaluate
from mimetic.policies.act import ACTConfig, ACTPolicy
from mimetic.policies.base import PolicyActor, load_policy
from mimetic.policies.diffusion import DiffusionConfig, DiffusionPolicy, cosine_alphas_cumprod
from mimetic.policies.flow import FlowConfig, FlowPolicy
from mimetic.rollout import rollout


TINY = {
    "act": (ACTPolicy, ACTConfig(obs_dim=8, act_dim=2, dim_model=32, n_heads=2, dim_feedforward=64, horizon=8, n_decoder_layers=3)),
    "diffusion": (DiffusionPolicy, DiffusionConfig(obs_dim=8, act_dim=2, down_dims=[16, 32], horizon=8)),
    "flow": (FlowPolicy, FlowConfig(obs_dim=8, act_dim=2, down_dims=[16, 32], horizon=8)),
}


@pytest.fixture(scope="module")
def bimodal_demos(tmp_path_factory):
    from mimetic.collect import collect

    root = tmp_path_factory.mktemp("bimodal") / "demos"
    collect("reach-bimodal", root, 100, seed=0, progress=False)
    return root


def batch_for(policy, B=6, seed=0):
    c = policy.config
    g = torch.Generator().manual_seed(seed)
    pad = torch.zeros(B, c.horizon, dtype=torch.bool)
    pad[0, -3:] = True
    return {"obs": torch.randn(B, c.n_obs_steps, c.obs_dim, generator=g), "action": torch.rand(B, c.horizon, c.act_dim, generator=g) * 2 - 1,
            "action_pad": pad}


def regressable(cls, cfg):
    """A fitted policy (seed 0) and a batch of 32 whose action chunk is a function of the observation."""
    torch.manual_seed(0)
    policy = cls(cfg)
    policy.fit_normalization(np.random.default_rng(0).normal(size=(50, 8)), np.random.default_rng(1).uniform(-1, 1, size=(50, 2)))
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(32, cfg.n_obs_steps, 8, generator=g)
    action = torch.tanh(obs[:, -1:, :2].expand(-1, cfg.horizon, -1).clone())
    return policy, {"obs": obs, "action": action, "action_pad": torch.zeros(32, cfg.horizon, dtype=torch.bool)}


# ------------------------------------------------------------------------------------ the task
def test_bimodal_task_needs_a_side():
    expert = make_expert("reach-bimodal")
    res = evaluate(expert, "reach-bimodal", 100)
    assert res.success_rate == 1.0
    # both modes are demonstrated, about equally (p = 1/2: 100 draws land in [30, 70] with prob > 0.9999)
    eps = rollout("reach-bimodal", expert, range(100))
    left = 0
    for ep in eps:
        to_goal, moved = ep.observations[0, 4:6] - ep.observations[0, 0:2], ep.observations[10, 0:2] - ep.observations[0, 0:2]
        left += to_goal[0] * moved[1] - to_goal[1] * moved[0] > 0
    assert 30 <= left <= 70
    # the average of the two modes (straight at the goal) hits the obstacle: failure, episode over
    straight = FunctionActor(lambda o: straight_to_goal(o[:6]), act_dim=2)
    eps = rollout("reach-bimodal", straight, range(1_000_000, 1_000_050))
    assert not any(ep.successes.any() for ep in eps) and all(ep.terminated and len(ep.observations) < 30 for ep in eps)


def test_bimodal_env_options():
    env = make_env("reach-bimodal", seed=3, radius=0.3, max_steps=7)
    assert env.observation_space.shape == (8,) and env.radius == 0.3
    done, t = False, 0
    while not done:
        _, _, term, trunc, info = env.step(np.array([1.0, 0.0]))  # sideways, never reaches the goal
        done, t = term or trunc, t + 1
    assert t == 7 and trunc and not info["success"]


# ------------------------------------------------------------------------------------ the models
@pytest.mark.parametrize("name", ["act", "diffusion", "flow"])
def test_loss_predict_and_checkpoint(name, tmp_path):
    cls, cfg = TINY[name]
    torch.manual_seed(0)
    policy = cls(cfg)
    policy.fit_normalization(np.random.default_rng(0).normal(size=(50, 8)), np.random.default_rng(1).uniform(-1, 1, size=(50, 2)))
    loss, metrics = policy.loss(batch_for(policy))
    assert torch.isfinite(loss) and metrics
    loss.backward()
    assert all(p.grad is not None for p in policy.parameters())
    policy.save(tmp_path / "p")
    loaded = load_policy(tmp_path / "p")
    assert type(loaded) is cls and loaded.config == policy.config
    obs = torch.randn(3, cfg.n_obs_steps, 8)
    policy.eval()
    a, b = policy.predict(obs), loaded.predict(obs)  # the same checkpoint draws the same initial noise
    assert a.shape == (3, cfg.horizon, 2) and torch.allclose(a, b, atol=1e-5)
    assert torch.equal(loaded.act_norm.scale, policy.act_norm.scale)


def test_act_uses_every_decoder_layer():
    policy = ACTPolicy(TINY["act"][1])
    assert len(policy.decoder.layers) == 3
    policy.loss(batch_for(policy))[0].backward()
    for i, layer in enumerate(policy.decoder.layers):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters()), f"decoder layer {i} unused"
    # and the output depends on the last layer
    policy.eval()
    obs = torch.randn(2, 1, 8)
    before = policy.predict_normalized(obs)
    with torch.no_grad():
        policy.decoder.layers[-1].linear2.weight.mul_(2.0)
    assert not torch.allclose(before, policy.predict_normalized(obs))


def test_act_padding_is_masked():
    policy = ACTPolicy(TINY["act"][1]).eval()  # eval: no dropout
    b = batch_for(policy)
    b["action_pad"][:] = False
    b["action_pad"][:, -2:] = True
    torch.manual_seed(0)
    l1 = policy.loss(b)[1]["l1"]
    b["action"][:, -2:] += 100.0  # padded targets must not matter (the CVAE encoder masks them too)
    torch.manual_seed(0)
    assert policy.loss(b)[1]["l1"] == pytest.approx(l1, rel=1e-5)


def test_cosine_schedule():
    ab = cosine_alphas_cumprod(100)
    assert ab.shape == (100,) and (ab[1:] < ab[:-1]).all()
    assert 0.999 < ab[0] < 1 and ab[-1] < 1e-3
    u = torch.arange(1, 101) / 100
    ref = torch.cos((u + 0.008) / 1.008 * torch.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
    assert torch.allclose(ab[:-1], ref[:-1], atol=1e-5)  # abar_t = f(t) / f(0) (the last beta is capped)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample"])
@pytest.mark.parametrize("steps", [1, 3, 10, 100])
def test_ddim_with_an_exact_denoiser_returns_the_data(prediction_type, steps):
    policy = DiffusionPolicy(DiffusionConfig(obs_dim=8, act_dim=2, down_dims=[16, 32], horizon=8, prediction_type=prediction_type,
                                             num_inference_steps=steps))
    x0 = torch.rand(4, 8, 2) * 1.6 - 0.8
    ab = policy.alphas_cumprod

    def oracle(x, t, cond):  # what a perfect network predicts when the data is the single point x0
        a = ab[t][:, None, None]
        return (x - a.sqrt() * x0) / (1 - a).sqrt() if prediction_type == "epsilon" else x0

    policy.model.forward = oracle
    assert torch.allclose(policy.predict_normalized(torch.zeros(4, 2, 8)), x0, atol=1e-4)
    assert policy.timesteps(steps)[0] == (100 // steps) * (steps - 1) and policy.timesteps(steps)[-1] == 0


@pytest.mark.parametrize("steps", [1, 4])
def test_flow_euler_with_an_exact_velocity_returns_the_data(steps):
    policy = FlowPolicy(FlowConfig(obs_dim=8, act_dim=2, down_dims=[16, 32], horizon=8, num_inference_steps=steps))
    x1 = torch.rand(4, 8, 2) * 1.6 - 0.8
    policy.model.forward = lambda x, t, cond: (x1 - x) / (1 - t / 100)[:, None, None]  # straight line to x1
    assert torch.allclose(policy.predict_normalized(torch.zeros(4, 2, 8)), x1, atol=1e-5)


@pytest.mark.parametrize("name", ["diffusion", "flow"])
def test_sampling_trace_computes_the_eager_network(name):
    """predict() runs a TorchScript trace of the U-Net; it must equal the eager module and follow its weights."""
    import copy

    cls, cfg = TINY[name]
    policy, other = cls(cfg).eval(), cls(cfg).eval()
    obs_n = torch.randn(5, cfg.n_obs_steps, cfg.obs_dim)

    def sample(p, traced: bool):  # without generators, row i draws its noise from seed i: the same for both paths
        with torch.set_grad_enabled(not traced):
            return p.predict_normalized(obs_n).detach()

    fast = sample(policy, traced=True)
    assert len(policy._traced) == 1  # the trace was built and used
    assert torch.allclose(fast, sample(policy, traced=False), atol=1e-5)
    policy.load_state_dict(other.state_dict())  # in-place weight change: the trace must see it
    assert torch.allclose(sample(policy, traced=True), sample(other, traced=False), atol=1e-5)
    assert not torch.allclose(fast, sample(policy, traced=True), atol=1e-3)
    assert copy.deepcopy(policy)._traced == {}  # a copy traces its own parameters
    policy.train()
    assert policy._traced == {}


@pytest.mark.parametrize("name", ["diffusion", "flow"])
def test_aux_head_regresses_the_chunk_from_the_condition(name):
    """aux_weight > 0: a linear head on the FiLM condition learns the normalized chunk (its loss falls below a tenth
    of where it starts); 0: no head and a zero term; a negative weight is refused."""
    from mimetic.errors import MimeticError

    cls, cfg = TINY[name]
    assert cls(cfg).aux_head is None and cls(cfg).loss(batch_for(cls(cfg)))[1]["aux"] == 0.0
    policy, batch = regressable(cls, dataclasses.replace(cfg, aux_weight=1.0))
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        loss, info = policy.loss(batch)
        first = info["aux"] if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert info["aux"] < 0.1 * first, (first, info["aux"])
    with pytest.raises(MimeticError, match="aux_weight"):
        cls(dataclasses.replace(cfg, aux_weight=-1.0))


@pytest.mark.parametrize("name", ["diffusion", "flow"])
def test_noise_samples_encode_each_observation_once_and_denoise_k_draws_of_it(name):
    """noise_samples=K: the encoder runs on the B samples once, the U-Net on K x B noisy chunks, each sample's K rows
    sharing its condition and its clean chunk; below 1 is refused."""
    from mimetic.errors import MimeticError

    cls, cfg = TINY[name]
    policy = cls(dataclasses.replace(cfg, noise_samples=3))
    policy.fit_normalization(np.random.default_rng(0).normal(size=(50, 8)), np.random.default_rng(1).uniform(-1, 1, size=(50, 2)))
    batch = batch_for(policy)
    B = len(batch["obs"])
    encoded, calls = [], []
    encode = policy.encode
    policy.encode = lambda b: encoded.append(len(b["obs"])) or encode(b)
    forward = policy.model.forward
    policy.model.forward = lambda x, t, cond: calls.append((x.detach(), t, cond.detach())) or forward(x, t, cond)
    loss, _ = policy.loss(batch)
    loss.backward()
    x, t, cond = calls[0]
    assert encoded == [B] and x.shape[0] == cond.shape[0] == t.shape[0] == 3 * B
    assert torch.equal(cond[0::3], cond[1::3]) and torch.equal(cond[0::3], cond[2::3])
    assert not torch.equal(cond[0], cond[3])  # different samples keep different conditions
    assert not torch.allclose(x[0::3], x[1::3])  # the copies are noised independently
    with pytest.raises(MimeticError, match="noise_samples"):
        cls(dataclasses.replace(cfg, noise_samples=0))


@pytest.mark.parametrize("name", ["diffusion", "flow"])
def test_regression_warmup_trains_the_encoder_side_by_regression_then_hands_over(name):
    """regression_warmup=0.5 of 10 steps: before training step 5 the loss is the chunk's regression from the condition (the
    condition MLP and the head get gradients, the U-Net none) and it learns; from step W, and outside training, the
    generative loss; a fraction outside [0, 1) is refused."""
    from mimetic.errors import MimeticError

    cls, cfg = TINY[name]
    policy, batch = regressable(cls, dataclasses.replace(cfg, regression_warmup=0.5))
    policy.train()
    policy.start_step(0, 10)
    assert policy.warmup_steps(10) == 5
    loss, info = policy(batch)
    loss.backward()
    assert set(info) == {"regression"}
    assert all(p.grad is None for p in policy.model.parameters())
    assert all(p.grad is not None for p in [*policy.cond_mlp.parameters(), *policy.aux_head.parameters()])
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    first = info["regression"]
    for _ in range(300):
        loss, info = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert info["regression"] < 0.1 * first, (first, info["regression"])
    policy.zero_grad()
    policy.start_step(5, 10)
    loss, info = policy(batch)
    loss.backward()
    assert "mse" in info and all(p.grad is not None for p in policy.model.parameters())
    policy.start_step(0, 10)
    assert "mse" in policy.eval()(batch)[1]  # validation losses are the generative loss
    for bad in (-0.1, 1.0):
        with pytest.raises(MimeticError, match="regression_warmup"):
            cls(dataclasses.replace(cfg, regression_warmup=bad))


def test_a_regression_warmup_gives_each_phase_its_own_learning_rate_schedule():
    """lr_factor with restart W: warm-up and cosine over steps 0..W-1, then again over W..steps-1."""
    from mimetic.algos.trainer import TrainConfig, lr_factor

    cfg = TrainConfig(steps=400, warmup_steps=10)
    plain = [lr_factor(s, cfg) for s in range(400)]
    phased = [lr_factor(s, cfg, restart=100) for s in range(400)]
    assert phased[:100] == [lr_factor(s, TrainConfig(steps=100, warmup_steps=10)) for s in range(100)]
    assert phased[100:] == [lr_factor(s, TrainConfig(steps=300, warmup_steps=10)) for s in range(300)]
    assert phased[99] < 0.01 and phased[100] == pytest.approx(0.1) and phased[110] > 0.99
    assert plain[100] > 0.8 and plain[110] < plain[100]  # without a restart: one schedule


def test_bad_configs():
    from mimetic.errors import MimeticError

    with pytest.raises(MimeticError, match="divisible"):
        DiffusionPolicy(DiffusionConfig(obs_dim=8, act_dim=2, down_dims=[16, 32, 64], horizon=6))
    with pytest.raises(MimeticError, match="prediction_type"):
        DiffusionPolicy(DiffusionConfig(obs_dim=8, act_dim=2, prediction_type="v"))
    with pytest.raises(MimeticError, match="num_inference_steps"):
        DiffusionPolicy(DiffusionConfig(obs_dim=8, act_dim=2, num_inference_steps=500))
    with pytest.raises(MimeticError, match="n_heads"):
        ACTPolicy(ACTConfig(obs_dim=8, act_dim=2, dim_model=30, n_heads=4))


# ------------------------------------------------------------------------------------ configs and seeds
ALGOS = {"act": act_algo, "diffusion": diffusion_algo, "flow": flow_algo}
# small networks trained for a few steps: real checkpoints, cheap enough for every run of the suite
TRAIN = {
    "act": dict(dim_model=32, n_heads=2, dim_feedforward=64, horizon=8),
    "diffusion": dict(down_dims=[16, 32], horizon=8, n_obs_steps=3),  # action_start left to be derived (-2)
    "flow": dict(down_dims=[16, 32], horizon=8, n_obs_steps=3),
}
STEPS = dict(steps=30, batch_size=32, log_every=30)


@pytest.fixture(scope="module")
def trained(bimodal_demos, tmp_path_factory):
    """method -> (the Config object it was trained with, its run directory)."""
    out = {}
    for name, module in ALGOS.items():
        cfg = module.Config(**TRAIN[name], **STEPS)
        run_dir = tmp_path_factory.mktemp(name)
        module.train(cfg, Dataset.load(bimodal_demos), run_dir, progress=False)
        out[name] = (cfg, run_dir)
    return out


@pytest.mark.parametrize("name", ["act", "diffusion", "flow"])
def test_training_never_writes_into_its_config(name, trained):
    cfg, run_dir = trained[name]
    assert cfg == ALGOS[name].Config(**TRAIN[name], **STEPS)  # a config is data: what was built from it left it alone
    train_json = json.loads((run_dir / "train.json").read_text())["config"]
    # train.json holds the config as trained: the state defaults filled in (these demonstrations have no camera)
    assert train_json == json.loads(json.dumps(dataclasses.asdict(resolve_defaults(cfg, reads_cameras=False))))
    if name != "act":  # the policy's own config holds the derived value
        assert cfg.action_start is None and load_policy(run_dir).config.action_start == -2


def test_compare_reruns_and_resumes_diffusion_and_flow(bimodal_demos, tmp_path):
    from mimetic.analysis.compare import compare

    out = tmp_path / "cmp"
    kw = dict(episodes=3, steps=6, options={"down_dims": [16, 32], "horizon": 8, "batch_size": 16}, expert=False)
    compare("reach-bimodal", ["diffusion", "flow"], bimodal_demos, [0], out, **kw)
    runs = {m: out / "runs" / f"{m}-seed0" for m in ("diffusion", "flow")}
    first = {m: json.loads((r / "eval.json").read_text()) for m, r in runs.items()}
    weights = (runs["diffusion"] / "model.safetensors").stat().st_mtime_ns
    (runs["flow"] / "eval.json").unlink()  # as if killed after training: the re-run resumes it and evaluates again
    compare("reach-bimodal", ["diffusion", "flow"], bimodal_demos, [0], out, **kw)
    assert (runs["diffusion"] / "model.safetensors").stat().st_mtime_ns == weights  # a finished run is reused
    again = json.loads((runs["flow"] / "eval.json").read_text())
    assert again["success_rate"] == first["flow"]["success_rate"] and again["episodes"] == 3


@pytest.mark.parametrize("name", ["act", "diffusion", "flow"])
def test_an_episode_acts_the_same_whatever_the_batch(name, trained):
    """Sampling noise is drawn per episode from the episode's seed: the same checkpoint on the same seeds
    gives the same episodes with 1 or 4 environments at a time and after other evaluations."""
    policy = load_policy(trained[name][1])
    actor = PolicyActor(policy)
    seeds = [5, 11, 2, 8, 13, 3]
    alone = rollout("reach-bimodal", actor, seeds, num_envs=1)
    batched = rollout("reach-bimodal", actor, seeds, num_envs=4)
    rollout("reach-bimodal", actor, range(100, 103), num_envs=2)  # something else in between
    again = rollout("reach-bimodal", actor, seeds, num_envs=4)
    for a, b, c in zip(alone, batched, again):
        assert a.successes.any() == b.successes.any() and len(a.actions) == len(b.actions)
        np.testing.assert_allclose(a.actions, b.actions, atol=1e-4)  # batched arithmetic may differ in the last bits
        np.testing.assert_array_equal(b.actions, c.actions)
    # the noise does matter for the generative policies (ACT is deterministic at inference: latent 0, no dropout)
    obs = torch.as_tensor(alone[0].observations[None, :1].repeat(policy.config.n_obs_steps, 1))
    x, y = (policy.predict(obs, generators=policy.generators([s])) for s in (0, 1))
    assert torch.equal(x, y) == (name == "act")


def test_sampled_heads_draw_per_episode_not_from_the_global_generator():
    """MLP mixture / Gaussian and tanh-Gaussian heads with sample=True: row i samples from generators[i] only."""
    from mimetic.policies.gaussian import TanhGaussianConfig, TanhGaussianPolicy
    from mimetic.policies.mlp import MLPConfig, MLPPolicy

    torch.manual_seed(0)
    policies = [MLPPolicy(MLPConfig(obs_dim=3, act_dim=2, hidden=[16], head=h, sample=True)).eval() for h in ("gmm", "gaussian")]
    policies.append(TanhGaussianPolicy(TanhGaussianConfig(obs_dim=3, act_dim=2, hidden=[16], sample=True)).eval())
    obs = torch.randn(4, 1, 3)
    for p in policies:
        state = torch.get_rng_state()
        batch = p.predict(obs, generators=p.generators([7, 8, 9, 10]))
        assert torch.equal(torch.get_rng_state(), state)
        for i, s in enumerate([7, 8, 9, 10]):  # one row alone, with its own seed: the same sample
            assert torch.allclose(p.predict(obs[i : i + 1], generators=p.generators([s]))[0], batch[i], atol=1e-6)
        assert not torch.allclose(batch, p.predict(obs, generators=p.generators([1, 2, 3, 4])))
    # the mixture's inverse-CDF draw has the mixture's mean and variance (N samples: within 5 standard errors)
    gmm, N = policies[0], 4000
    with torch.no_grad():
        logits, mean, std = gmm._mixture(gmm.obs_norm(obs[:1]))
    w = torch.softmax(logits[0], -1)[:, None]
    m = (w * mean[0]).sum(0)
    var = (w * (std[0] ** 2 + mean[0] ** 2)).sum(0) - m**2
    x = gmm.predict_normalized(gmm.obs_norm(obs[:1].expand(N, -1, -1)), generators=gmm.generators(range(N)))[:, 0]
    assert ((x.mean(0) - m).abs() < 5 * (var / N).sqrt()).all(), (x.mean(0), m)
    assert ((x.var(0) / var - 1).abs() < 0.15).all(), (x.var(0), var)


# ------------------------------------------------------------------------------------ CLI
def run(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("method, options", [
    ("act", ["--dim-model", 32, "--n-heads", 2, "--dim-feedforward", 64, "--horizon", 8]),
    ("diffusion", ["--down-dims", 16, 32, "--num-inference-steps", 5]),
    ("flow", ["--down-dims", 16, 32, "--n-obs-steps", 3]),
])
def test_cli_train_eval_resume(method, options, bimodal_demos, tmp_path, capsys):
    run_dir = tmp_path / "r"
    code, out, err = run(capsys, "train", method, "--data", bimodal_demos, "--out", run_dir, "--steps", 20, "--batch-size", 32,
                         "--log-every", 10, *options)
    assert code == 0, err
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["type"] == method and meta["config"]["env"] == "reach-bimodal"
    if method == "flow":
        assert meta["config"]["n_obs_steps"] == 3 and meta["config"]["action_start"] == -2
    code, out, err = run(capsys, "eval", run_dir, "--episodes", 4, "--json", tmp_path / "e.json")
    assert code == 0 and "on reach-bimodal" in out, err
    assert json.loads((tmp_path / "e.json").read_text())["episodes"] == 4
    if method == "act":
        assert run(capsys, "eval", run_dir, "--episodes", 2, "--temporal-ensemble", 0.1)[0] == 0
        code, _, err = run(capsys, "eval", run_dir, "--episodes", 2, "--sampling-steps", 2)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "only diffusion and flow" in err, err
    else:
        code, out, err = run(capsys, "eval", run_dir, "--episodes", 2, "--sampling-steps", 2)
        assert code == 0 and "on reach-bimodal" in out, err
        bad = 101 if method == "diffusion" else 0  # diffusion: at most its 100 training timesteps
        code, _, err = run(capsys, "eval", run_dir, "--episodes", 2, "--sampling-steps", bad)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "sampling steps must be in" in err, err
    code, _, err = run(capsys, "train", method, "--out", run_dir, "--resume", "--steps", 30)
    assert code == 0, err
    steps = [json.loads(l)["step"] for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30]


def test_cli_bad_input(bimodal_demos, tmp_path, capsys):
    for argv, needle in [
        (["diffusion", "--horizon", 6, "--down-dims", 16, 32, 64], "divisible"),
        (["diffusion", "--prediction-type", "v"], "prediction_type"),
        (["flow", "--horizon", 2, "--n-obs-steps", 4], "current step"),
        (["act", "--dim-model", 30], "n_heads"),
    ]:
        code, _, err = run(capsys, "train", *argv[:1], "--data", bimodal_demos, "--out", tmp_path / "r", "--steps", 5, *argv[1:])
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0], err
        assert not (tmp_path / "r").exists()  # nothing half-written


# ------------------------------------------------------------------------------------ multimodality
def test_mlp_regression_fails_on_bimodal(bimodal_demos, tmp_path):
    policy = bc.train(bc.Config(hidden=[256, 256], steps=1000, log_every=1000), Dataset.load(bimodal_demos), tmp_path / "bc",
                      progress=False)
    res = evaluate(PolicyActor(policy), "reach-bimodal", 100)
    assert res.ci95[1] <= 0.5, res  # it averages the two ways around the obstacle and runs into it


# The slow tests that the chunk policies solve a multimodal task train them at their defaults (the shipped
# prediction type included) on `reach-fork`: tests/test_reach_fork.py.
