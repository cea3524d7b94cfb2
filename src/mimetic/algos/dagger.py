"""Interactive imitation: DAgger (Ross et al. 2011) and HG-DAgger (Kelly et al. 2019).

DAgger: iteration 0 trains the learner on expert demonstrations (`initial_data`, or
`initial_episodes` fresh expert episodes). Each later iteration i rolls out a mixture: at every
step, independently in every environment, the expert's action is executed with probability
beta_i and the learner's otherwise (the mixture is per step, not per episode). Every visited
state is labelled with the expert's action and appended to RUN/data; the learner is retrained,
warm-started from the previous iteration's weights.

HG-DAgger (`gate` set): the learner acts; a gate hands control to the expert when it fires
(learner and expert actions disagree, the state leaves the data's distribution, an ensemble of
learners disagrees, or a human presses the takeover key) and back when it is satisfied. Only
the takeover segments are labelled and appended, each as its own episode.

Every frame in RUN/data is an expert label, so the dataset size is the label count.

```
RUN/dagger.json         the configuration (read back by resume)
RUN/data/               the labelled dataset (LeRobot v3, extras: actor 0 learner / 1 expert,
                        iteration, executed_action)
RUN/iters/NNN/          the policy trained at iteration NNN (a normal training run; mK/ per
                        ensemble member)
RUN/dagger.jsonl        one row per completed iteration (success on validation seeds, labels)
RUN/dagger.png          success versus expert labels
RUN/config.json, RUN/model.safetensors   the latest learner: `mimetic eval RUN`
```

Crash safety: an iteration's episodes are appended in one atomic commit that also records the
iteration number, rollouts use seeds fixed by the iteration, and the iteration counts as done
only once its row is in dagger.jsonl. `resume=True` after a kill therefore skips collection if
the iteration's data was committed (else recollects it on the same seeds), resumes the
interrupted training from its checkpoint, and never duplicates or loses episodes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from mimetic.data.dataset import Dataset
from mimetic.data.episode import Episode
from mimetic.data.io import atomic_write_json, read_json
from mimetic.errors import MimeticError
from mimetic.rollout import check_action, rollout

ROLLOUT_SEED = 3_000_000  # DAgger rollouts: disjoint from demos (0..), evaluation (1e6..), validation (2e6..)
BETA_SCHEDULES = ("constant", "linear", "exponential")
GATES = ("scripted", "ensemble", "human")


@dataclass
class DaggerConfig:
    env: str
    env_options: dict = field(default_factory=dict)
    policy: str = "bc"  # any supervised method in mimetic.algos.METHODS
    policy_options: dict = field(default_factory=dict)  # fields of that method's Config
    steps: int = 2000  # training steps per iteration (overrides the method's default)
    iterations: int = 5  # iterations after the initial one (iteration 0 trains on the initial data)
    episodes_per_iter: int = 10
    initial_data: str | None = None  # dataset of initial demonstrations (copied into RUN/data)
    initial_episodes: int = 10  # expert episodes for iteration 0 when initial_data is not given
    beta: str = "exponential"  # constant: beta0; linear: beta0 -> 0 over the iterations; exponential: beta0**i
    beta0: float = 0.5
    gate: str | None = None  # None = DAgger; scripted | ensemble | human = HG-DAgger
    gate_metric: str = "action"  # scripted gate: action (|a_learner - a_expert|) | state (distance to the data)
    threshold: float = 0.3  # the gate fires above this
    release: float | None = None  # and hands back below this (default threshold / 2)
    ensemble_size: int = 3
    expert: str = "scripted"  # scripted | keyboard | gamepad (a human through mimetic.teleop)
    eval_episodes: int = 20  # learner rollouts on validation seeds per iteration
    num_envs: int = 8
    seed: int = 0

    def validate(self) -> None:
        if self.beta not in BETA_SCHEDULES:
            raise MimeticError(f"--beta must be one of {', '.join(BETA_SCHEDULES)}, got {self.beta!r}")
        if not 0.0 <= self.beta0 <= 1.0:
            raise MimeticError(f"--beta0 must be in [0, 1], got {self.beta0}")
        if self.gate is not None and self.gate not in GATES:
            raise MimeticError(f"--gate must be one of {', '.join(GATES)}, got {self.gate!r}")
        if self.gate_metric not in ("action", "state"):
            raise MimeticError(f"--gate-metric must be action or state, got {self.gate_metric!r}")
        if self.gate == "human" and self.expert == "scripted":
            raise MimeticError("--gate human needs a human expert: add --expert keyboard or --expert gamepad")
        if self.expert not in ("scripted", "keyboard", "gamepad"):
            raise MimeticError(f"--expert must be scripted, keyboard or gamepad, got {self.expert!r}")
        for name in ("iterations", "steps"):
            if getattr(self, name) < (0 if name == "iterations" else 1):
                raise MimeticError(f"--{name} must be positive, got {getattr(self, name)}")
        if self.episodes_per_iter < 1 or (self.initial_data is None and self.initial_episodes < 1):
            raise MimeticError("--episodes-per-iter and --initial-episodes must be at least 1")
        if self.gate == "ensemble" and self.ensemble_size < 2:
            raise MimeticError(f"--ensemble-size must be at least 2, got {self.ensemble_size}")
        if self.eval_episodes < 1:
            raise MimeticError(f"--eval-episodes must be at least 1, got {self.eval_episodes}")


def beta_at(cfg: DaggerConfig, iteration: int) -> float:
    """Probability that the expert's action is executed at a step of iteration >= 1."""
    if cfg.beta == "constant":
        return cfg.beta0
    if cfg.beta == "linear":
        return cfg.beta0 * max(0.0, 1.0 - (iteration - 1) / max(1, cfg.iterations))
    return cfg.beta0 ** iteration


