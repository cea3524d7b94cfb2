"""`mimetic compare ENV --methods bc,... --data DIR --seeds 0,1,2`: several methods trained on the
same demonstrations with the same training seeds, evaluated on the same evaluation seeds (paired).

Methods are looked up in `mimetic.algos.METHODS` (any module with a `Config` dataclass and
`train(cfg, dataset, run_dir, ...)` that leaves a policy checkpoint in its run directory).

```
OUT/runs/<method>-seed<s>/   each training run (+ eval.json: its evaluation on the shared seeds)
OUT/compare.json, compare.md the table: success per training seed, mean ± std and a 95% t-interval over
                             seeds, pooled success with a Wilson CI (evaluation noise only); paired tests
                             between methods; mean return where the task says it compares policies
OUT/success.png, curves.png  bar chart (mean over seeds, t-interval, one dot per seed); learning curves
```

On a suite (`metaworld/MT10`, `reach-corners`, ...; see `mimetic.envs.suites`) every run is evaluated on each
task (`evaluate_suite`): a run's success is the mean over tasks, and the tables add one row per task.

Training seeds, not episodes, are the unit of replication: a Wilson interval pooled over seeds x
episodes treats every episode as independent and ignores how much runs differ, so the headline
interval is the t-interval over seeds, and methods are compared pairwise on the same seeds (the
per-seed difference with its t-interval, and McNemar's exact test on paired episodes; see
`mimetic.analysis.stats`).

Re-running the same command reuses finished runs (and resumes killed ones), so a long comparison
survives interruptions.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from mimetic.data.io import atomic_write_bytes, atomic_write_json, read_json
from mimetic.errors import MimeticError

CURVE_KEYS = ("train_loss", "val_loss", "val_success")


def _method_config(name: str, seed: int, steps: int | None, options: dict | None = None, device: str | None = None):
    from mimetic.algos import method_module

    module = method_module(name)
    if not (hasattr(module, "Config") and dataclasses.is_dataclass(module.Config) and hasattr(module, "train")):
        raise MimeticError(f"method {name!r} has no Config dataclass and train() function; compare cannot run it")
    names = {f.name for f in dataclasses.fields(module.Config)}
    if "seed" not in names:
        raise MimeticError(f"method {name!r}: its Config has no seed field, so training seeds cannot be compared")
    cfg = module.Config()
    cfg.seed = seed
    if steps is not None:
        if "steps" not in names:
            raise MimeticError(f"method {name!r}: its Config has no steps field, but --steps was given")
        cfg.steps = steps
    for key, value in (options or {}).items():
        if key not in names:
            raise MimeticError(f"method {name!r}: its Config has no field {key!r} (given by --option)")
        setattr(cfg, key, value)
    if device is not None and "device" in names:  # methods without a device field (tabular IRL) run where they run
        cfg.device = device
    return module, cfg


def _same_training(trained: dict, cfg) -> bool:
    """Whether a finished run's saved config is this comparison's: every field but the device it ran on."""
    want = json.loads(json.dumps(dataclasses.asdict(cfg)))
    return {k: v for k, v in trained.items() if k != "device"} == {k: v for k, v in want.items() if k != "device"}


def supervised_methods() -> list[str]:
    """Every registered method whose Config extends the offline trainer's TrainConfig (what `--methods all` runs)."""
    from mimetic.algos import METHODS, method_module
    from mimetic.algos.trainer import TrainConfig

    out = []
    for name in METHODS:
        cfg = getattr(method_module(name), "Config", None)
        if isinstance(cfg, type) and issubclass(cfg, TrainConfig):
            out.append(name)
    return out


