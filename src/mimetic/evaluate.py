"""Honest evaluation: success rate with a 95% Wilson interval, returns, lengths, on paired seeds.

The mean return is reported as comparable only where the task says it compares policies
(`mimetic.envs.spaces.return_meaning`): on Meta-World, whose episodes end at the first success,
a faster success earns less, so `return_comparable` is False there and tables show no return.

Evaluation seeds start at `EVAL_SEED` by default, far from the seeds demonstrations are collected
with (0, 1, 2, ...), so a policy is never tested on the initial states it was trained on. The
same seed gives every policy the same initial states.

A suite of tasks (`mimetic.envs.suites`) is evaluated task by task on the same seeds (`evaluate_suite`); its
success rate is the mean over tasks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from mimetic.actors import Actor
from mimetic.errors import MimeticError
from mimetic.shards import RayBackend, Rollouts

EVAL_SEED = 1_000_000
VAL_SEED = 2_000_000  # for periodic rollouts during training (checkpoint selection), disjoint from both


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class EvalResult:
    success_rate: float
    ci95: tuple[float, float]
    mean_return: float
    std_return: float
    mean_length: float
    episodes: int
    seed: int
    env: str = ""
    return_comparable: bool = True  # does mean_return compare policies on this task (see return_meaning)
    return_note: str = ""  # why, in a few words: "fixed 500-step episodes", "episodes end at the first success, ..."
    successes: list[bool] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        return d


def describe_return(mean_return: float, comparable: bool, note: str) -> str:
    """'return -9.37 (what it is)', or 'return not comparable (why)' where the task's return does not compare policies."""
    why = f" ({note})" if note else ""
    return f"return {mean_return:.2f}{why}" if comparable else f"return not comparable{why}"


def summarize(episodes, seed: int = 0, env: str = "", return_meaning: tuple[bool, str] = (True, "")) -> EvalResult:
    succ = [ep.success for ep in episodes]
    rets = [ep.ret for ep in episodes]
    lens = [len(ep) for ep in episodes]
    n = len(episodes)
    return EvalResult(
        success_rate=float(np.mean(succ)) if n else 0.0,
        ci95=wilson_interval(int(sum(succ)), n),
        mean_return=float(np.mean(rets)) if n else 0.0,
        std_return=float(np.std(rets)) if n else 0.0,
        mean_length=float(np.mean(lens)) if n else 0.0,
        episodes=n,
        seed=seed,
        env=env,
        return_comparable=bool(return_meaning[0]),
        return_note=str(return_meaning[1]),
        successes=[bool(s) for s in succ],
        returns=[float(r) for r in rets],
        lengths=[int(x) for x in lens],
    )


def evaluate(
    actor: Actor,
    env: str,
    episodes: int = 100,
    seed: int = EVAL_SEED,
    *,
    env_options: dict | None = None,
    num_envs: int = 16,
    progress: bool = False,
    workers: int | None = None,
    backend: RayBackend | None = None,
) -> EvalResult:
    """Run `episodes` episodes on seeds seed, seed+1, ... and summarize them.

    `workers`: processes the environments run in (see `mimetic.rollout.rollout`); `backend`: a
    `mimetic.shards.RayBackend` runs the episodes as Ray tasks instead. The result depends on neither."""
    if episodes < 1:
        raise MimeticError(f"--episodes must be at least 1, got {episodes}")
    with Rollouts(env, actor, num_envs=min(num_envs, episodes), env_options=env_options, workers=workers,
                  backend=backend) as runs:
        eps = runs.episodes(range(seed, seed + episodes), progress=progress, desc=f"eval {env}")
        return summarize(eps, seed=seed, env=env, return_meaning=runs.info.return_meaning)