# ------------------------------------------------------------------------------ actors and gates
class CheckedExpert:
    """Wraps an expert so that an exception, NaN or a wrong-sized action becomes a MimeticError."""

    def __init__(self, expert, act_dim: int, name: str):
        self.expert, self.act_dim, self.name = expert, act_dim, name

    def reset(self, num_envs: int = 1) -> None:
        self.expert.reset(num_envs)

    def act(self, obs: np.ndarray) -> np.ndarray:
        try:
            a = self.expert.act(obs)
        except MimeticError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of user code is reported as the expert's
            raise MimeticError(f"{self.name} raised {type(e).__name__}: {e}") from None
        return check_action(a, len(obs), self.act_dim, self.name)


class ActionGate:
    """Fires when |a_learner - a_expert| (Euclidean) exceeds `threshold`; hands back below `release`."""

    def __init__(self, threshold: float, release: float):
        self.threshold, self.release = threshold, release

    def reset(self, num_envs: int) -> None:
        pass

    def score(self, obs, a_learner, a_expert) -> np.ndarray:
        return np.linalg.norm(a_learner - a_expert, axis=1)


class StateGate(ActionGate):
    """Fires when the observation is far (z-scored Euclidean distance) from every observation in the data."""

    def __init__(self, observations: np.ndarray, threshold: float, release: float, max_points: int = 5000, seed: int = 0):
        super().__init__(threshold, release)
        obs = np.asarray(observations, np.float32)
        if len(obs) > max_points:
            obs = obs[np.random.default_rng(seed).choice(len(obs), max_points, replace=False)]
        self.mean, self.std = obs.mean(0), np.where(obs.std(0) < 1e-6, 1.0, obs.std(0))
        self.points = torch.as_tensor((obs - self.mean) / self.std)

    def score(self, obs, a_learner, a_expert) -> np.ndarray:
        q = torch.as_tensor((np.asarray(obs, np.float32) - self.mean) / self.std)
        return torch.cdist(q, self.points).min(1).values.numpy()


class EnsembleGate(ActionGate):
    """Fires when an ensemble of learners disagrees: mean over action dims of the members' std."""

    def __init__(self, members: list, threshold: float, release: float):
        super().__init__(threshold, release)
        self.members = members

    def reset(self, num_envs: int) -> None:
        for m in self.members:
            m.reset(num_envs)

    def score(self, obs, a_learner, a_expert) -> np.ndarray:
        acts = np.stack([a_learner] + [m.act(obs) for m in self.members])
        return acts.std(0).mean(1)


class HumanGate:
    """The human decides: control is the expert's while the teleop actor's takeover toggle is on."""

    def __init__(self, teleop):
        self.teleop = teleop

    def reset(self, num_envs: int) -> None:
        pass


