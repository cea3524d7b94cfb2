"""Adversarial imitation: GAIL (Ho & Ermon 2016) and AIRL (Fu et al. 2018), with a SAC generator
(off-policy, discriminator-actor-critic style, Kostrikov et al. 2019) or a PPO generator (on-policy).

A discriminator D tells expert transitions (label 1) from the generator's (label 0); the generator
is trained by RL on a reward derived from D, relabelled with the current D at every update.
- GAIL: D(s, a) = sigmoid(d(s, a)); generator reward r = log D - log(1 - D) = d(s, a).
- AIRL: the logit is f(s, a, s') - log pi(a|s) with f = g(s) + gamma h(s') - h(s): g is a state-only
  reward, h a shaping potential, so g is disentangled from the dynamics. The SAC generator's reward is
  f (SAC adds the entropy bonus itself), the PPO generator's f - log pi (= the logit).
- Absorbing states (DAC): when an episode *terminates* (not on a time limit), the next state is an
  absorbing state (observation zeroed, indicator 1) whose self-loop the discriminator also scores, so
  termination is neither a free reward nor a free penalty; its value is r_abs / (1 - gamma).
- Optional gradient penalty on points between expert and generator inputs (`grad_penalty`).

Outputs in RUN: the policy (`config.json` + `model.safetensors`, a `tanh-gaussian` policy:
`mimetic eval RUN`), `train.json`, `metrics.jsonl`, and the learned reward in `RUN/reward/`
(`config.json` + `reward.safetensors`; `load_reward`, `mimetic reward RUN`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from mimetic.algos.rl import PPO, SAC, TRAIN_SEED, PPOConfig, ReplayBuffer, SACConfig, VecEnv
from mimetic.errors import MimeticError
from mimetic.policies.base import Normalizer, PolicyActor, save_policy
from mimetic.policies.gaussian import OBS_CLIP, TanhGaussianConfig, TanhGaussianPolicy
from mimetic.policies.mlp import mlp
from mimetic.progress import progress_bar

KINDS = ("gail", "airl")
GENERATORS = ("sac", "ppo")
REWARD_DIR = "reward"


@dataclass
class AdversarialConfig:
    generator: str = "sac"  # sac (off-policy, sample-efficient) | ppo (on-policy)
    steps: int = 20000  # environment steps
    num_envs: int = 4
    # defaults: the settings benchmarks/adversarial.py measured with the SAC generator (its PPO runs used
    # --lr 3e-4 --num-envs 8)
    hidden: list[int] = field(default_factory=lambda: [64, 64])  # policy and critics
    disc_hidden: list[int] = field(default_factory=lambda: [64, 64])
    lr: float = 1e-3
    disc_lr: float = 1e-3
    gamma: float = 0.99
    batch_size: int = 128  # SAC and discriminator batches
    grad_penalty: float = 10.0
    absorbing: bool = True  # DAC absorbing states at terminations
    learning_starts: int = 1000  # sac: random actions for the first steps
    buffer_size: int = 200000  # sac replay buffer
    utd: float = 0.5  # sac: generator updates per environment step
    disc_every: int = 2  # sac: generator updates per discriminator update
    rollout_steps: int = 256  # ppo: steps per environment per iteration
    ppo_epochs: int = 5
    minibatch_size: int = 64  # ppo
    disc_epochs: int = 2  # ppo: discriminator passes per iteration
    log_every: int = 1000  # environment steps between metric rows
    eval_every: int = 0  # environment steps between evaluations on validation seeds (0 = off)
    eval_episodes: int = 10
    seed: int = 0


# ============================================================================ discriminator


class Discriminator(nn.Module):
    """GAIL: d(x, a). AIRL: g(x) + gamma h(x') - h(x) - log pi(a|s). x = (normalized obs, absorbing flag)."""

    def __init__(self, kind: str, obs_dim: int, act_dim: int, hidden: list[int], gamma: float, absorbing: bool = True):
        super().__init__()
        if kind not in KINDS:
            raise MimeticError(f"unknown adversarial method {kind!r}: use one of {', '.join(KINDS)}")
        self.kind, self.gamma, self.absorbing = kind, gamma, absorbing
        self.obs_norm = Normalizer(obs_dim)
        if kind == "gail":
            self.d = mlp([obs_dim + 1 + act_dim, *hidden, 1], activation=nn.ReLU)
        else:
            self.g = mlp([obs_dim + 1, *hidden, 1], activation=nn.ReLU)
            self.h = mlp([obs_dim + 1, *hidden, 1], activation=nn.ReLU)

    def state_input(self, obs: torch.Tensor, absorbing: torch.Tensor) -> torch.Tensor:
        flag = absorbing.float()[:, None]
        return torch.cat([self.obs_norm(obs).clamp(-OBS_CLIP, OBS_CLIP) * (1 - flag), flag], -1)

    def inputs(self, b: dict) -> dict[str, torch.Tensor]:
        """The differentiable inputs of a batch (what the gradient penalty interpolates)."""
        x = self.state_input(b["obs"], b["absorbing"])
        act = b["act"] * (1 - b["absorbing"].float()[:, None])
        if self.kind == "gail":
            return {"x": x, "act": act}
        nxt_absorbing = b["terminal"] | b["absorbing"] if self.absorbing else b["absorbing"]
        return {"x": x, "x2": self.state_input(b["next_obs"], nxt_absorbing), "live": (~b["terminal"]).float()[:, None]}

    def f(self, inp: dict) -> torch.Tensor:
        """GAIL: d(s, a); AIRL: f(s, s') = g(s) + gamma h(s') - h(s). Shape (B,)."""
        if self.kind == "gail":
            return self.d(torch.cat([inp["x"], inp["act"]], -1)).squeeze(-1)
        h2 = self.h(inp["x2"]) if self.absorbing else self.h(inp["x2"]) * inp["live"]  # h = 0 after a plain termination
        return (self.g(inp["x"]) + self.gamma * h2 - self.h(inp["x"])).squeeze(-1)

    def logits(self, inp: dict, logp: torch.Tensor | None) -> torch.Tensor:
        out = self.f(inp)
        return out - logp if self.kind == "airl" else out

    def state_reward(self, obs: torch.Tensor) -> torch.Tensor:
        """AIRL's learned state-only reward g(s) (B,)."""
        return self.g(self.state_input(obs, torch.zeros(len(obs), dtype=torch.bool))).squeeze(-1)

    def absorbing_reward(self, act_dim: int) -> torch.Tensor:
        """The reward of the absorbing state's self-loop (scalar)."""
        one = torch.ones(1, dtype=torch.bool)
        b = {"obs": torch.zeros(1, self.obs_norm.shift.shape[0]), "act": torch.zeros(1, act_dim), "absorbing": one,
             "next_obs": torch.zeros(1, self.obs_norm.shift.shape[0]), "terminal": one}
        return self.f(self.inputs(b))[0]


def discriminator_step(disc: Discriminator, opt, expert: dict, agent: dict, policy: TanhGaussianPolicy,
                       grad_penalty: float) -> dict[str, float]:
    """One step of logistic regression expert (1) vs agent (0), plus the gradient penalty."""
    bce = nn.functional.binary_cross_entropy_with_logits
    lp_e = lp_a = None
    if disc.kind == "airl":
        with torch.no_grad():
            lp_e, lp_a = _logp(policy, disc, expert), _logp(policy, disc, agent)
    in_e, in_a = disc.inputs(expert), disc.inputs(agent)
    le, la = disc.logits(in_e, lp_e), disc.logits(in_a, lp_a)
    loss = bce(le, torch.ones_like(le)) + bce(la, torch.zeros_like(la))
    gp = torch.zeros(())
    if grad_penalty > 0:
        eps = torch.rand(len(le), 1)
        mix = {k: (eps * in_e[k] + (1 - eps) * in_a[k]).detach().requires_grad_(k != "live") for k in in_e}
        out = disc.f(mix)
        grads = torch.autograd.grad(out.sum(), [v for k, v in mix.items() if k != "live"], create_graph=True)
        gp = torch.cat(grads, -1).pow(2).sum(-1).mean()
        loss = loss + grad_penalty * gp
    if not torch.isfinite(loss):
        raise MimeticError(f"the discriminator diverged (loss {loss.item()}): lower --disc-lr or raise --grad-penalty")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        acc = 0.5 * ((le > 0).float().mean() + (la < 0).float().mean())
    return {"disc_loss": loss.item(), "disc_acc": float(acc), "gp": gp.item()}


def _logp(policy: TanhGaussianPolicy, disc: Discriminator, b: dict) -> torch.Tensor:
    """log pi(a|s) of a batch (0 on absorbing rows)."""
    lp = policy.log_prob(policy.obs_norm(b["obs"]), b["act"])
    return torch.where(b["absorbing"], torch.zeros_like(lp), lp)


def generator_reward(disc: Discriminator, b: dict, policy: TanhGaussianPolicy, generator: str) -> torch.Tensor:
    with torch.no_grad():
        r = disc.f(disc.inputs(b))
        if disc.kind == "airl" and generator == "ppo":
            r = r - _logp(policy, disc, b)
    return r


def terminal_value(disc: Discriminator, act_dim: int, gamma: float, absorbing: bool) -> torch.Tensor:
    if not absorbing:
        return torch.zeros(())
    with torch.no_grad():
        return disc.absorbing_reward(act_dim) / (1 - gamma)


# ============================================================================ data


def expert_transitions(dataset, low: np.ndarray, high: np.ndarray, absorbing: bool) -> ReplayBuffer:
    """The demonstrations as transitions with normalized actions. The last step of a truncated episode has
    no recorded next observation: it is kept with next = itself (only AIRL reads next observations, and
    a time-limit step is rare). Terminated episodes end in the absorbing state."""
    obs, act = dataset.observations.astype(np.float32), dataset.actions.astype(np.float32)
    act_n = np.clip(2 * (act - low) / (high - low) - 1, -1, 1)
    n_abs = int(dataset.episode_terminated.sum()) if absorbing else 0
    buf = ReplayBuffer(len(obs) + n_abs, obs.shape[1], act.shape[1])
    for e in range(dataset.num_episodes):
        s, t = int(dataset.episode_starts[e]), int(dataset.episode_ends[e])
        nxt = np.concatenate([obs[s + 1 : t], obs[t - 1 : t]])
        term = np.zeros(t - s, bool)
        term[-1] = bool(dataset.episode_terminated[e])
        buf.add(obs[s:t], act_n[s:t], nxt, term)
        if term[-1] and absorbing:
            buf.add(np.zeros((1, obs.shape[1])), np.zeros((1, act.shape[1])), np.zeros((1, obs.shape[1])), [True], [True])
    return buf


def check_spaces(dataset, env: gym.Env, env_name: str) -> None:
    """Demonstrations and environment must both be continuous and have the same sizes."""
    if not isinstance(env.action_space, gym.spaces.Box):
        raise MimeticError(f"environment {env_name!r} has a discrete action space {env.action_space}; gail/airl here need continuous (Box) actions")
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise MimeticError(f"environment {env_name!r} has a non-Box observation space {env.observation_space}; gail/airl need vector observations")
    obs_dim, act_dim = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    if (dataset.obs_dim, dataset.act_dim) != (obs_dim, act_dim):
        raise MimeticError(f"dataset {dataset.root} has observations of size {dataset.obs_dim} and actions of size {dataset.act_dim}, "
                           f"but environment {env_name!r} has {obs_dim} and {act_dim}")
    if not (np.all(np.isfinite(dataset.observations)) and np.all(np.isfinite(dataset.actions))):
        raise MimeticError(f"dataset {dataset.root} holds NaN or inf observations or actions")
    acts = dataset.actions
    integral = np.allclose(acts, np.round(acts))
    if acts.shape[1] == 1 and integral and len(np.unique(acts)) <= 32 and np.ptp(acts) >= 1:
        raise MimeticError(f"dataset {dataset.root} looks like discrete actions (integers {np.unique(acts)[:5].tolist()}...) "
                           f"but environment {env_name!r} has continuous actions")


# ============================================================================ training


def train_adversarial(kind: str, cfg: AdversarialConfig, dataset, run_dir, *, env=None, env_options=None,
                      resume: bool = False, progress: bool = True) -> TanhGaussianPolicy:
    """Train GAIL (`kind="gail"`) or AIRL (`"airl"`) from `dataset` into `run_dir`; returns the policy."""
    from mimetic.data.io import atomic_write_json
    from mimetic.envs import make_env
    from mimetic.evaluate import VAL_SEED, evaluate

    if kind not in KINDS:
        raise MimeticError(f"unknown adversarial method {kind!r}: use one of {', '.join(KINDS)}")
    if cfg.generator not in GENERATORS:
        raise MimeticError(f"--generator {cfg.generator!r}: use one of {', '.join(GENERATORS)}")
    for name in ("steps", "num_envs", "batch_size", "log_every", "disc_every", "rollout_steps", "ppo_epochs", "minibatch_size", "disc_epochs"):
        if getattr(cfg, name) < 1:
            raise MimeticError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    if not 0 < cfg.gamma < 1:
        raise MimeticError(f"--gamma must be in (0, 1), got {cfg.gamma}")
    if resume:
        raise MimeticError(f"{kind} cannot resume a run (its replay buffer is not checkpointed): train again into a new --out")
    run = Path(run_dir)
    if (run / REWARD_DIR / "config.json").exists():
        raise MimeticError(f"{run} already holds a trained reward ({run / REWARD_DIR}): choose another --out")
    if dataset.num_episodes == 0:
        raise MimeticError(f"dataset {dataset.root} has no episodes to train on")
    env_name = env if env is not None else dataset.env_name
    if env_name is None:
        raise MimeticError(f"dataset {dataset.root} does not name its environment: pass --env ENV")
    env_options = dict(dataset.env_options if env_options is None else env_options)
    probe = make_env(env_name, **env_options)
    check_spaces(dataset, probe, env_name)
    low, high = probe.action_space.low.astype(np.float32), probe.action_space.high.astype(np.float32)
    probe.close()

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    pcfg = TanhGaussianConfig(obs_dim=dataset.obs_dim, act_dim=dataset.act_dim, hidden=list(cfg.hidden),
                              env=env_name, env_options=env_options)
    policy = TanhGaussianPolicy(pcfg)
    policy.obs_norm.fit(dataset.observations)
    policy.fit_action_bounds(low, high)
    disc = Discriminator(kind, dataset.obs_dim, dataset.act_dim, list(cfg.disc_hidden), cfg.gamma, cfg.absorbing)
    disc.obs_norm.load_state_dict(policy.obs_norm.state_dict())
    disc_opt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr)
    expert = expert_transitions(dataset, low, high, cfg.absorbing)
    vec = VecEnv(lambda: make_env(env_name, **env_options), cfg.num_envs, TRAIN_SEED + 100_000 * cfg.seed)

    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.jsonl").unlink(missing_ok=True)
    info = {"method": kind, "config": dataclasses.asdict(cfg), "env": env_name, "env_options": env_options,
            "dataset": str(Path(dataset.root).resolve()), "policy": policy.type_name}
    atomic_write_json(run / "train.json", info)

    t0 = time.perf_counter()
    state = {"steps": 0, "next_log": cfg.log_every, "next_eval": cfg.eval_every or float("inf"), "metrics": {}}
    bar = progress_bar(progress, total=cfg.steps, desc=f"{kind}-{cfg.generator}", unit="step")

    def after_steps(n: int) -> None:
        state["steps"] += n
        bar.update(n)
        s = state["steps"]
        if s >= state["next_log"] or s - n < cfg.steps <= s:  # each interval, and once at the end
            state["next_log"] = (s // cfg.log_every + 1) * cfg.log_every
            rets = vec.finished_returns[-20:]
            row = {"env_steps": s, "time_s": round(time.perf_counter() - t0, 3),
                   "train_return": float(np.mean(rets)) if rets else None, **state["metrics"]}
            if cfg.eval_every and (s >= state["next_eval"] or s >= cfg.steps):
                state["next_eval"] = (s // cfg.eval_every + 1) * cfg.eval_every
                res = evaluate(PolicyActor(policy), env_name, cfg.eval_episodes, seed=VAL_SEED, env_options=env_options)
                policy.train()
                row["val_return"], row["val_success"] = res.mean_return, res.success_rate
            with open(run / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            bar.set_postfix({k: round(v, 3) for k, v in row.items() if k in ("train_return", "disc_acc", "val_return") and v is not None})

    try:
        if cfg.generator == "sac":
            _train_sac(cfg, policy, disc, disc_opt, expert, vec, rng, after_steps, state)
        else:
            _train_ppo(cfg, policy, disc, disc_opt, expert, vec, rng, after_steps, state)
    finally:
        bar.close()
        vec.close()
    policy.eval()
    save_policy(policy, run)
    save_reward(disc, run / REWARD_DIR, {"method": kind, "env": env_name, "env_options": env_options,
                                         "act_dim": dataset.act_dim, "generator": cfg.generator,
                                         "env_steps": state["steps"], "seconds": round(time.perf_counter() - t0, 3)})
    info["env_steps"], info["seconds"] = state["steps"], round(time.perf_counter() - t0, 3)
    atomic_write_json(run / "train.json", info)
    return policy


def _train_sac(cfg, policy, disc, disc_opt, expert, vec, rng, after_steps, state) -> None:
    c = policy.config
    sac = SAC(policy, SACConfig(hidden=list(cfg.hidden), lr=cfg.lr, gamma=cfg.gamma))
    buf = ReplayBuffer(cfg.buffer_size, c.obs_dim, c.act_dim)
    n, updates, owed = cfg.num_envs, 0, 0.0
    while state["steps"] < cfg.steps:
        obs = vec.obs.copy()
        if state["steps"] < cfg.learning_starts:
            act = rng.uniform(-1, 1, size=(n, c.act_dim)).astype(np.float32)
        else:
            with torch.no_grad():
                act = policy.sample_action(policy.obs_norm(torch.as_tensor(obs)))[0].numpy()
        nxt, _, term, _ = vec.step(act)
        buf.add(obs, act, nxt, term)
        k = int(np.sum(term)) if cfg.absorbing else 0
        if k:
            z = np.zeros((k, c.obs_dim), np.float32)
            buf.add(z, np.zeros((k, c.act_dim), np.float32), z, np.ones(k, bool), np.ones(k, bool))
        if state["steps"] + n >= cfg.learning_starts:
            owed += n * cfg.utd
        while owed >= 1:
            owed -= 1
            updates += 1
            if updates % cfg.disc_every == 0:
                m = discriminator_step(disc, disc_opt, expert.sample(cfg.batch_size, rng), buf.sample(cfg.batch_size, rng),
                                       policy, cfg.grad_penalty)
                state["metrics"].update(m)
            b = buf.sample(cfg.batch_size, rng)
            r = generator_reward(disc, b, policy, "sac")
            v_abs = terminal_value(disc, c.act_dim, cfg.gamma, cfg.absorbing)
            norm = policy.obs_norm
            m = sac.update(norm(b["obs"]), b["act"], norm(b["next_obs"]), r, b["terminal"],
                           v_abs.expand_as(r), weight=(~b["absorbing"]).float())
            state["metrics"].update(m)
        after_steps(n)


def _train_ppo(cfg, policy, disc, disc_opt, expert, vec, rng, after_steps, state) -> None:
    c = policy.config
    ppo = PPO(policy, PPOConfig(hidden=list(cfg.hidden), lr=cfg.lr, gamma=cfg.gamma, epochs=cfg.ppo_epochs,
                                minibatch_size=cfg.minibatch_size))
    n, T = cfg.num_envs, cfg.rollout_steps
    norm = policy.obs_norm
    while state["steps"] < cfg.steps:
        keys = ("obs", "act", "next_obs", "terminal", "done", "logp")
        roll: dict[str, list] = {k: [] for k in keys}
        for _ in range(T):
            obs = vec.obs.copy()
            with torch.no_grad():
                act = policy.sample_action(norm(torch.as_tensor(obs)))[0]
                logp = policy.log_prob(norm(torch.as_tensor(obs)), act)
            nxt, _, term, trunc = vec.step(act.numpy())
            for k, v in zip(keys, (obs, act.numpy(), nxt, term, term | trunc, logp.numpy())):
                roll[k].append(v)
        R = {k: torch.as_tensor(np.stack(v)) for k, v in roll.items()}  # (T, n, ...)
        flat = {k: v.reshape(T * n, *v.shape[2:]) for k, v in R.items()}
        flat["absorbing"] = torch.zeros(T * n, dtype=torch.bool)
        # discriminator on this iteration's samples (plus absorbing rows for its terminations)
        agent = _with_absorbing(flat, c) if cfg.absorbing else flat
        for _ in range(cfg.disc_epochs):
            order = rng.permutation(len(agent["obs"]))
            for s in range(0, len(order), cfg.batch_size):
                i = torch.as_tensor(order[s : s + cfg.batch_size])
                m = discriminator_step(disc, disc_opt, expert.sample(len(i), rng), {k: v[i] for k, v in agent.items()},
                                       policy, cfg.grad_penalty)
        state["metrics"].update(m)
        r = generator_reward(disc, flat, policy, "ppo").reshape(T, n)
        v_abs = terminal_value(disc, c.act_dim, cfg.gamma, cfg.absorbing).expand(T, n)
        adv, ret = ppo.advantages(norm(R["obs"]), norm(R["next_obs"]), r, R["terminal"], R["done"], v_abs)
        m = ppo.update(norm(flat["obs"]), flat["act"], flat["logp"], adv.reshape(-1), ret.reshape(-1), rng)
        state["metrics"].update(m)
        after_steps(T * n)


def _with_absorbing(flat: dict, c) -> dict:
    k = int(flat["terminal"].sum())
    if k == 0:
        return flat
    z = torch.zeros(k, c.obs_dim)
    extra = {"obs": z, "act": torch.zeros(k, c.act_dim), "next_obs": z, "terminal": torch.ones(k, dtype=torch.bool),
             "absorbing": torch.ones(k, dtype=torch.bool)}
    return {key: torch.cat([flat[key], extra[key]]) for key in extra}


# ============================================================================ the learned reward on disk


def save_reward(disc: Discriminator, directory: Path, meta: dict) -> None:
    """RUN/reward/: config.json (kind, sizes, gamma, ...) + reward.safetensors (the discriminator). No pickle."""
    from safetensors.torch import save

    from mimetic.data.io import atomic_write_bytes, atomic_write_json

    state = {k: v.detach().contiguous().clone() for k, v in disc.state_dict().items()}
    atomic_write_bytes(directory / "reward.safetensors", save(state, metadata={"format": "mimetic-adversarial-reward"}))
    hidden = [m.out_features for m in (disc.d if disc.kind == "gail" else disc.g) if isinstance(m, nn.Linear)][:-1]
    atomic_write_json(directory / "config.json", {**meta, "kind": disc.kind, "obs_dim": int(disc.obs_norm.shift.shape[0]),
                                                   "hidden": hidden, "gamma": disc.gamma, "absorbing": disc.absorbing, "format": "mimetic-adversarial-reward-1"})


def load_reward(run_dir: str | Path) -> tuple[Discriminator, dict]:
    """The discriminator (learned reward) of a gail/airl run, and its config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mimetic.data.io import read_json

    directory = Path(run_dir) / REWARD_DIR
    cfg = read_json(directory / "config.json", "learned reward config")
    try:
        disc = Discriminator(cfg["kind"], int(cfg["obs_dim"]), int(cfg["act_dim"]), list(cfg["hidden"]), float(cfg["gamma"]),
                             bool(cfg.get("absorbing", True)))
    except (KeyError, TypeError, ValueError) as e:
        raise MimeticError(f"{directory / 'config.json'}: not a gail/airl reward config ({e})") from None
    path = directory / "reward.safetensors"
    if not path.is_file():
        raise MimeticError(f"learned reward {path} not found")
    try:
        disc.load_state_dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise MimeticError(f"{path}: cannot load the learned reward: {str(e).strip().splitlines()[0]}") from None
    return disc.eval(), cfg


@torch.no_grad()
def learned_rewards(disc: Discriminator, obs: np.ndarray, act_n: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """Per-step learned reward: GAIL d(s, a); AIRL g(s), its state-only reward."""
    if disc.kind == "airl":
        return disc.state_reward(torch.as_tensor(obs, dtype=torch.float32)).numpy()
    b = {"obs": torch.as_tensor(obs, dtype=torch.float32), "act": torch.as_tensor(act_n, dtype=torch.float32),
         "next_obs": torch.as_tensor(next_obs, dtype=torch.float32), "absorbing": torch.zeros(len(obs), dtype=torch.bool),
         "terminal": torch.zeros(len(obs), dtype=torch.bool)}
    return disc.f(disc.inputs(b)).numpy()


def reward_report(run_dir: str | Path, env: str | None = None, env_options: dict | None = None, episodes: int = 10,
                  plot: bool | str | Path = True) -> dict:
    """Compare the learned reward with the environment's reward along expert and random trajectories
    (evaluation seeds). Returns pearson / spearman over all steps, the mean learned reward per step of
    each, and `plot` (PNG: learned vs true scatter, and both along one trajectory of each)."""
    from scipy import stats

    from mimetic.actors import RandomActor
    from mimetic.envs import make_env, make_expert
    from mimetic.evaluate import EVAL_SEED
    from mimetic.rollout import rollout

    run_dir = Path(run_dir)
    disc, cfg = load_reward(run_dir)
    env = env or cfg["env"]
    options = dict(cfg.get("env_options") or {}) if env_options is None else dict(env_options)
    e = make_env(env, **options)
    if not isinstance(e.action_space, gym.spaces.Box) or int(np.prod(e.observation_space.shape)) != cfg["obs_dim"] \
            or int(np.prod(e.action_space.shape)) != cfg["act_dim"]:
        raise MimeticError(f"learned reward of {run_dir} is for observations of size {cfg['obs_dim']} and continuous actions of size "
                           f"{cfg['act_dim']}, environment {env!r} has {e.observation_space} and {e.action_space}")
    low, high = e.action_space.low, e.action_space.high
    random_actor = RandomActor(e.action_space, seed=0)
    e.close()
    seeds = range(EVAL_SEED, EVAL_SEED + episodes)
    groups = {}
    for name, actor in (("expert", make_expert(env, **options)), ("random", random_actor)):
        eps = rollout(env, actor, seeds, env_options=options)
        learned, true = [], []
        for ep in eps:
            nxt = np.concatenate([ep.observations[1:], ep.final_observation[None]])
            act_n = np.clip(2 * (ep.actions - low) / (high - low) - 1, -1, 1)
            learned.append(learned_rewards(disc, ep.observations, act_n, nxt))
            true.append(np.asarray(ep.rewards, dtype=np.float64))
        groups[name] = (learned, true)
    all_l = np.concatenate([np.concatenate(g[0]) for g in groups.values()])
    all_t = np.concatenate([np.concatenate(g[1]) for g in groups.values()])
    const = np.ptp(all_l) == 0 or np.ptp(all_t) == 0
    report = {
        "method": cfg["kind"], "env": env, "env_options": options, "episodes": episodes,
        "reward": "g(s) (state-only)" if cfg["kind"] == "airl" else "d(s, a) = log D - log(1 - D)",
        "pearson": float("nan") if const else float(stats.pearsonr(all_l, all_t)[0]),
        "spearman": float("nan") if const else float(stats.spearmanr(all_l, all_t)[0]),
        "expert_learned_reward": float(np.mean(np.concatenate(groups["expert"][0]))),
        "random_learned_reward": float(np.mean(np.concatenate(groups["random"][0]))),
        "expert_true_reward": float(np.mean(np.concatenate(groups["expert"][1]))),
        "random_true_reward": float(np.mean(np.concatenate(groups["random"][1]))),
        "plot": None,
    }
    if plot is not False:
        path = run_dir / "reward.png" if plot is True else Path(plot)
        report["plot"] = str(_plot(path, groups, f"{cfg['kind']} on {env}: learned {report['reward']} vs true reward"))
    return report


def _plot(path: Path, groups: dict, title: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mimetic.data.io import atomic_write_bytes

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    for i, (name, (learned, true)) in enumerate(groups.items()):
        ax.scatter(np.concatenate(true), np.concatenate(learned), s=3, alpha=0.4, color=f"C{i}", label=name)
    ax.set_xlabel("true reward")
    ax.set_ylabel("learned reward")
    ax.legend()
    ax = fig.add_subplot(1, 2, 2)
    ax2 = ax.twinx()
    for i, (name, (learned, true)) in enumerate(groups.items()):
        ax.plot(learned[0], color=f"C{i}", label=f"{name} learned")
        ax2.plot(true[0], color=f"C{i}", linestyle=":", label=f"{name} true")
    ax.set_xlabel("step (first episode)")
    ax.set_ylabel("learned (solid)")
    ax2.set_ylabel("true (dotted)")
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path