def run_one(method: str, seed: int, dataset, run_dir: Path, env: str, env_options: dict, episodes: int,
            steps: int | None, progress: bool, options: dict | None = None, device: str | None = None,
            backend=None) -> dict:
    """Train (or reuse / resume) one run and evaluate its final checkpoint on EVAL_SEED.. ; returns the eval JSON.
    `device`: where it trains and acts (None: each method's default, auto); a finished run is reused from any device.
    `backend`: a `mimetic.shards.RayBackend` evaluates on Ray (the same result)."""
    from mimetic.algos.irl import is_irl_run, policy_actor
    from mimetic.algos.trainer import resolve_for_dataset
    from mimetic.envs.suites import suite_tasks
    from mimetic.evaluate import EVAL_SEED, evaluate
    from mimetic.policies.base import PolicyActor, check_compatible, load_policy

    module, cfg = _method_config(method, seed, steps, options, device)
    cfg = resolve_for_dataset(cfg, dataset)  # the batch size and steps of a policy that reads cameras, if it does
    if (run_dir / "train.json").exists():
        trained = read_json(run_dir / "train.json", "training run").get("config")
        if not isinstance(trained, dict) or not _same_training(trained, cfg):
            raise MimeticError(f"{run_dir} was trained with another config than this comparison asks for; "
                               "choose another --out")
    eval_path = run_dir / "eval.json"
    if eval_path.exists():
        saved = read_json(eval_path, "evaluation")
        # reused only if evaluated the same way: episodes, seeds, env and env options (an eval.json without
        # env_options predates recording them, so it is evaluated again)
        if (saved.get("episodes") == episodes and saved.get("seed") == EVAL_SEED and saved.get("env") == env
                and "env_options" in saved and saved["env_options"] == json.loads(json.dumps(env_options or {}))
                and "return_comparable" in saved
                and len(saved.get("successes", [])) == episodes * len(suite_tasks(env) or [env])):
            return saved
    resume = (run_dir / "checkpoint" / "state.json").exists()
    module.train(cfg, dataset, run_dir, env=env, env_options=env_options, resume=resume, progress=progress)
    tasks = suite_tasks(env)
    if (run_dir / "config.json").exists():
        policy = load_policy(run_dir, device=device)
        check_compatible(policy, dataset.obs_dim, dataset.act_dim, str(run_dir))
        actor = PolicyActor(policy) if tasks is None else None
    elif is_irl_run(run_dir) and tasks is None:  # as `mimetic eval RUN`: the soft-optimal policy under the learned reward
        actor = policy_actor(run_dir, env, env_options)
    elif is_irl_run(run_dir):
        raise MimeticError(f"method {method!r} plans in one tabular task; compare cannot evaluate it on the suite {env}")
    else:
        raise MimeticError(f"method {method!r} left no policy checkpoint in {run_dir}; compare needs one to evaluate")
    if tasks is None:
        res = evaluate(actor, env, episodes, EVAL_SEED, env_options=env_options, progress=progress, backend=backend).to_json()
    else:
        res = suite_eval_json(policy, dataset, env, episodes, env_options, progress, backend)
    res.update(policy=str(run_dir), method=method, train_seed=seed, env_options=dict(env_options or {}))
    atomic_write_json(eval_path, res)
    return res


def suite_eval_json(policy, dataset, suite: str, episodes: int, env_options: dict | None, progress: bool,
                    backend=None) -> dict:
    """`policy` on every task of `suite` (`evaluate_suite`, EVAL_SEED..), as compare's eval JSON: the suite's result
    (success_rate: the mean over tasks; `tasks`: each task's) plus `successes` of all tasks in suite order (the
    paired tests pair them) and the mean return. A task-conditioned policy is told each task's instruction; a
    demo-conditioned one gets a demonstration of the task from `dataset` (its episodes use other seeds)."""
    from mimetic.envs.suites import suite_tasks
    from mimetic.evaluate import EVAL_SEED, evaluate_suite, task_demos
    from mimetic.policies.base import PolicyActor

    condition = getattr(policy.config, "condition", "none")
    tasks = suite_tasks(suite)
    demos = task_demos(dataset, [t.instruction for t in tasks], EVAL_SEED) if condition == "demo" else {}

    def make_actor(t):  # a policy without conditioning (the one-task baseline) ignores the task
        return PolicyActor(policy, task=t.instruction, demo=demos.get(t.instruction))

    res = evaluate_suite(make_actor, suite, episodes, EVAL_SEED, env_options=env_options, progress=progress,
                         backend=backend)
    out = res.to_json()
    per_task = list(res.tasks.values())
    out.update(successes=[s for r in per_task for s in r.successes], mean_return=float(np.mean([r.mean_return for r in per_task])),
               return_comparable=all(r.return_comparable for r in per_task), return_note=per_task[0].return_note)
    return out