class DaggerActor:
    """Runs learner and expert side by side, executes one of them and records the expert's label.

    Without a gate, the expert's action is executed with probability `beta` per step and env.
    With a gate, the learner acts until the gate fires; the expert keeps control until it clears.
    `last_extras`: actor (0 learner / 1 expert), label (the expert's action), executed_action.
    """

    name = "dagger mixture"

    def __init__(self, learner, expert, *, beta: float = 0.0, gate=None, rng: np.random.Generator | None = None):
        self.learner, self.expert, self.beta, self.gate = learner, expert, beta, gate
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.reset(1)

    def reset(self, num_envs: int = 1) -> None:
        self.learner.reset(num_envs)
        self.expert.reset(num_envs)
        if self.gate is not None:
            self.gate.reset(num_envs)
        self.control = np.zeros(num_envs, bool)
        self.last_extras: dict[str, np.ndarray] = {}

    def act(self, obs: np.ndarray) -> np.ndarray:
        n = len(obs)
        if len(self.control) != n:
            self.reset(n)
        a_l = np.asarray(self.learner.act(obs), np.float32)
        a_e = self.expert.act(obs)
        if getattr(getattr(self.expert, "expert", self.expert), "quit", False):
            raise KeyboardInterrupt  # the human asked to stop: the run can be resumed
        if self.gate is None:
            expert = self.rng.random(n) < self.beta
        elif isinstance(self.gate, HumanGate):
            expert = np.full(n, bool(self.gate.teleop.takeover))
        else:
            s = self.gate.score(obs, a_l, a_e)
            self.control = np.where(self.control, s > self.gate.release, s > self.gate.threshold)
            expert = self.control.copy()
        executed = np.where(expert[:, None], a_e, a_l).astype(np.float32)
        self.last_extras = {"actor": expert.astype(np.int64), "label": a_e, "executed_action": executed}
        return executed


# ------------------------------------------------------------------------------ episodes -> labelled data
def _labelled(ep: Episode, iteration: int, actor: np.ndarray, labels: np.ndarray, executed: np.ndarray,
              sl: slice = slice(None), terminated: bool | None = None) -> Episode:
    T = len(ep.actions[sl])
    return Episode(observations=ep.observations[sl], actions=labels[sl], rewards=ep.rewards[sl],
                   successes=ep.successes[sl], terminated=ep.terminated if terminated is None else terminated,
                   task=ep.task, final_observation=ep.final_observation if terminated is None else None,
                   extras={"actor": actor[sl].astype(np.int64), "iteration": np.full(T, iteration, np.int64),
                           "executed_action": executed[sl].astype(np.float32)})


def label_episodes(episodes: list[Episode], iteration: int, takeover_only: bool) -> list[Episode]:
    """Relabel rollouts with the expert's actions; with `takeover_only`, keep the expert's segments only."""
    out = []
    for ep in episodes:
        actor, labels, executed = ep.extras["actor"], ep.extras["label"], ep.extras["executed_action"]
        if not takeover_only:
            out.append(_labelled(ep, iteration, actor, labels, executed))
            continue
        on = np.concatenate([[0], actor.astype(np.int8), [0]])
        starts, ends = np.flatnonzero(np.diff(on) == 1), np.flatnonzero(np.diff(on) == -1)
        for s, e in zip(starts, ends):
            term = bool(ep.terminated and e == len(ep))
            out.append(_labelled(ep, iteration, actor, labels, executed, slice(s, e), terminated=term))
    return out


def _expert_episodes(episodes: list[Episode], iteration: int) -> list[Episode]:
    return [_labelled(ep, iteration, np.ones(len(ep), np.int64), ep.actions, ep.actions) for ep in episodes]


# ------------------------------------------------------------------------------ the loop
def _env_sizes(env: str, env_options: dict) -> tuple[int, int, int]:
    from mimetic.envs import make_env

    e = make_env(env, **env_options)
    try:
        obs_dim = int(np.prod(e.observation_space.shape))
        if isinstance(e.action_space, gym.spaces.Discrete):
            raise MimeticError(f"dagger: environment {env!r} has discrete actions; DAgger here needs continuous (Box) actions")
        act_dim = int(np.prod(e.action_space.shape))
        fps = int(e.metadata.get("render_fps") or 10)
    finally:
        e.close()
    return obs_dim, act_dim, fps


def make_dagger_expert(cfg: DaggerConfig, act_dim: int, input_source=None):
    """The expert: the env's scripted one, or a human through a teleop input source."""
    if cfg.expert == "scripted":
        from mimetic.envs import make_expert

        return CheckedExpert(make_expert(cfg.env, **cfg.env_options), act_dim, f"expert of {cfg.env}")
    from mimetic.teleop import TeleopActor, make_input_source

    source = input_source if input_source is not None else make_input_source(cfg.expert)
    return CheckedExpert(TeleopActor(source, act_dim), act_dim, f"human expert ({cfg.expert})")


