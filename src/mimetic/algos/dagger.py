"""Interactive imitation: DAgger (Ross et al. 2011) and HG-DAgger (Kelly et al. 2019).

DAgger: iteration 0 trains the learner on expert demonstrations (`initial_data`, or
`initial_episodes` fresh expert episodes). Each later iteration i rolls out a mixture: at every
step, independently in every environment, the expert's action is executed with probability
beta_i and the learner's otherwise (the mixture is per step, not per episode). Every visited
state is labelled with the expert's action and appended to RUN/data; the learner is retrained on
all the data so far, for the method's full training budget (`steps`, default: the method's own, so
iteration 0 is exactly BC with its defaults), warm-started from the previous iteration's weights
with the normalization fitted afresh on the aggregated data (or from scratch, `warm_start=False`).

Held-out data: the trainer holds out episodes for its validation loss. Iteration 0 holds out the
ones plain BC would (`split_episodes` of the initial episodes); every later episode is held out or
not by a draw seeded with its index, so an episode once held out stays held out and is never
trained on, whatever the iteration.

Deployment (`select`): every iteration's learner is scored on validation seeds; the run's
checkpoint is the iteration with the highest validation success (the earliest on ties, so a run
whose later iterations are no better deploys the fewest-label policy), or the last one.

Experts: the environment's scripted expert by default. A human expert (keyboard, gamepad) is built
by the caller (the CLI, through mimetic.teleop) and passed in as `expert`; this module never
imports the teleop UI.

HG-DAgger (`gate` set): the learner acts; a gate hands control to the expert when it fires
(learner and expert actions disagree, the state leaves the data's distribution, an ensemble of
learners disagrees, or a human presses the takeover key) and back when it is satisfied. Only
the takeover segments are labelled and appended, each as its own episode.

Every frame in RUN/data is an expert label, so the dataset size is the label count.

```
RUN/train.json          the configuration, {"method": "dagger", "config": ...} (read back by resume)
RUN/data/               the labelled dataset (LeRobot v3, extras: actor 0 learner / 1 expert,
                        iteration, executed_action)
RUN/iters/NNN/          the policy trained at iteration NNN (a normal training run; mK/ per
                        ensemble member)
RUN/metrics.jsonl       one row per completed iteration, "step" = iteration (success on validation
                        seeds, labels, training steps, the deployed iteration so far)
RUN/dagger.png          success versus expert labels
RUN/config.json, RUN/model.safetensors   the deployed learner (see `select`): `mimetic eval RUN`
```

Many processes (torchrun, `mimetic dagger --nproc N`): rank 0 alone collects, labels, appends, validates and
writes RUN (the others wait at a collective); every iteration's supervised training runs on all ranks with DDP,
each rank reading the dataset rank 0 just committed and the same warm start, so every rank ends each iteration
with the same learner. A human expert runs in one process (refused in one line); `backend` (Ray) is rank 0's.

Crash safety: an iteration's episodes are appended in one atomic commit that also records the
iteration number, rollouts use seeds fixed by the iteration, and the iteration counts as done
only once its row is in metrics.jsonl (rewritten atomically: the run-directory convention of
mimetic.algos.run_dir, with the iteration as the step). `resume=True` after a kill therefore skips collection if
the iteration's data was committed (else recollects it on the same seeds), resumes the
interrupted training from its checkpoint, and never duplicates or loses episodes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mimetic.actors import batch_size, reset_actor
from mimetic.algos.run_dir import RunDir
from mimetic.data.dataset import Dataset
from mimetic.data.episode import Episode
from mimetic.data.io import read_json
from mimetic.errors import MimeticError
from mimetic.features import state_of
from mimetic.rollout import check_action, rollout

ROLLOUT_SEED = 3_000_000  # DAgger rollouts: disjoint from demos (0..), evaluation (1e6..), validation (2e6..)
BETA_SCHEDULES = ("constant", "linear", "exponential")
GATES = ("scripted", "ensemble", "human")
SELECT = ("best", "last")


@dataclass
class DaggerConfig:
    env: str
    env_options: dict = field(default_factory=dict)
    policy: str = "bc"  # any supervised method in mimetic.algos.METHODS
    policy_options: dict = field(default_factory=dict)  # fields of that method's Config
    steps: int | None = None  # training steps per iteration; None: the method's default (its BC budget)
    warm_start: bool = True  # start each iteration from the previous weights (normalization refitted); False: from scratch
    select: str = "best"  # deploy the iteration with the best validation success (earliest on ties), or the last
    iterations: int = 5  # iterations after the initial one (iteration 0 trains on the initial data)
    episodes_per_iter: int = 10
    initial_data: str | None = None  # dataset of initial demonstrations (copied into RUN/data)
    initial_episodes: int = 10  # expert episodes for iteration 0 when initial_data is not given
    beta: str = "exponential"  # constant: beta0; linear: beta0 at iteration 1 -> 0 at the last; exponential: beta0**i
    beta0: float = 0.5
    gate: str | None = None  # None = DAgger; scripted | ensemble | human = HG-DAgger
    gate_metric: str = "action"  # scripted gate: action (|a_learner - a_expert|) | state (distance to the data)
    threshold: float = 0.3  # the gate fires above this
    release: float | None = None  # and hands back below this (default threshold / 2)
    ensemble_size: int = 3
    expert: str = "scripted"  # scripted | keyboard | gamepad (a human: the caller builds it, see run_dagger)
    eval_episodes: int = 20  # learner rollouts on validation seeds per iteration
    num_envs: int = 8
    seed: int = 0
    device: str = "auto"  # where the learners train and act: auto | cpu | cuda | mps (may change on --resume)

    def validate(self) -> None:
        from mimetic.devices import resolve_device

        resolve_device(self.device)  # one line if unavailable, before any episode is collected
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
        if self.select not in SELECT:
            raise MimeticError(f"--select must be one of {', '.join(SELECT)}, got {self.select!r}")
        if self.iterations < 0:
            raise MimeticError(f"--iterations must be at least 0, got {self.iterations}")
        if self.steps is not None and self.steps < 1:
            raise MimeticError(f"--steps must be positive, got {self.steps}")
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
    if cfg.beta == "linear":  # beta0 at iteration 1, 0 at the last (a single iteration keeps beta0)
        return cfg.beta0 * max(0.0, 1.0 - (iteration - 1) / max(1, cfg.iterations - 1))
    return cfg.beta0 ** iteration


# ------------------------------------------------------------------------------ actors and gates
class CheckedExpert:
    """Wraps an expert so that an exception, NaN or a wrong-sized action becomes a MimeticError."""

    def __init__(self, expert, act_dim: int, name: str):
        self.expert, self.act_dim, self.name = expert, act_dim, name

    def reset(self, num_envs: int = 1, seeds=None) -> None:
        reset_actor(self.expert, num_envs, seeds)

    def act(self, obs: np.ndarray) -> np.ndarray:
        try:
            a = self.expert.act(obs)
        except MimeticError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of user code is reported as the expert's
            raise MimeticError(f"{self.name} raised {type(e).__name__}: {e}") from None
        return check_action(a, batch_size(obs), self.act_dim, self.name)


class ActionGate:
    """Fires when |a_learner - a_expert| (Euclidean) exceeds `threshold`; hands back below `release`."""

    def __init__(self, threshold: float, release: float):
        self.threshold, self.release = threshold, release

    def reset(self, num_envs: int, seeds=None) -> None:
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
        q = torch.as_tensor((state_of(obs, "the state gate") - self.mean) / self.std)
        return torch.cdist(q, self.points).min(1).values.numpy()


class EnsembleGate(ActionGate):
    """Fires when an ensemble of learners disagrees: mean over action dims of the members' std."""

    def __init__(self, members: list, threshold: float, release: float):
        super().__init__(threshold, release)
        self.members = members

    def reset(self, num_envs: int, seeds=None) -> None:
        for m in self.members:
            reset_actor(m, num_envs, seeds)

    def score(self, obs, a_learner, a_expert) -> np.ndarray:
        acts = np.stack([a_learner] + [m.act(obs) for m in self.members])
        return acts.std(0).mean(1)