def summarize_method(method: str, results: list[dict]) -> dict:
    """One method's row: per-seed success, mean, std and t-interval over seeds, pooled Wilson interval."""
    from mimetic.analysis.stats import t_interval
    from mimetic.evaluate import wilson_interval

    rates = np.array([r["success_rate"] for r in results], float)
    succ = sum(int(sum(r["successes"])) if "successes" in r else int(round(r["success_rate"] * r["episodes"]))
               for r in results)
    n = sum(len(r["successes"]) if "successes" in r else r["episodes"] for r in results)
    ci_seeds = t_interval(rates)
    row_tasks = {}
    if results and "tasks" in results[0]:  # a suite: each task's success per seed and mean over seeds
        for name, t in results[0]["tasks"].items():
            per_seed = [float(r["tasks"][name]["success_rate"]) for r in results]
            row_tasks[name] = {"instruction": t.get("instruction", ""), "success_per_seed": per_seed,
                               "success_mean": float(np.mean(per_seed))}
    return {
        "method": method,
        "seeds": [r.get("train_seed") for r in results],
        "success_per_seed": rates.tolist(),
        "success_mean": float(rates.mean()),
        "success_std": float(rates.std(ddof=1)) if len(rates) > 1 else 0.0,
        "ci95_seeds": list(ci_seeds) if ci_seeds else None,  # t-interval over training seeds (None: one seed)
        "success_pooled": succ / n if n else 0.0,
        "ci95_pooled": list(wilson_interval(succ, n)),  # seeds x episodes as one sample: evaluation noise only
        "episodes_total": n,
        "mean_return": float(np.mean([r["mean_return"] for r in results])),
        "return_comparable": all(r.get("return_comparable", True) for r in results),
        "return_note": results[0].get("return_note", "") if results else "",
        "runs": [r.get("policy") for r in results],
        **({"tasks": row_tasks} if row_tasks else {}),
    }


def paired_tests(methods: Sequence[str], evals: dict[str, list[dict]]) -> list[dict]:
    """Every pair of methods on the same training seeds and evaluation episodes: the per-seed success
    difference (first minus second) with its t-interval over seeds, and McNemar's exact test on the
    paired episodes pooled over seeds."""
    from mimetic.analysis.stats import mcnemar_exact, paired_seed_difference

    out = []
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            ea, eb = evals[a], evals[b]
            if [len(r["successes"]) for r in ea] != [len(r["successes"]) for r in eb]:
                raise MimeticError(f"compare: {a} and {b} were evaluated on different episodes; cannot pair them")
            diff = paired_seed_difference([r["success_rate"] for r in ea], [r["success_rate"] for r in eb])
            test = mcnemar_exact([s for r in ea for s in r["successes"]], [s for r in eb for s in r["successes"]])
            out.append({"a": a, "b": b, "diff_per_seed": diff["per_seed"], "diff_mean": diff["mean"],
                        "diff_ci95_seeds": list(diff["ci95"]) if diff["ci95"] else None, **test})
    return out