def _method_config(cfg: DaggerConfig, member: int = 0):
    from mimetic.algos import method_module

    from mimetic.algos.trainer import TrainConfig

    module = method_module(cfg.policy)
    if not issubclass(module.Config, TrainConfig):
        raise MimeticError(f"--policy {cfg.policy}: not a supervised method (its Config is not a TrainConfig)")
    names = {f.name for f in dataclasses.fields(module.Config)}
    unknown = sorted(set(cfg.policy_options) - names)
    if unknown:
        raise MimeticError(f"--policy-option: {cfg.policy} has no option(s) {unknown}; known: {sorted(names)}")
    mc = module.Config(**cfg.policy_options)
    mc.steps = cfg.steps
    mc.seed = cfg.seed + member
    return module, mc


def _train_iteration(cfg: DaggerConfig, ds: Dataset, run: Path, iteration: int, progress: bool) -> list:
    """Train the learner (and ensemble members) of `iteration`, warm-started from iteration - 1."""
    from mimetic.algos.trainer import load_state, save_state

    members = cfg.ensemble_size if cfg.gate == "ensemble" else 1
    policies = []
    for k in range(members):
        module, mc = _method_config(cfg, k)
        out = _member_dir(run, iteration, k, members)
        prev = _member_dir(run, iteration - 1, k, members)
        resume = (out / "checkpoint/state.json").exists()  # an interrupted training of this iteration
        if not resume and iteration > 0 and (prev / "checkpoint/state.json").exists():
            state = load_state(prev / "checkpoint/state")  # warm start: previous weights and optimizer moments
            state["step"], state["best_val_success"] = 0, -1.0
            (out / "checkpoint").mkdir(parents=True, exist_ok=True)
            save_state(out / "checkpoint/state", state)
            resume = True
        policies.append(module.train(mc, ds, out, env=cfg.env, env_options=cfg.env_options, resume=resume,
                                     progress=progress))
    return policies


def _member_dir(run: Path, iteration: int, k: int, members: int) -> Path:
    d = run / "iters" / f"{iteration:03d}"
    return d / f"m{k}" if members > 1 else d


def _load_learners(cfg: DaggerConfig, run: Path, iteration: int):
    from mimetic.policies.base import PolicyActor, load_policy

    members = cfg.ensemble_size if cfg.gate == "ensemble" else 1
    return [PolicyActor(load_policy(_member_dir(run, iteration, k, members))) for k in range(members)]


def read_log(run: str | Path) -> list[dict]:
    path = Path(run) / "dagger.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: that iteration did not complete
    return rows


