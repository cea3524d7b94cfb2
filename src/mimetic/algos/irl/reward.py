"""A learned reward on disk, and what a run is used for: the reward in a (possibly changed) world,
and the policy it implies as an actor (`mimetic eval RUN`).

A run folder follows `mimetic.algos.run_dir` and holds
    reward.safetensors   weights (F,), reward (S,) [, tabular (S,)], and in its metadata the run's
                         record (method, config, env, env_options, ...): one file, so the tensors
                         and what they mean are written in one atomic rename
    train.json           the same record, for `--resume`, `report` and `shift` (written after it)
    metrics.jsonl        one row per Adam step: {"step", "max_grad"}
There is no checkpoint (the fit takes seconds). No pickle anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mimetic.errors import MimeticError

from mimetic.algos.run_dir import INFO as TRAIN_FILE, RunDir

REWARD_FILE = "reward.safetensors"
LEGACY_CONFIG_FILE = "config.json"  # runs written before train.json
FORMAT = "mimetic-maxent-irl"
METHOD = "maxent-irl"


def save_run(run_dir: str | Path, tensors: dict[str, np.ndarray], info: dict, max_grads: list[float]) -> None:
    """Write metrics.jsonl (max |gradient| per step), the reward tensors with `info` (the run's record)
    atomically, then train.json."""
    from safetensors.numpy import save

    from mimetic.data.io import atomic_write_bytes

    run = RunDir(run_dir, "maxent-irl run", method=METHOD)
    run.start(resume=False)
    for step, g in enumerate(max_grads, start=1):
        run.append_metrics({"step": step, "max_grad": float(g)})
    tensors = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}
    atomic_write_bytes(run.path / REWARD_FILE, save(tensors, metadata={"format": FORMAT, "run": json.dumps(info)}))
    run.write_info(info)


def is_irl_run(run_dir: str | Path) -> bool:
    """Whether `run_dir` holds a maxent-irl run (reads no tensors)."""
    run = Path(run_dir)
    for name in (TRAIN_FILE, LEGACY_CONFIG_FILE):
        try:
            return json.loads((run / name).read_text()).get("method") == METHOD
        except (OSError, ValueError, AttributeError):
            continue
    return False


@dataclass
class LearnedReward:
    """A learned reward loaded from a run folder."""

    weights: np.ndarray  # (F,)
    reward: np.ndarray  # (S,) in the training world
    tabular: np.ndarray | None
    env_name: str
    env_options: dict
    config: dict  # the run's record (train.json)
    run_dir: Path | None = None

    @property
    def gamma(self) -> float:
        """The discount of the learner's soft value iteration (the IRL model of the demonstrator)."""
        irl = self.config.get("config") or self.config.get("irl") or {}
        return float(irl.get("gamma", 0.9))

    @property
    def seed(self) -> int:
        irl = self.config.get("config") or self.config.get("irl") or {}
        return int(irl.get("seed", 0))

    def resolve(self, env: str | None = None, env_options: dict | None = None) -> tuple[str, dict]:
        """(env name, options) meant by `env` / `env_options`: each defaults to the run's (the run's
        options apply only to the run's env)."""
        name = self.env_name if env is None else env
        if env_options is not None:
            return name, dict(env_options)
        return name, dict(self.env_options) if name == self.env_name else {}

    def world(self, env: str | None = None, env_options: dict | None = None):
        """The tabular environment to use this reward in: the run's own (default), the run's env with
        other options, or another env whose features match the learned weights. One-line error else."""
        from mimetic.algos.irl.demos import tabular_env

        name, options = self.resolve(env, env_options)
        where = f"run {self.run_dir}" if self.run_dir is not None else "the learned reward"
        try:
            world = tabular_env(name, options)
        except MimeticError as e:
            if name == self.env_name:
                raise
            raise MimeticError(f"{where} learned a reward on {self.env_name!r}; {name!r} cannot use it ({e}); "
                               f"leave out --env, or change the world with --env-option") from None
        n = np.asarray(world.features).shape[1]
        if n != len(self.weights):
            raise MimeticError(f"{where} learned {len(self.weights)} feature weights on {self.env_name!r}, but {name!r} "
                               f"{options or ''} has {n} features; leave out --env, or change the world with --env-option")
        return world

    def in_world(self, env) -> np.ndarray:
        """The reward (S,) in a (possibly changed) world: features @ weights, plus the tabular term
        only if the world is the training world."""
        features = np.asarray(env.features, dtype=np.float64)
        if features.shape[1] != len(self.weights):
            raise MimeticError(f"learned reward has {len(self.weights)} feature weights but this world has {features.shape[1]} features")
        r = features @ self.weights
        if self.tabular is not None and len(self.tabular) == len(r) and np.allclose(features, self._train_features()):
            r = r + self.tabular
        return r

    def _train_features(self) -> np.ndarray:
        from mimetic.envs import make_env

        return np.asarray(make_env(self.env_name, **self.env_options).features)


def load_reward(run_dir: str | Path) -> LearnedReward:
    """Load a reward saved by `train_maxent_irl` (checks the run's method and tensors; no pickle)."""
    from safetensors import SafetensorError, safe_open

    from mimetic.data.io import read_json

    run_dir = Path(run_dir)
    path = run_dir / REWARD_FILE
    record = run_dir / TRAIN_FILE if (run_dir / TRAIN_FILE).is_file() else run_dir / LEGACY_CONFIG_FILE
    if not path.is_file():
        cfg = read_json(record, "maxent-irl run")  # says "not found" for a folder that is no run at all
        if cfg.get("method") != METHOD:
            raise MimeticError(f"{record}: not a maxent-irl run (method={cfg.get('method')!r})")
        raise MimeticError(f"learned reward {path} not found")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, ValueError, OSError) as e:
        raise MimeticError(f"{path} is not a readable safetensors file: {e}") from None
    if "run" in meta:
        try:
            cfg = json.loads(meta["run"])
        except ValueError:
            raise MimeticError(f"{path}: its run record (metadata 'run') is not JSON") from None
    else:
        cfg = read_json(record, "maxent-irl run")
    if cfg.get("method") != METHOD:
        raise MimeticError(f"{run_dir}: not a maxent-irl run (method={cfg.get('method')!r})")
    for key in ("weights", "reward"):
        if key not in tensors:
            raise MimeticError(f"{path}: missing tensor {key!r}")
    return LearnedReward(
        weights=tensors["weights"],
        reward=tensors["reward"],
        tabular=tensors.get("tabular"),
        env_name=cfg["env"],
        env_options=dict(cfg.get("env_options") or {}),
        config=cfg,
        run_dir=run_dir,
    )