def compare(env: str, methods: Sequence[str], data: str | Path, seeds: Sequence[int], out: str | Path, *,
            episodes: int = 50, steps: int | None = None, env_options: dict | None = None, expert: bool = True,
            options: dict | None = None, progress: bool = False, device: str | None = None, backend=None) -> dict:
    """Train every method with every seed on `data`, evaluate all on the same seeds; write table + plots to `out`.

    `options` (field -> value) set the same Config fields of every method, e.g. {"obs_noise": 0.1}.
    `device` (auto|cpu|cuda|mps): where every method trains and acts; finished runs are reused from any device.
    `backend`: a `mimetic.shards.RayBackend` runs the evaluations as Ray tasks (training stays here); same results.
    """
    from mimetic.algos.run_dir import read_metrics
    from mimetic.analysis import plots
    from mimetic.data.dataset import Dataset
    from mimetic.envs.spaces import env_sizes
    from mimetic.envs.suites import suite_tasks
    from mimetic.evaluate import EVAL_SEED

    if list(methods) == ["all"]:
        methods = supervised_methods()
    if not methods:
        raise MimeticError("compare: --methods needs at least one method")
    if len(set(methods)) != len(methods):
        raise MimeticError(f"compare: --methods names a method twice: {','.join(methods)}")
    if not seeds:
        raise MimeticError("compare: --seeds needs at least one seed")
    if episodes < 1:
        raise MimeticError(f"compare: --episodes must be >= 1, got {episodes}")
    if device is not None:  # an unavailable device fails before any training
        from mimetic.devices import resolve_device

        resolve_device(device)
    for m in methods:  # fail on a typo before hours of training
        _method_config(m, int(seeds[0]), steps, options, device)
    dataset = Dataset.load(data)
    env_options = dict(dataset.env_options if env_options is None and env == dataset.env_name else env_options or {})
    # a dataset from another task fails here, before any training (a suite: its first task's features)
    tasks = suite_tasks(env)
    first_env, first_options = (env, env_options) if tasks is None else (tasks[0].env, {**env_options, **tasks[0].options})
    env_sizes(first_env, first_options).check_features(dataset.features, f"dataset {data}", env)
    out = Path(out)
    rows, curves, evals = [], {}, {}
    for m in methods:
        results = [run_one(m, int(s), dataset, out / "runs" / f"{m}-seed{s}", env, env_options, episodes, steps, progress,
                           options, device, backend) for s in seeds]
        evals[m] = results
        row = summarize_method(m, results)
        row["train_time_s"] = [next((r["time_s"] for r in reversed(read_metrics(p)) if "time_s" in r), None) for p in row["runs"]]
        rows.append(row)
        curves[m] = [read_metrics(p) for p in row["runs"]]
    reference = None
    if expert:
        reference = _expert_reference(env, env_options, episodes, EVAL_SEED)
    result = {
        "env": env, "env_options": env_options, "dataset": str(Path(data).resolve()), "dataset_episodes": dataset.num_episodes,
        "methods": list(methods), "seeds": [int(s) for s in seeds], "episodes": episodes, "eval_seed": EVAL_SEED,
        "steps": steps, "options": dict(options or {}), "results": rows, "paired": paired_tests(list(methods), evals),
        "expert": reference,
        "plots": {
            "success": str(plots.bar_chart(out / "success.png", [r["method"] for r in rows], [r["success_mean"] for r in rows],
                                           [tuple(r["ci95_seeds"] or r["ci95_pooled"]) for r in rows],
                                           [r["success_per_seed"] for r in rows],
                                           f"{env}: success, mean over {len(seeds)} training seeds of {episodes} eval episodes "
                                           + ("(95% t-interval over seeds; dots: seeds)" if len(seeds) > 1 else
                                              "(95% Wilson CI)"))),
            "curves": str(plots.curves(out / "curves.png", curves, CURVE_KEYS, f"{env}: learning curves")),
        },
    }
    atomic_write_json(out / "compare.json", result)
    atomic_write_bytes(out / "compare.md", format_table(result).encode())
    return result


def _expert_reference(env: str, env_options: dict, episodes: int, seed: int) -> dict | None:
    """The scripted expert on the same evaluation seeds, when the env has one (None otherwise)."""
    from mimetic.envs import make_expert
    from mimetic.envs.suites import suite_tasks
    from mimetic.evaluate import evaluate, evaluate_suite

    if suite_tasks(env) is not None:
        try:
            res = evaluate_suite(lambda t: make_expert(t.env, **{**env_options, **t.options}), env, episodes, seed,
                                 env_options=env_options)
        except MimeticError:
            return None
        per_task = list(res.tasks.values())
        return {"success_rate": res.success_rate, "ci95": list(res.ci95),
                "mean_return": float(np.mean([r.mean_return for r in per_task])), "episodes": episodes,
                "return_comparable": all(r.return_comparable for r in per_task), "return_note": per_task[0].return_note,
                "tasks": {name: {"success_rate": r.success_rate} for name, r in res.tasks.items()}}
    try:
        actor = make_expert(env, **env_options)
    except MimeticError:
        return None
    res = evaluate(actor, env, episodes, seed, env_options=env_options)
    return {"success_rate": res.success_rate, "ci95": list(res.ci95), "mean_return": res.mean_return, "episodes": episodes,
            "return_comparable": res.return_comparable, "return_note": res.return_note}


def _ci(ci, fmt: str = ".3f") -> str:
    return f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else "–"


METHOD_HEADER = ("method", "success: mean ± std over seeds", "95% t-interval over seeds", "per seed",
                 "pooled episodes, 95% Wilson (evaluation noise only)", "mean return")