def _write_log(run: Path, rows: list[dict]) -> None:
    from mimetic.data.io import atomic_write_bytes

    atomic_write_bytes(run / "dagger.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())


def plot_log(rows: list[dict], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    x = [r["expert_labels"] for r in rows]
    y = [r["val_success"] for r in rows]
    err = [[max(0.0, r["val_success"] - r["val_ci95"][0]) for r in rows], [max(0.0, r["val_ci95"][1] - r["val_success"]) for r in rows]]
    ax.errorbar(x, y, yerr=err, marker="o", capsize=3)
    for r in rows:
        ax.annotate(str(r["iteration"]), (r["expert_labels"], r["val_success"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("expert-labelled steps")
    ax.set_ylabel("learner success (validation seeds)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _initial_episodes(cfg: DaggerConfig, obs_dim: int, act_dim: int, expert) -> tuple[list[Episode], int]:
    """Iteration 0's expert episodes and the next demonstration seed."""
    if cfg.initial_data is None:
        eps = rollout(cfg.env, expert, range(cfg.initial_episodes), env_options=cfg.env_options,
                      num_envs=1 if cfg.expert != "scripted" else cfg.num_envs, task=cfg.env)
        return _expert_episodes(eps, 0), cfg.initial_episodes
    src = Dataset.load(cfg.initial_data)
    if src.env_name not in (None, cfg.env):
        raise MimeticError(f"--data {cfg.initial_data} was collected in {src.env_name!r}, not {cfg.env!r}")
    if (src.obs_dim, src.act_dim) != (obs_dim, act_dim):
        raise MimeticError(f"--data {cfg.initial_data} has observations of size {src.obs_dim} and actions of size "
                           f"{src.act_dim}, but environment {cfg.env!r} has {obs_dim} and {act_dim}")
    eps = [dataclasses.replace(ep, extras={}) for ep in src.episodes()]  # its own extra columns are dropped
    return _expert_episodes(eps, 0), int(src.info.get("mimetic", {}).get("next_seed", src.num_episodes))


def run_dagger(cfg: DaggerConfig, run: str | Path, *, resume: bool = False, progress: bool = True,
               expert=None, input_source=None) -> list[dict]:
    """Run (or resume) DAgger / HG-DAgger into `run`; returns the per-iteration log rows."""
    from mimetic.evaluate import VAL_SEED, evaluate
    from mimetic.policies.base import PolicyActor, save_policy

    run = Path(run)
    if resume:
        saved = read_json(run / "dagger.json", "DAgger run")
        cfg = DaggerConfig(**saved["config"])
    elif (run / "dagger.json").exists():
        raise MimeticError(f"{run} already holds a DAgger run: pass --resume to continue it, or choose another --out")
    elif run.exists() and (run.is_file() or any(run.iterdir())):
        raise MimeticError(f"{run} exists and is not empty: choose another --out")
    cfg.validate()
    _method_config(cfg)  # fail early on an unknown method or option
    obs_dim, act_dim, fps = _env_sizes(cfg.env, cfg.env_options)
    if expert is None:
        expert = make_dagger_expert(cfg, act_dim, input_source)
    elif not isinstance(expert, CheckedExpert):
        expert = CheckedExpert(expert, act_dim, f"expert of {cfg.env}")
    human = cfg.expert != "scripted"
    num_envs = 1 if human else cfg.num_envs
    if not resume:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run / "dagger.json", {"config": dataclasses.asdict(cfg)})
    rows = read_log(run)
    data_dir = run / "data"
    if not (data_dir / "meta/info.json").exists():
        eps, next_seed = _initial_episodes(cfg, obs_dim, act_dim, expert)
        if not eps:
            raise MimeticError(f"--data {cfg.initial_data} has no episodes")
        Dataset.create(data_dir, eps, env=cfg.env, env_options=cfg.env_options, fps=fps,
                       meta={"next_seed": next_seed, "dagger_iteration": 0})
    ds = Dataset.load(data_dir)

    for it in range(len(rows), cfg.iterations + 1):
        t0 = time.perf_counter()
        row: dict = {"iteration": it}
        if it > 0 and int(ds.info["mimetic"].get("dagger_iteration", 0)) < it:
            learners = _load_learners(cfg, run, it - 1)
            gate = _make_gate(cfg, ds, learners, expert)
            beta = beta_at(cfg, it) if cfg.gate is None else 0.0
            actor = DaggerActor(learners[0], expert, beta=beta, gate=gate, rng=np.random.default_rng([cfg.seed, it]))
            seeds = range(ROLLOUT_SEED + (it - 1) * cfg.episodes_per_iter, ROLLOUT_SEED + it * cfg.episodes_per_iter)
            eps = rollout(cfg.env, actor, seeds, env_options=cfg.env_options, num_envs=num_envs, task=cfg.env,
                          progress=progress, desc=f"dagger iteration {it}")
            new = label_episodes(eps, it, takeover_only=cfg.gate is not None)
            ds.append(new, meta={"dagger_iteration": it})  # atomic: these episodes and the iteration number
            row.update(beta=beta, rollout_frames=int(sum(len(e) for e in eps)), rollout_success=float(np.mean([e.success for e in eps])),
                       rollout_expert_fraction=float(np.mean(np.concatenate([e.extras["actor"] for e in eps]))),
                       new_labels=int(sum(len(e) for e in new)))
        policies = _train_iteration(cfg, ds, run, it, progress)
        res = evaluate(PolicyActor(policies[0]), cfg.env, cfg.eval_episodes, seed=VAL_SEED, env_options=cfg.env_options,
                       num_envs=cfg.num_envs)
        it_frames = int(np.sum(ds.extra("iteration") == it))
        row.setdefault("new_labels", it_frames)
        row.update(val_success=res.success_rate, val_ci95=list(res.ci95), val_return=res.mean_return,
                   dataset_episodes=ds.num_episodes, dataset_frames=ds.num_frames,
                   expert_labels=ds.num_frames, time_s=round(time.perf_counter() - t0, 2))
        save_policy(policies[0], run)  # the latest learner is the run's checkpoint
        rows.append(row)
        _write_log(run, rows)  # the commit point of the iteration
        plot_log(rows, run / "dagger.png", title=f"{'HG-DAgger' if cfg.gate else 'DAgger'} on {cfg.env}")
    return rows


def _make_gate(cfg: DaggerConfig, ds: Dataset, learners: list, expert):
    if cfg.gate is None:
        return None
    release = cfg.release if cfg.release is not None else cfg.threshold / 2
    if cfg.gate == "human":
        return HumanGate(expert.expert)
    if cfg.gate == "ensemble":
        return EnsembleGate(learners[1:], cfg.threshold, release)
    if cfg.gate_metric == "state":
        return StateGate(ds.observations, cfg.threshold, release, seed=cfg.seed)
    return ActionGate(cfg.threshold, release)