@dataclass
class SuiteResult:
    """The evaluation of a suite: one EvalResult per task (the same seeds for every task).

    `success_rate` is the mean of the tasks' success rates. `ci95` is the 95% Wilson interval of all the suite's
    episodes pooled (every task has the same number of episodes, so the pooled rate is that mean): it covers the
    evaluation episodes' noise, treating the tasks as one sample, and says nothing about how tasks differ."""

    env: str
    success_rate: float
    ci95: tuple[float, float]
    episodes: int  # per task
    seed: int
    tasks: dict[str, EvalResult]
    instructions: dict[str, str]  # task name -> its instruction

    def to_json(self) -> dict:
        return {"env": self.env, "success_rate": self.success_rate, "ci95": list(self.ci95), "episodes": self.episodes,
                "seed": self.seed,
                "tasks": {name: {**r.to_json(), "instruction": self.instructions[name]} for name, r in self.tasks.items()}}


def evaluate_suite(make_actor: Callable, suite: str, episodes: int = 100, seed: int = EVAL_SEED, *,
                   env_options: dict | None = None, num_envs: int = 16, progress: bool = False,
                   workers: int | None = None, backend: RayBackend | None = None, tasks=None) -> SuiteResult:
    """Evaluate every task of `suite` (a suite name, or a comma-separated list; see `mimetic.envs.suites`) on seeds
    seed, seed+1, ...: `make_actor(task: SuiteTask) -> Actor` builds the actor of one task, which runs in its env
    with `env_options` plus the options the task fixes. `tasks`: the SuiteTasks to evaluate (default: all)."""
    from mimetic.envs.suites import suite_tasks

    members = suite_tasks(suite) if tasks is None else list(tasks)
    if members is None:
        raise MimeticError(f"{suite!r} is one task, not a suite: evaluate it with evaluate()")
    if episodes < 1:
        raise MimeticError(f"--episodes must be at least 1, got {episodes}")
    results: dict[str, EvalResult] = {}
    for t in members:
        results[t.name] = evaluate(make_actor(t), t.env, episodes, seed, env_options={**(env_options or {}), **t.options},
                                   num_envs=num_envs, progress=progress, workers=workers, backend=backend)
    wins = sum(sum(r.successes) for r in results.values())
    return SuiteResult(env=suite, success_rate=float(np.mean([r.success_rate for r in results.values()])),
                       ci95=wilson_interval(int(wins), episodes * len(members)), episodes=episodes, seed=seed,
                       tasks=results, instructions={t.name: t.instruction for t in members})


def task_demos(data, instructions, seed: int = 0) -> dict:
    """One demonstration per instruction: an episode of the dataset `data` (a path or a Dataset) whose task string is
    that instruction, drawn with a generator seeded by `seed`; instruction -> Episode. A task with no episode in
    the dataset is a MimeticError."""
    from mimetic.data.dataset import Dataset

    ds = data if isinstance(data, Dataset) else Dataset.load(data)
    # each episode's task string: tasks[task_index of its first frame]
    episode_tasks = [ds.tasks[int(i)] if ds.tasks else "" for i in ds.task_index[ds.episode_starts]]
    rng = np.random.default_rng(seed)
    out = {}
    for text in instructions:
        candidates = [i for i, t in enumerate(episode_tasks) if t == text]
        if not candidates:
            raise MimeticError(f"--demo {ds.root}: no demonstration of the task {text!r} (the dataset's tasks: "
                               f"{', '.join(repr(t) for t in ds.tasks) or 'none'})")
        out[text] = ds.episode(int(rng.choice(candidates)))
    return out


def format_suite_table(res: dict) -> str:
    """The per-task table of a suite evaluation (SuiteResult.to_json()) and its mean, as aligned text."""
    rows = [(name, r["instruction"], f"{r['success_rate']:.3f}", f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]")
            for name, r in res["tasks"].items()]
    rows.append(("mean", f"over {len(res['tasks'])} tasks", f"{res['success_rate']:.3f}",
                 f"[{res['ci95'][0]:.3f}, {res['ci95'][1]:.3f}] (Wilson, pooled episodes)"))
    header = ("task", "instruction", "success", "95% CI")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in [header, *rows])
