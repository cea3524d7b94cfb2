"""The GAIL / AIRL training loop: the generator (SAC or PPO) against the discriminator, with resume.

A discriminator D tells expert transitions (label 1) from the generator's (label 0); the generator
is trained by RL on a reward derived from D (see `discriminator`), relabelled with the current D at
every update. SAC generator: off-policy, discriminator-actor-critic style (Kostrikov et al. 2019),
updates `utd` times per environment step from a replay buffer; PPO generator: on-policy, one
discriminator phase and one PPO phase per rollout.

The run follows `mimetic.algos.run_dir`: RUN/config.json + model.safetensors (a `tanh-gaussian`
policy: `mimetic eval RUN`), train.json, metrics.jsonl (one row per `log_every` environment steps,
"step" = environment steps), RUN/checkpoint/ every `ckpt_every` environment steps and at the end,
and the learned reward in RUN/reward/ (written when the run finishes; `mimetic reward RUN`).

The checkpoint holds the policy, the discriminator, the generator's networks and optimizers, SAC's
replay buffer, the RNG states and the step counters, so `resume=True` continues the same run. What it
cannot hold is the simulators' state: the episodes in progress at the checkpoint are abandoned and
the environments restart with the next unused seeds, so a resumed run is a valid continuation but
not bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from mimetic.algos.adversarial.discriminator import (KINDS, REWARD_DIR, Discriminator, discriminator_step,
                                                     generator_reward, save_reward, terminal_value)
from mimetic.algos.rl import PPO, SAC, TRAIN_SEED, PPOConfig, ReplayBuffer, SACConfig, VecEnv
from mimetic.algos.run_dir import RunDir
from mimetic.envs.spaces import EnvSizes, sizes_of
from mimetic.errors import MimeticError
from mimetic.features import state_only_note
from mimetic.policies.base import PolicyActor, save_policy
from mimetic.policies.gaussian import TanhGaussianConfig, TanhGaussianPolicy
from mimetic.progress import progress_bar

GENERATORS = ("sac", "ppo")


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
    buffer_size: int = 200000  # sac replay buffer (checkpointed with the run: up to buffer_size transitions)
    utd: float = 0.5  # sac: generator updates per environment step
    disc_every: int = 2  # sac: generator updates per discriminator update
    rollout_steps: int = 256  # ppo: steps per environment per iteration
    ppo_epochs: int = 5
    minibatch_size: int = 64  # ppo
    disc_epochs: int = 2  # ppo: discriminator passes per iteration
    log_every: int = 1000  # environment steps between metric rows
    ckpt_every: int = 5000  # environment steps between checkpoints (--resume continues from the last)
    eval_every: int = 0  # environment steps between evaluations on validation seeds (0 = off)
    eval_episodes: int = 10
    seed: int = 0


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


def check_spaces(dataset, env: gym.Env, env_name: str) -> EnvSizes:
    """Demonstrations and environment must both be continuous and have the same sizes; returns the sizes."""
    sizes = sizes_of(env)
    if sizes.discrete:
        raise MimeticError(f"environment {env_name!r} has a discrete action space {env.action_space}; gail/airl here need continuous (Box) actions")
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise MimeticError(f"environment {env_name!r} gives {type(env.observation_space).__name__} observations "
                           f"({sorted(getattr(env.observation_space, 'spaces', {}))}); gail/airl learn from one state vector: "
                           f"use the environment without cameras and with its full state")
    sizes.check_data(dataset.obs_dim, dataset.act_dim, f"dataset {dataset.root}", env_name)
    if not (np.all(np.isfinite(dataset.observations)) and np.all(np.isfinite(dataset.actions))):
        raise MimeticError(f"dataset {dataset.root} holds NaN or inf observations or actions")
    acts = dataset.actions
    integral = np.allclose(acts, np.round(acts))
    if acts.shape[1] == 1 and integral and len(np.unique(acts)) <= 32 and np.ptp(acts) >= 1:
        raise MimeticError(f"dataset {dataset.root} looks like discrete actions (integers {np.unique(acts)[:5].tolist()}...) "
                           f"but environment {env_name!r} has continuous actions")
    return sizes


def _check_config(kind: str, cfg: AdversarialConfig) -> None:
    if kind not in KINDS:
        raise MimeticError(f"unknown adversarial method {kind!r}: use one of {', '.join(KINDS)}")
    if cfg.generator not in GENERATORS:
        raise MimeticError(f"--generator {cfg.generator!r}: use one of {', '.join(GENERATORS)}")
    for name in ("steps", "num_envs", "batch_size", "log_every", "ckpt_every", "disc_every", "rollout_steps", "ppo_epochs",
                 "minibatch_size", "disc_epochs"):
        if getattr(cfg, name) < 1:
            raise MimeticError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    if not 0 < cfg.gamma < 1:
        raise MimeticError(f"--gamma must be in (0, 1), got {cfg.gamma}")


# ============================================================================ training


def train_adversarial(kind: str, cfg: AdversarialConfig, dataset, run_dir, *, env=None, env_options=None,
                      resume: bool = False, progress: bool = True) -> TanhGaussianPolicy:
    """Train GAIL (`kind="gail"`) or AIRL (`"airl"`) from `dataset` into `run_dir` (or continue it from its
    checkpoint with `resume=True`); returns the policy."""
    from mimetic.envs import make_env
    from mimetic.evaluate import VAL_SEED, evaluate

    _check_config(kind, cfg)
    run = RunDir(run_dir, f"{kind} run", method=kind)
    if not resume:
        run.check_new()
        if (run.path / REWARD_DIR / "config.json").exists():
            raise MimeticError(f"{run.path} already holds a trained reward ({run.path / REWARD_DIR}): choose another --out")
    if dataset.num_episodes == 0:
        raise MimeticError(f"dataset {dataset.root} has no episodes to train on")
    env_name = env if env is not None else dataset.env_name
    if env_name is None:
        raise MimeticError(f"dataset {dataset.root} does not name its environment: pass --env ENV")
    note = state_only_note(dataset.observation_keys, kind, f"dataset {dataset.root}")
    if note:
        print(note)
    env_options = dict(dataset.env_options if env_options is None else env_options)
    env_options.pop("cameras", None)  # learns from the state: the environment need not render
    probe = make_env(env_name, **env_options)
    try:
        sizes = check_spaces(dataset, probe, env_name)
    finally:
        probe.close()
    low, high = sizes.low, sizes.high

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
    gen = (_SACGenerator if cfg.generator == "sac" else _PPOGenerator)(cfg, policy, disc, disc_opt, expert)

    saved = run.start(resume)
    loop = {"steps": 0, "next_log": cfg.log_every, "next_eval": cfg.eval_every or None,
            "next_ckpt": cfg.ckpt_every, "metrics": {}, "seconds": 0.0}
    next_seed, finished = TRAIN_SEED + 100_000 * cfg.seed, []
    if saved is not None:
        if (saved.get("kind"), saved.get("generator")) != (kind, cfg.generator):
            theirs = f"{saved['kind']}-{saved.get('generator')}" if saved.get("kind") in KINDS else "non-adversarial"
            raise MimeticError(f"{run.path} holds a {theirs} checkpoint, "
                               f"not {kind}-{cfg.generator}: resume it with the same method and --generator")
        policy.load_state_dict(saved["policy"])
        disc.load_state_dict(saved["disc"])
        disc_opt.load_state_dict(saved["disc_opt"])
        gen.load_state_dict(saved["generator_state"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        loop.update(saved["loop"])
        next_seed, finished = int(saved["next_seed"]), list(saved["finished_returns"])
    vec = VecEnv(lambda: make_env(env_name, **env_options), cfg.num_envs, next_seed)
    vec.finished_returns = finished
    info = {"method": kind, "config": dataclasses.asdict(cfg), "env": env_name, "env_options": env_options,
            "dataset": str(Path(dataset.root).resolve()), "policy": policy.type_name}
    run.write_info(info)

    t0 = time.perf_counter() - float(loop["seconds"])
    bar = progress_bar(progress, total=cfg.steps, initial=min(loop["steps"], cfg.steps), desc=f"{kind}-{cfg.generator}", unit="step")

    def checkpoint() -> None:
        loop["seconds"] = round(time.perf_counter() - t0, 3)
        save_policy(policy, run.path)
        run.save_checkpoint({"step": loop["steps"], "kind": kind, "generator": cfg.generator, "loop": dict(loop),
                             "policy": policy.state_dict(), "disc": disc.state_dict(), "disc_opt": disc_opt.state_dict(),
                             "generator_state": gen.state_dict(), "rng": rng.bit_generator.state,
                             "torch_rng": torch.get_rng_state(), "next_seed": vec.next_seed,
                             "finished_returns": vec.finished_returns[-20:]})

    def after_steps(n: int) -> None:
        loop["steps"] += n
        bar.update(n)
        s = loop["steps"]
        if s >= loop["next_log"] or s - n < cfg.steps <= s:  # each interval, and once at the end
            loop["next_log"] = (s // cfg.log_every + 1) * cfg.log_every
            rets = vec.finished_returns[-20:]
            row = {"step": s, "time_s": round(time.perf_counter() - t0, 3),
                   "train_return": float(np.mean(rets)) if rets else None, **loop["metrics"]}
            if loop["next_eval"] is not None and (s >= loop["next_eval"] or s >= cfg.steps):
                loop["next_eval"] = (s // cfg.eval_every + 1) * cfg.eval_every
                res = evaluate(PolicyActor(policy), env_name, cfg.eval_episodes, seed=VAL_SEED, env_options=env_options)
                policy.train()
                row["val_return"], row["val_success"] = res.mean_return, res.success_rate
            run.append_metrics(row)
            bar.set_postfix({k: round(v, 3) for k, v in row.items() if k in ("train_return", "disc_acc", "val_return") and v is not None})
        if s >= loop["next_ckpt"] or s >= cfg.steps:
            loop["next_ckpt"] = (s // cfg.ckpt_every + 1) * cfg.ckpt_every
            checkpoint()

    try:
        gen.train(vec, rng, after_steps, loop)
    finally:
        bar.close()
        vec.close()
    policy.eval()
    seconds = round(time.perf_counter() - t0, 3)
    save_policy(policy, run.path)
    save_reward(disc, run.path / REWARD_DIR, {"method": kind, "env": env_name, "env_options": env_options,
                                              "act_dim": dataset.act_dim, "generator": cfg.generator,
                                              "env_steps": loop["steps"], "seconds": seconds})
    run.write_info({**info, "env_steps": loop["steps"], "seconds": seconds})
    return policy


_BUFFER_KEYS = ("obs", "act", "next_obs", "terminal", "absorbing")


class _SACGenerator:
    """SAC on the discriminator's reward. State: critics, optimizers, temperature, replay buffer, counters."""

    def __init__(self, cfg, policy, disc, disc_opt, expert):
        c = policy.config
        self.cfg, self.policy, self.disc, self.disc_opt, self.expert = cfg, policy, disc, disc_opt, expert
        self.sac = SAC(policy, SACConfig(hidden=list(cfg.hidden), lr=cfg.lr, gamma=cfg.gamma))
        self.buf = ReplayBuffer(cfg.buffer_size, c.obs_dim, c.act_dim)
        self.updates, self.owed = 0, 0.0

    def state_dict(self) -> dict:
        sac, buf = self.sac, self.buf
        return {"q": sac.q.state_dict(), "q_target": sac.q_target.state_dict(), "log_alpha": sac.log_alpha.detach().clone(),
                "actor_opt": sac.actor_opt.state_dict(), "q_opt": sac.q_opt.state_dict(), "alpha_opt": sac.alpha_opt.state_dict(),
                "updates": self.updates, "owed": self.owed, "buffer_pos": buf.pos, "buffer_size": buf.size,
                "buffer": {k: torch.from_numpy(getattr(buf, k)[: buf.size].copy()) for k in _BUFFER_KEYS}}

    def load_state_dict(self, s: dict) -> None:
        sac, buf = self.sac, self.buf
        sac.q.load_state_dict(s["q"])
        sac.q_target.load_state_dict(s["q_target"])
        with torch.no_grad():
            sac.log_alpha.copy_(s["log_alpha"])
        for name in ("actor_opt", "q_opt", "alpha_opt"):
            getattr(sac, name).load_state_dict(s[name])
        self.updates, self.owed = int(s["updates"]), float(s["owed"])
        n = int(s["buffer_size"])
        if n > buf.capacity:
            raise MimeticError(f"the checkpoint's replay buffer holds {n} transitions, more than --buffer-size {buf.capacity}")
        for k in _BUFFER_KEYS:
            getattr(buf, k)[:n] = s["buffer"][k].numpy()
        buf.pos, buf.size = int(s["buffer_pos"]) % buf.capacity, n

    def train(self, vec, rng, after_steps, loop) -> None:
        cfg, policy, disc, buf, sac = self.cfg, self.policy, self.disc, self.buf, self.sac
        c = policy.config
        n = cfg.num_envs
        while loop["steps"] < cfg.steps:
            obs = vec.obs.copy()
            if loop["steps"] < cfg.learning_starts:
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
            if loop["steps"] + n >= cfg.learning_starts:
                self.owed += n * cfg.utd
            while self.owed >= 1:
                self.owed -= 1
                self.updates += 1
                if self.updates % cfg.disc_every == 0:
                    m = discriminator_step(disc, self.disc_opt, self.expert.sample(cfg.batch_size, rng),
                                           buf.sample(cfg.batch_size, rng), policy, cfg.grad_penalty)
                    loop["metrics"].update(m)
                b = buf.sample(cfg.batch_size, rng)
                r = generator_reward(disc, b, policy, "sac")
                v_abs = terminal_value(disc, c.act_dim, cfg.gamma, cfg.absorbing)
                norm = policy.obs_norm
                m = sac.update(norm(b["obs"]), b["act"], norm(b["next_obs"]), r, b["terminal"],
                               v_abs.expand_as(r), weight=(~b["absorbing"]).float())
                loop["metrics"].update(m)
            after_steps(n)