def policy_actor(run_dir: str | Path, env: str | None = None, env_options: dict | None = None, seed: int | None = None):
    """The policy a maxent-irl run stands for, as a batched actor: the soft-optimal policy under the
    learned reward (discounted soft value iteration with the run's gamma, temperature 1: the IRL model
    of the demonstrator), planned in the run's world or in `env` / `env_options` (see
    `LearnedReward.world`). It samples actions with its own Generator seeded by `seed` (default: the
    run's seed), one per episode (see `SoftPolicy`)."""
    from mimetic.tabular import soft_value_iteration

    learned = load_reward(run_dir)
    world = learned.world(env, env_options)
    policy = soft_value_iteration(world.transition_matrix, learned.in_world(world), gamma=learned.gamma)
    return SoftPolicy(getattr(world, "world", world), policy, seed=learned.seed if seed is None else seed)


class SoftPolicy:
    """Batched actor sampling from a tabular stochastic policy (S, A). Episode i samples from a Generator
    seeded by (seed, seeds[i]), the episodes' seeds `reset` gets from rollout, so an evaluation does not
    depend on --num-envs or on the batch an episode runs in; without seeds, from one Generator of `seed`."""

    def __init__(self, world, policy: np.ndarray, seed: int = 0):
        self.world, self.seed = world, int(seed)
        self.cdf = np.cumsum(np.asarray(policy, dtype=np.float64), axis=1)
        self.rng = np.random.default_rng(self.seed)
        self.rngs: list | None = None

    def reset(self, num_envs: int = 1, seeds=None) -> None:
        self.rngs = None if seeds is None else [np.random.default_rng([self.seed, int(s)]) for s in seeds]

    def act(self, obs: np.ndarray) -> np.ndarray:
        s = self.world.state_index(np.atleast_2d(obs), where="maxent-irl policy")
        if self.rngs is not None and len(self.rngs) == len(s):
            u = np.array([r.random() for r in self.rngs])[:, None]
        else:
            u = self.rng.random(len(s))[:, None]
        return (u > self.cdf[s]).sum(axis=1).clip(0, self.cdf.shape[1] - 1).astype(np.float32)[:, None]
