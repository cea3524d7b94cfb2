"""DAgger vs BC on Meta-World at the defaults: does DAgger keep a strong BC policy strong, and improve a weak one?

For each task: 10 successful scripted demonstrations (seeds 0..), then the command of the report in
issue 10, everything else at its defaults:

    mimetic dagger metaworld/TASK --policy bc --iterations 5 --episodes-per-iter 5 --beta linear --data DEMOS

Its iteration 0 is BC at its defaults on the same demonstrations (the same training as
`mimetic train bc`: same split, seed and budget), so the BC row is RUN/iters/000. Every policy is
evaluated on the same 50 evaluation seeds (1,000,000..): BC, the deployed DAgger policy (the
iteration with the best success on the 20 validation seeds 2,000,000.. that the run scores every
iteration, earliest on ties) and the last iteration. Nothing is chosen on evaluation seeds.

    nice -n 5 python benchmarks/dagger_metaworld.py --tasks door-open-v3 assembly-v3 push-v3 reach-v3 \
        --out /tmp/dagger-mw --results benchmarks/results/dagger_metaworld.jsonl

`--baselines` adds two BC rows per task, on the same evaluation seeds: `bc-equal-compute`, BC on the
same 10 demonstrations for as many gradient steps as the whole DAgger run took (every iteration's
training), and `bc-equal-labels`, BC at its defaults on the fewest scripted demonstrations (seeds
0..) holding at least as many expert labels as the DAgger run's final dataset.

`--variant NAME --no-run` evaluates existing runs in OUT/NAME-TASK instead (e.g. runs made by an
older commit, for a before / after comparison). Rows are appended one JSON line per (task, variant,
policy), so an interrupted run resumes; `--table-only` prints the markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


POLICIES = ("bc", "dagger-deployed", "dagger-last", "bc-equal-compute", "bc-equal-labels")


def load_rows(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def data_stats(run: Path) -> list[dict]:
    """Per iteration of a run's dataset: frames added, the share of them from episodes that failed, and
    the learner's executed actions (how far outside the action range [-1, 1] it went)."""
    from mimetic.data.dataset import Dataset

    ds = Dataset.load(run / "data")
    it, actor, executed = ds.extra("iteration"), ds.extra("actor"), ds.extra("executed_action")
    out = []
    for i in range(int(it.max()) + 1):
        eps = [(s, e) for s, e in zip(ds.episode_starts, ds.episode_ends) if it[s] == i]
        failed = sum(int(e - s) for s, e in eps if not ds.successes[s:e].any())
        learner = (it == i) & (actor == 0)
        out.append({"iteration": i, "frames": int(np.sum(it == i)), "episodes": len(eps), "frames_from_failed_episodes": failed,
                    "learner_steps": int(learner.sum()),
                    "learner_max_abs_action": float(np.abs(executed[learner]).max()) if learner.any() else None,
                    "learner_label_gap": float(np.abs(executed[learner] - ds.actions[learner]).mean()) if learner.any() else None})
    return out


def run_task(task: str, args, results: Path) -> None:
    import torch

    from mimetic.algos.dagger import DaggerConfig, is_dagger_run, read_log, run_dagger
    from mimetic.evaluate import EVAL_SEED, evaluate
    from mimetic.policies.base import PolicyActor, load_policy

    torch.set_num_threads(1)
    env = f"metaworld/{task}"
    out = Path(args.out)
    run = out / f"{args.variant}-{task}"
    if not args.no_run:
        from metaworld_bc import load_or_collect_demos  # the benchmarks' one load-or-collect of the Meta-World demos

        demos = out / "demos" / task
        load_or_collect_demos(env, demos, args.demos)
        cfg = DaggerConfig(env=env, policy="bc", iterations=args.iterations, episodes_per_iter=args.episodes_per_iter,
                           beta="linear", initial_data=str(demos))
        t0 = time.perf_counter()
        run_dagger(cfg, run, resume=is_dagger_run(run), progress=False)
        print(f"{task}: dagger run {time.perf_counter() - t0:.0f} s", flush=True)
    log = read_log(run)
    if not log:
        raise SystemExit(f"{run}: no completed DAgger iteration")
    done = {(r["task"], r["variant"], r["policy"]) for r in load_rows(results)}
    last = log[-1]["iteration"]
    deployed = log[-1].get("deployed_iteration", last)  # runs of older commits deploy the last iteration
    where = {"bc": (run / "iters/000", 0), "dagger-deployed": (run, deployed), "dagger-last": (run / "iters" / f"{last:03d}", last)}
    for policy, (path, iteration) in where.items():
        if (task, args.variant, policy) in done:
            continue
        t0 = time.perf_counter()
        res = evaluate(PolicyActor(load_policy(path)), env, args.episodes, seed=EVAL_SEED, num_envs=args.num_envs)
        row = {"task": task, "variant": args.variant, "policy": policy, "iteration": iteration,
               "expert_labels": log[iteration]["expert_labels"], "success_rate": res.success_rate,
               "ci95": list(res.ci95), "episodes": res.episodes, "successes": res.successes,
               "val_success_per_iteration": [r["val_success"] for r in log],
               "train_steps_total": sum(int(r.get("train_steps", 2000)) for r in log[: iteration + 1]),
               "data": data_stats(run) if policy == "bc" else None,
               "eval_s": round(time.perf_counter() - t0, 1)}
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "successes"}), flush=True)