class _PPOGenerator:
    """PPO on the discriminator's reward. State: the value network and the optimizer (rollouts are not kept)."""

    def __init__(self, cfg, policy, disc, disc_opt, expert):
        self.cfg, self.policy, self.disc, self.disc_opt, self.expert = cfg, policy, disc, disc_opt, expert
        self.ppo = PPO(policy, PPOConfig(hidden=list(cfg.hidden), lr=cfg.lr, gamma=cfg.gamma, epochs=cfg.ppo_epochs,
                                         minibatch_size=cfg.minibatch_size))

    def state_dict(self) -> dict:
        return {"value": self.ppo.value.state_dict(), "opt": self.ppo.opt.state_dict()}

    def load_state_dict(self, s: dict) -> None:
        self.ppo.value.load_state_dict(s["value"])
        self.ppo.opt.load_state_dict(s["opt"])

    def train(self, vec, rng, after_steps, loop) -> None:
        cfg, policy, disc, ppo = self.cfg, self.policy, self.disc, self.ppo
        c = policy.config
        n, T = cfg.num_envs, cfg.rollout_steps
        norm = policy.obs_norm
        while loop["steps"] < cfg.steps:
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
                    m = discriminator_step(disc, self.disc_opt, self.expert.sample(len(i), rng),
                                           {k: v[i] for k, v in agent.items()}, policy, cfg.grad_penalty)
            loop["metrics"].update(m)
            r = generator_reward(disc, flat, policy, "ppo").reshape(T, n)
            v_abs = terminal_value(disc, c.act_dim, cfg.gamma, cfg.absorbing).expand(T, n)
            adv, ret = ppo.advantages(norm(R["obs"]), norm(R["next_obs"]), r, R["terminal"], R["done"], v_abs)
            m = ppo.update(norm(flat["obs"]), flat["act"], flat["logp"], adv.reshape(-1), ret.reshape(-1), rng)
            loop["metrics"].update(m)
            after_steps(T * n)


def _with_absorbing(flat: dict, c) -> dict:
    k = int(flat["terminal"].sum())
    if k == 0:
        return flat
    z = torch.zeros(k, c.obs_dim)
    extra = {"obs": z, "act": torch.zeros(k, c.act_dim), "next_obs": z, "terminal": torch.ones(k, dtype=torch.bool),
             "absorbing": torch.ones(k, dtype=torch.bool)}
    return {key: torch.cat([flat[key], extra[key]]) for key in extra}