PAIRED_HEADER = ("A vs B", "success A − B per seed", "mean A − B, 95% t-interval over seeds",
                 "episodes won by A only / B only", "McNemar exact p")


def method_rows(result: dict) -> list[tuple[str, ...]]:
    """The rows of the methods table (METHOD_HEADER), as text; compare.md and the report both show them."""
    def ret(r: dict) -> str:
        return f"{r['mean_return']:.2f}" if r.get("return_comparable", True) else "n/a"

    rows = []
    for r in result["results"]:
        rows.append((r["method"], f"{r['success_mean']:.3f} ± {r['success_std']:.3f}", _ci(r.get("ci95_seeds")),
                     ", ".join(f"{v:.2f}" for v in r["success_per_seed"]),
                     f"{r['success_pooled']:.3f} {_ci(r['ci95_pooled'])}", ret(r)))
    e = result.get("expert")
    if e:
        rows.append(("expert (reference)", f"{e['success_rate']:.3f} (one run)", "–", "–",
                     f"{e['success_rate']:.3f} {_ci(e['ci95'])}", ret(e)))
    return rows


def task_header(result: dict) -> tuple[str, ...]:
    """The header of the per-task table of a comparison on a suite: task, instruction, one column per method."""
    expert = ("expert (reference)",) if (result.get("expert") or {}).get("tasks") else ()
    return ("task", "instruction", *(f"{r['method']}: mean over seeds" for r in result["results"]), *expert)


def task_rows(result: dict) -> list[tuple[str, ...]]:
    """The rows of the per-task table (task_header) of a comparison on a suite; [] for one task."""
    rows = result["results"]
    if not rows or "tasks" not in rows[0]:
        return []
    expert = (result.get("expert") or {}).get("tasks")
    return [(name, t["instruction"], *(f"{r['tasks'][name]['success_mean']:.3f}" for r in rows),
             *((f"{expert[name]['success_rate']:.3f}",) if expert else ())) for name, t in rows[0]["tasks"].items()]


def paired_rows(result: dict) -> list[tuple[str, ...]]:
    """The rows of the paired-comparisons table (PAIRED_HEADER), as text."""
    return [(f"{p['a']} vs {p['b']}", ", ".join(f"{d:+.2f}" for d in p["diff_per_seed"]),
             f"{p['diff_mean']:+.3f} {_ci(p['diff_ci95_seeds'], '+.3f')}", f"{p['a_only']} / {p['b_only']}",
             f"{p['p_value']:.3g}") for p in result.get("paired") or []]


def return_line(result: dict) -> str:
    """What the mean-return column means for this task (or why it shows n/a)."""
    rows = result["results"] + ([result["expert"]] if result.get("expert") else [])
    note = next((r.get("return_note") for r in rows if r.get("return_note")), "")
    if all(r.get("return_comparable", True) for r in rows):
        return f"Mean return: {note}." if note else "Mean return: the environment's own."
    return f"Mean return not comparable on this task (n/a): {note}." if note else "Mean return not comparable on this task (n/a)."


PAIRED_NOTE = ("Paired on the same training seeds and evaluation episodes. McNemar pools the paired episodes of all "
               "training seeds; the t-interval over seeds is the check that counts seeds, not episodes. "
               "p-values are not corrected for multiple comparisons.")


def format_table(result: dict) -> str:
    """Markdown tables of a compare result: methods, then paired comparisons."""
    def md(header, rows) -> list[str]:
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]

    lines = [f"Environment `{result['env']}`, dataset `{result['dataset']}` ({result['dataset_episodes']} episodes), "
             f"training seeds {result['seeds']}, {result['episodes']} evaluation episodes per run "
             f"(seeds {result['eval_seed']}..{result['eval_seed'] + result['episodes'] - 1}, the same for every run)"
             + (f"; options {result['options']}" if result.get("options") else "") + ".",
             "", *md(METHOD_HEADER, method_rows(result)), "", return_line(result)]
    if task_rows(result):
        lines += ["", "Per task (success, mean over training seeds; the methods' success above is the mean over tasks):",
                  "", *md(task_header(result), task_rows(result))]
    if result.get("paired"):
        lines += ["", PAIRED_NOTE, "", *md(PAIRED_HEADER, paired_rows(result))]
    return "\n".join(lines) + "\n"