class HumanGate:
    """The human decides: control is the expert's while `source.takeover` is true (the teleop actor's toggle)."""

    def __init__(self, source):
        self.source = source

    def reset(self, num_envs: int, seeds=None) -> None:
        pass


class DaggerActor:
    """Runs learner and expert side by side, executes one of them and records the expert's label.

    Without a gate, the expert's action is executed with probability `beta` per step and env, drawn from a
    generator per episode seeded by (`rng`'s first draw, the episode's seed): an episode does not depend on the
    batch or the Ray shard it runs in. With a gate, the learner acts until the gate fires; the expert keeps
    control until it clears.
    `last_extras`: actor (0 learner / 1 expert), label (the expert's action), executed_action.
    """

    name = "dagger mixture"

    def __init__(self, learner, expert, *, beta: float = 0.0, gate=None, rng: np.random.Generator | None = None):
        self.learner, self.expert, self.beta, self.gate = learner, expert, beta, gate
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.entropy = int(self.rng.integers(2**63))  # with each episode's seed, seeds that episode's mixture draws
        self.reset(1)

    def reset(self, num_envs: int = 1, seeds=None) -> None:
        reset_actor(self.learner, num_envs, seeds)
        reset_actor(self.expert, num_envs, seeds)
        if self.gate is not None:
            self.gate.reset(num_envs, seeds)
        self.control = np.zeros(num_envs, bool)
        self.draws = [np.random.default_rng([self.entropy, int(s)]) for s in (range(num_envs) if seeds is None else seeds)]
        self.last_extras: dict[str, np.ndarray] = {}

    def act(self, obs) -> np.ndarray:
        n = batch_size(obs)
        if len(self.control) != n:
            self.reset(n)
        a_l = np.asarray(self.learner.act(obs), np.float32)
        a_e = self.expert.act(obs)
        if getattr(getattr(self.expert, "expert", self.expert), "quit", False):
            raise KeyboardInterrupt  # the human asked to stop: the run can be resumed
        if self.gate is None:
            expert = np.array([g.random() < self.beta for g in self.draws], bool)
        elif isinstance(self.gate, HumanGate):
            expert = np.full(n, bool(self.gate.source.takeover))
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
    return Episode(observations={k: v[sl] for k, v in ep.obs.items()}, actions=labels[sl], rewards=ep.rewards[sl],
                   successes=ep.successes[sl], terminated=ep.terminated if terminated is None else terminated,
                   task=ep.task, final_observation=ep.final_obs if terminated is None else None,
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
def scripted_expert(cfg: DaggerConfig, act_dim: int) -> CheckedExpert:
    """The environment's scripted expert (a human expert is built by the caller and passed to run_dagger)."""
    from mimetic.envs import make_expert

    return CheckedExpert(make_expert(cfg.env, **cfg.env_options), act_dim, f"expert of {cfg.env}")


def _method_config(cfg: DaggerConfig, member: int = 0):
    from mimetic.algos import method_module

    from mimetic.algos.trainer import TrainConfig, check_train_config

    module = method_module(cfg.policy)
    if not issubclass(module.Config, TrainConfig):
        raise MimeticError(f"--policy {cfg.policy}: not a supervised method (its Config is not a TrainConfig)")
    names = {f.name for f in dataclasses.fields(module.Config)}
    unknown = sorted(set(cfg.policy_options) - names)
    if unknown:
        raise MimeticError(f"--policy-option: {cfg.policy} has no option(s) {unknown}; known: {sorted(names)}")
    mc = module.Config(**{"device": cfg.device, **cfg.policy_options})  # --policy-option device=... wins
    if getattr(mc, "condition", "none") != "none":
        raise MimeticError(f"--policy-option condition={mc.condition}: DAgger learns one task, so its learner is "
                           "not task-conditioned (train a multi-task policy with mimetic train on a suite's demos)")
    if cfg.steps is not None:
        mc.steps = cfg.steps
    mc.seed = cfg.seed + member
    check_train_config(mc)  # before any episode is collected
    return module, mc


def heldout_split(ds: Dataset, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) episode indices, stable as the dataset grows.

    The initial (iteration-0) episodes are split as plain BC splits them; each later episode e is
    held out when a draw seeded by (seed, e) falls below `val_fraction`, so its fate never changes.
    """
    from mimetic.algos.trainer import split_episodes

    iteration = ds.extra("iteration")[ds.episode_starts]
    n0 = int(np.sum(iteration == 0))
    train0, val0 = split_episodes(n0, val_fraction, seed)
    later = np.arange(n0, ds.num_episodes)
    held = np.array([np.random.default_rng([seed, 1, int(e)]).random() < val_fraction for e in later], bool)
    return np.concatenate([train0, later[~held]]), np.concatenate([val0, later[held]])


def _train_iteration(cfg: DaggerConfig, ds: Dataset, run: Path, iteration: int, progress: bool) -> list:
    """Train the learner (and ensemble members) of `iteration` on all the data so far.

    Warm start: the previous iteration's deployed weights, with the normalization fitted afresh on
    this iteration's training episodes (the trainer's fresh-start path; a frozen normalizer would
    keep a min-max learner inside the first demonstrations' action range forever).
    """
    from mimetic.policies.base import load_policy

    members = cfg.ensemble_size if cfg.gate == "ensemble" else 1
    policies = []
    for k in range(members):
        module, mc = _method_config(cfg, k)
        out = _member_dir(run, iteration, k, members)
        resume = (out / "checkpoint/state.json").exists()  # an interrupted training of this iteration
        init = None
        if cfg.warm_start and iteration > 0 and not resume:
            init = load_policy(_member_dir(run, iteration - 1, k, members), device=mc.device).state_dict()
        policies.append(module.train(mc, ds, out, env=cfg.env, env_options=cfg.env_options, resume=resume,
                                     progress=progress, split=heldout_split(ds, mc.val_fraction, mc.seed),
                                     init_state=init))
    return policies


def deployed_iteration(rows: list[dict], select: str) -> int:
    """The iteration whose learner the run deploys: the best validation success (earliest on ties), or the last."""
    if select == "last":
        return rows[-1]["iteration"]
    best = max(r["val_success"] for r in rows)
    return next(r["iteration"] for r in rows if r["val_success"] == best)


def _member_dir(run: Path, iteration: int, k: int, members: int) -> Path:
    d = run / "iters" / f"{iteration:03d}"
    return d / f"m{k}" if members > 1 else d


def _load_learners(cfg: DaggerConfig, run: Path, iteration: int, device: str | None = None):
    """The learners of an iteration as actors, on `device` (default: the method's; the CPU for Ray workers)."""
    from mimetic.policies.base import PolicyActor, load_policy

    members = cfg.ensemble_size if cfg.gate == "ensemble" else 1
    device = device or _method_config(cfg)[1].device
    return [PolicyActor(load_policy(_member_dir(run, iteration, k, members), device=device)) for k in range(members)]


LEGACY_LOG, LEGACY_CONFIG = "dagger.jsonl", "dagger.json"  # runs written before the shared run-directory files


def read_log(run: str | Path) -> list[dict]:
    """The rows of the completed iterations (RUN/metrics.jsonl; dagger.jsonl for older runs)."""
    from mimetic.algos.run_dir import read_metrics

    legacy = Path(run) / LEGACY_LOG
    if legacy.exists() and not (Path(run) / "metrics.jsonl").exists():
        rows = []
        for line in legacy.read_text().splitlines():
            try:
                rows.append({"step": json.loads(line)["iteration"], **json.loads(line)})
            except json.JSONDecodeError:
                break  # a line cut by a kill: that iteration did not complete
        return rows
    return read_metrics(run)


def _write_log(run: Path, rows: list[dict]) -> None:
    from mimetic.algos.run_dir import METRICS
    from mimetic.data.io import atomic_write_bytes

    atomic_write_bytes(run / METRICS, "".join(json.dumps({"step": r["iteration"], **r}) + "\n" for r in rows).encode())


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


def _initial_episodes(cfg: DaggerConfig, obs_dim: int, act_dim: int, expert, backend=None) -> tuple[list[Episode], int]:
    """Iteration 0's expert episodes and the next demonstration seed."""
    if cfg.initial_data is None:
        eps = rollout(cfg.env, expert, range(cfg.initial_episodes), env_options=cfg.env_options,
                      num_envs=1 if cfg.expert != "scripted" else cfg.num_envs, task=cfg.env, backend=backend)
        return _expert_episodes(eps, 0), cfg.initial_episodes
    src = Dataset.load(cfg.initial_data)
    if src.env_name not in (None, cfg.env):
        raise MimeticError(f"--data {cfg.initial_data} was collected in {src.env_name!r}, not {cfg.env!r}")
    if (src.obs_dim, src.act_dim) != (obs_dim, act_dim):
        raise MimeticError(f"--data {cfg.initial_data} has observations of size {src.obs_dim} and actions of size "
                           f"{src.act_dim}, but environment {cfg.env!r} has {obs_dim} and {act_dim}")
    eps = [ep.replace(extras={}) for ep in src.episodes()]  # its own extra columns are dropped
    return _expert_episodes(eps, 0), int(src.info.get("mimetic", {}).get("next_seed", src.num_episodes))


def _config_path(run: Path) -> Path:
    legacy = run / LEGACY_CONFIG
    return legacy if legacy.exists() and not (run / "train.json").exists() else run / "train.json"


def is_dagger_run(run: str | Path) -> bool:
    path = _config_path(Path(run))
    if not path.is_file():
        return False
    saved = read_json(path, "DAgger run")
    return path.name == LEGACY_CONFIG or (isinstance(saved, dict) and saved.get("method") == "dagger")


def load_config(run: str | Path) -> DaggerConfig:
    """The configuration a DAgger run was started with (RUN/train.json; dagger.json for older runs)."""
    path = _config_path(Path(run))
    saved = read_json(path, "DAgger run")
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict) or \
            (path.name != LEGACY_CONFIG and saved.get("method") != "dagger"):
        raise MimeticError(f"{path}: not a DAgger run configuration")
    names = {f.name for f in dataclasses.fields(DaggerConfig)}
    unknown = sorted(set(saved["config"]) - names)
    if unknown:
        raise MimeticError(f"{path}: unknown fields {unknown}")
    return DaggerConfig(**saved["config"])


def check_processes(cfg: DaggerConfig, n: int | None = None) -> None:
    """One line for what cannot run as `n` processes (default this job's WORLD_SIZE): a human expert labels at one
    machine, so HG-DAgger with a human runs in one process."""
    from mimetic import distributed as dist

    n = dist.world_size() if n is None else n
    if n > 1 and cfg.expert != "scripted":
        raise dist.everywhere(MimeticError(
            f"dagger --expert {cfg.expert}: a human at this machine labels the rollouts, so it runs in one process; "
            f"leave out torchrun / --nproc (this job has {n} processes), or use --expert scripted"))


def learner_config(cfg: DaggerConfig, member: int = 0):
    """The Config of the method that trains the learner (device, batch size, steps, seed) for ensemble member `member`."""
    return _method_config(cfg, member)[1]


def run_dagger(cfg: DaggerConfig, run: str | Path, *, resume: bool = False, progress: bool = True,
               expert=None, takeover=None, backend=None) -> list[dict]:
    """Run (or resume) DAgger / HG-DAgger into `run`; returns the per-iteration log rows.

    `expert`: the actor whose actions label every step (`reset(num_envs)`, `act(obs)`); None: the
    environment's scripted expert. A human expert (`cfg.expert` keyboard or gamepad) must be passed
    in (the CLI builds a mimetic.teleop.TeleopActor). `takeover`: for `gate="human"`, the object whose
    `takeover` attribute is true while the human holds control (default: the expert itself). An
    expert with a true `quit` attribute stops the run (resumable). `backend`: a `mimetic.shards.RayBackend` runs
    the rollouts and validation episodes as Ray tasks (learners act on the workers' CPUs; training and every write
    stay here); the run is the same.

    Under torchrun / `--nproc` (WORLD_SIZE > 1, `mimetic.distributed`): rank 0 alone collects (rollouts, expert
    labels, the dataset append), validates and writes the run folder (`backend` matters on rank 0 only) while the
    others wait; then every rank loads the dataset rank 0 committed and trains the iteration's learner with DDP
    (the global batch shared out, the warm start read from the same file), so every rank ends each iteration with
    the same weights. The run folder must be on a filesystem every rank reads.
    """
    from mimetic import distributed as dist

    run = Path(run)
    try:  # read only, on every rank alike (before any rank writes: joining the process group waits for all)
        cfg, expert, takeover, sizes = _prepare(cfg, run, resume, expert, takeover)
    except MimeticError as e:
        raise dist.everywhere(e) from None  # under torchrun, rank 0 alone prints it
    if dist.world_size() > 1:
        from mimetic.devices import resolve_device

        dist.init(dist.rank_device(resolve_device(learner_config(cfg).device)))
    num_envs = 1 if cfg.expert != "scripted" else cfg.num_envs
    data_dir = run / "data"

    def start() -> list[dict]:
        if not resume:
            run.mkdir(parents=True, exist_ok=True)
            RunDir(run, "DAgger run").write_info({"method": "dagger", "config": dataclasses.asdict(cfg), "env": cfg.env,
                                                  "env_options": cfg.env_options, "dataset": str((run / "data").resolve())})
        rows = read_log(run)
        if not (data_dir / "meta/info.json").exists():
            eps, next_seed = _initial_episodes(cfg, sizes.obs_dim, sizes.act_dim, expert, backend)
            if not eps:
                raise MimeticError(f"--data {cfg.initial_data} has no episodes")
            Dataset.create(data_dir, eps, env=cfg.env, env_options=cfg.env_options, fps=sizes.fps,
                           meta={"next_seed": next_seed, "dagger_iteration": 0})
        return rows

    rows = dist.on_main(start)  # rank 0 writes; every rank gets the completed iterations (or rank 0's error)
    ds = Dataset.load(data_dir)

    for it in range(len(rows), cfg.iterations + 1):
        t0 = time.perf_counter()
        row: dict = {"step": it, "iteration": it}  # step: the run-directory convention's key
        if it > 0 and int(ds.info["mimetic"].get("dagger_iteration", 0)) < it:
            row.update(dist.on_main(lambda: _collect(cfg, ds, run, it, expert, takeover, num_envs, progress, backend)))
            if not dist.is_main():
                ds = Dataset.load(data_dir)  # what rank 0 just committed
        policies = _train_iteration(cfg, ds, run, it, progress)  # every rank (DDP under torchrun)
        rows.append(dist.on_main(lambda: _finish_iteration(cfg, ds, run, rows, row, policies, backend, t0)))
    return rows


def _prepare(cfg: DaggerConfig, run: Path, resume: bool, expert, takeover):
    """Check the run folder, the configuration, the environment and the expert before any work; reads only."""
    from mimetic.envs.spaces import env_sizes

    if resume:  # the saved configuration, on the device this call asks for
        cfg = dataclasses.replace(load_config(run), device=cfg.device)
    elif is_dagger_run(run):
        raise MimeticError(f"{run} already holds a DAgger run: pass --resume to continue it, or choose another --out")
    elif run.exists() and (run.is_file() or any(run.iterdir())):
        raise MimeticError(f"{run} exists and is not empty: choose another --out")
    cfg.validate()
    check_processes(cfg)
    _method_config(cfg)  # fail early on an unknown method or option
    sizes = env_sizes(cfg.env, cfg.env_options)
    sizes.require_continuous("dagger", cfg.env)
    human = cfg.expert != "scripted"
    if expert is None:
        if human:
            raise MimeticError(f"dagger: --expert {cfg.expert} is a human: the caller must build it and pass it in "
                               "(`mimetic dagger` does)")
        expert = scripted_expert(cfg, sizes.act_dim)
    elif not isinstance(expert, CheckedExpert):
        who = f"human expert ({cfg.expert})" if human else f"expert of {cfg.env}"
        expert = CheckedExpert(expert, sizes.act_dim, who)
    if cfg.gate == "human":
        takeover = takeover if takeover is not None else expert.expert
        if not hasattr(takeover, "takeover"):
            raise MimeticError("dagger: --gate human needs an expert (or takeover source) with a `takeover` toggle")
    return cfg, expert, takeover, sizes


def _collect(cfg: DaggerConfig, ds: Dataset, run: Path, it: int, expert, takeover, num_envs: int, progress: bool,
             backend) -> dict:
    """Iteration `it`'s rollouts of the mixture, labelled by the expert and appended to `ds` in one atomic commit;
    returns the row's rollout fields."""
    learners = _load_learners(cfg, run, it - 1, device="cpu" if backend is not None else None)
    gate = _make_gate(cfg, ds, learners, takeover)
    beta = beta_at(cfg, it) if cfg.gate is None else 0.0
    actor = DaggerActor(learners[0], expert, beta=beta, gate=gate, rng=np.random.default_rng([cfg.seed, it]))
    seeds = range(ROLLOUT_SEED + (it - 1) * cfg.episodes_per_iter, ROLLOUT_SEED + it * cfg.episodes_per_iter)
    eps = rollout(cfg.env, actor, seeds, env_options=cfg.env_options, num_envs=num_envs, task=cfg.env,
                  progress=progress, desc=f"dagger iteration {it}", backend=backend)
    new = label_episodes(eps, it, takeover_only=cfg.gate is not None)
    ds.append(new, meta={"dagger_iteration": it})  # atomic: these episodes and the iteration number
    return dict(beta=beta, rollout_frames=int(sum(len(e) for e in eps)), rollout_success=float(np.mean([e.success for e in eps])),
                rollout_expert_fraction=float(np.mean(np.concatenate([e.extras["actor"] for e in eps]))),
                new_labels=int(sum(len(e) for e in new)))


def _finish_iteration(cfg: DaggerConfig, ds: Dataset, run: Path, rows: list[dict], row: dict, policies: list, backend,
                      t0: float) -> dict:
    """Validate the iteration's learner, deploy the selected iteration and commit the iteration's row; returns it."""
    from mimetic.algos.trainer import resolve_for_dataset
    from mimetic.evaluate import VAL_SEED, evaluate
    from mimetic.policies.base import PolicyActor, load_policy, save_policy

    it = row["iteration"]
    res = evaluate(PolicyActor(policies[0]), cfg.env, cfg.eval_episodes, seed=VAL_SEED, env_options=cfg.env_options,
                   num_envs=cfg.num_envs, backend=backend)
    it_frames = int(np.sum(ds.extra("iteration") == it))
    row = dict(row)
    row.setdefault("new_labels", it_frames)
    row.update(val_success=res.success_rate, val_ci95=list(res.ci95), val_return=res.mean_return,
               dataset_episodes=ds.num_episodes, dataset_frames=ds.num_frames,
               expert_labels=ds.num_frames, train_steps=resolve_for_dataset(_method_config(cfg)[1], ds).steps,
               time_s=round(time.perf_counter() - t0, 2))
    done = [*rows, row]
    row["deployed_iteration"] = best = deployed_iteration(done, cfg.select)
    save_policy(policies[0] if best == it else load_policy(_member_dir(run, best, 0, len(policies))), run)
    _write_log(run, done)  # the commit point of the iteration
    RunDir(run, "dagger run").send_to_sinks({"step": it, **row})  # --log-to
    plot_log(done, run / "dagger.png", title=f"{'HG-DAgger' if cfg.gate else 'DAgger'} on {cfg.env}")
    return row


def _make_gate(cfg: DaggerConfig, ds: Dataset, learners: list, takeover):
    if cfg.gate is None:
        return None
    release = cfg.release if cfg.release is not None else cfg.threshold / 2
    if cfg.gate == "human":
        return HumanGate(takeover)
    if cfg.gate == "ensemble":
        return EnsembleGate(learners[1:], cfg.threshold, release)
    if cfg.gate_metric == "state":
        return StateGate(ds.observations, cfg.threshold, release, seed=cfg.seed)
    return ActionGate(cfg.threshold, release)