def baselines(task: str, args, results: Path) -> None:
    """BC at the DAgger run's training compute, and BC with at least its labels (see the module docstring)."""
    import torch

    from mimetic.algos import bc
    from mimetic.algos.dagger import read_log
    from mimetic.algos.trainer import resolve_for_dataset
    from mimetic.data.dataset import Dataset
    from mimetic.evaluate import EVAL_SEED, evaluate
    from mimetic.policies.base import PolicyActor

    from metaworld_bc import load_or_collect_demos

    torch.set_num_threads(1)
    env, out = f"metaworld/{task}", Path(args.out)
    log = read_log(out / f"{args.variant}-{task}")
    done = {(r["task"], r["variant"], r["policy"]) for r in load_rows(results)}
    total_steps = sum(int(r["train_steps"]) for r in log)
    labels = log[-1]["expert_labels"]
    for policy in ("bc-equal-compute", "bc-equal-labels"):
        if (task, args.variant, policy) in done:
            continue
        if policy == "bc-equal-compute":
            ds, cfg = load_or_collect_demos(env, out / "demos" / task, args.demos), bc.Config(steps=total_steps)
        else:
            many = load_or_collect_demos(env, out / "demos-many" / task, 4 * args.demos * (args.iterations + 1))
            n = int(np.searchsorted(many.episode_ends, labels)) + 1  # the first n demos hold >= `labels` frames
            if n > many.num_episodes:
                raise SystemExit(f"{task}: {many.num_episodes} demos hold fewer than {labels} labels")
            sub = out / "demos-many" / f"{task}-first{n}"
            if not (sub / "meta/info.json").exists():
                Dataset.create(sub, [many.episode(i) for i in range(n)], env=env)
            ds, cfg = Dataset.load(sub), bc.Config()
        run = out / f"{args.variant}-{task}-{policy}"
        t0 = time.perf_counter()
        cfg = resolve_for_dataset(cfg, ds)
        trained = bc.train(cfg, ds, run, progress=False, resume=(run / "checkpoint/state.json").exists())
        train_s = time.perf_counter() - t0
        res = evaluate(PolicyActor(trained), env, args.episodes, seed=EVAL_SEED, num_envs=args.num_envs)
        row = {"task": task, "variant": args.variant, "policy": policy, "iteration": None, "expert_labels": ds.num_frames,
               "demos": ds.num_episodes, "success_rate": res.success_rate, "ci95": list(res.ci95), "episodes": res.episodes,
               "successes": res.successes, "val_success_per_iteration": [r["val_success"] for r in log],
               "train_steps_total": cfg.steps, "train_s": round(train_s, 1)}
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "successes"}), flush=True)


def table(rows: list[dict]) -> str:
    lines = ["| task | variant | BC (= iteration 0) | DAgger deployed (iteration) | DAgger last | BC, equal compute | "
             "BC, equal labels | validation success per iteration |", "|---|---|---|---|---|---|---|---|"]
    by = {(r["task"], r["variant"], r["policy"]): r for r in rows}
    for task, variant in dict.fromkeys((r["task"], r["variant"]) for r in rows):
        cells = []
        for p in POLICIES:
            r = by.get((task, variant, p))
            if r is None:
                cells.append("–")
                continue
            cell = f"{r['success_rate']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"
            if p == "dagger-deployed":
                cell += f" (iteration {r['iteration']})"
            cells.append(cell + (f", {r['expert_labels']} labels, {r['train_steps_total']} steps" if p != "bc" else ""))
        any_row = next(by[(task, variant, p)] for p in POLICIES if (task, variant, p) in by)
        val = ", ".join(f"{v:.2f}" for v in any_row["val_success_per_iteration"])
        lines.append(f"| {task} | {variant} | " + " | ".join(cells) + f" | {val} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["door-open-v3", "assembly-v3", "push-v3", "reach-v3"])
    p.add_argument("--out", default="/tmp/dagger-mw")
    p.add_argument("--results", default="benchmarks/results/dagger_metaworld.jsonl")
    p.add_argument("--variant", default="default", help="name of the runs (OUT/VARIANT-TASK) in the results")
    p.add_argument("--no-run", action="store_true", help="evaluate existing runs only")
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--episodes-per-iter", type=int, default=5)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--num-envs", type=int, default=10)
    p.add_argument("--baselines", action="store_true", help="also BC at equal compute and at equal labels")
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for task in args.tasks:
            run_task(task, args, results)
            if args.baselines:
                baselines(task, args, results)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    print(f"\ncommit {commit}, {platform.machine()}, {datetime.now(timezone.utc).isoformat(timespec='minutes')}\n")
    print(table(load_rows(results)))


if __name__ == "__main__":
    main()
