"""Label efficiency and training compute: BC (more demos, longer training), DAgger and HG-DAgger.

Every policy is trained at the defaults a user gets (`bc`: its own network and step budget S per
training run; DAgger / HG-DAgger: the same budget S every iteration, warm-started, normalization
refitted). Points:

- `bc-N`: BC on the first N demos, S steps (labels = frames of those demos).
- `bc-N-xK`: BC on the first N demos for K*S steps: equal training compute (gradient steps) with a
  DAgger run of K trainings (iteration 0 + K-1 iterations). Run for the initial demos (what DAgger
  started from) and for the fewest demos holding at least as many labels as DAgger's final dataset
  (equal labels and equal compute at once).
- `dagger` / `hg-dagger-tT`: the policy of every iteration (a point per iteration, at its labels and
  cumulative steps), and the policy the run deploys (best validation success, earliest on ties).
  HG-DAgger runs once per threshold in `--thresholds`, and every threshold is reported.

All points are evaluated on the same `--eval-episodes` evaluation seeds (1,000,000..) with 95% Wilson
intervals; nothing is selected on them. Labels = frames in the training dataset (every frame holds
an expert action).

    nice -n 5 python benchmarks/dagger_label_efficiency.py --task reach --out /tmp/dagger-le \
        --results benchmarks/results
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
import torch

from mimetic.algos import bc
from mimetic.algos.dagger import DaggerConfig, is_dagger_run, run_dagger
from mimetic.collect import collect
from mimetic.data.dataset import Dataset
from mimetic.evaluate import evaluate
from mimetic.policies.base import PolicyActor, load_policy


def evaluate_run(path: Path, task: str, episodes: int) -> dict:
    res = evaluate(PolicyActor(load_policy(path)), task, episodes)
    return {"success": res.success_rate, "ci95": list(res.ci95), "episodes": res.episodes, "successes": res.successes}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="reach")
    p.add_argument("--out", default="/tmp/dagger-le")
    p.add_argument("--results", default="benchmarks/results")
    p.add_argument("--name", default="dagger", help="results file stem (RESULTS/NAME.json, .md, .png)")
    p.add_argument("--bc-demos", type=int, nargs="+", default=[10, 20, 40, 80])
    p.add_argument("--initial-demos", type=int, default=10)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--episodes-per-iter", type=int, default=10)
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.5],
                   help="HG-DAgger scripted gate |a_learner - a_expert|, one run each (all reported)")
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--steps", type=int, default=None, help="steps per training run (default: bc's own; smaller only for a smoke test)")
    p.add_argument("--methods", nargs="+", default=["bc", "dagger", "hg-dagger", "bc-compute"])
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    points_path = out / "points.jsonl"
    points = [json.loads(l) for l in points_path.read_text().splitlines()] if points_path.exists() else []
    done = {q["run"] for q in points}
    steps = args.steps or bc.Config.STATE_DEFAULTS["steps"]  # the budget of one training run (default: bc's own)

    def add(point: dict) -> None:
        points.append(point)
        done.add(point["run"])
        with open(points_path, "a") as f:
            f.write(json.dumps(point) + "\n")
        print(json.dumps({k: v for k, v in point.items() if k != "successes"}), flush=True)

    t_start = time.time()
    demos = out / "demos"
    n_max = max(args.bc_demos + [args.initial_demos])
    if not (demos / "meta/info.json").exists():
        collect(args.task, demos, 4 * n_max, seed=0, progress=False)  # spare demos for the equal-label BC run
    all_demos = Dataset.load(demos)

    def subset(n: int) -> Dataset:
        sub = out / f"demos-{n}"
        if not (sub / "meta/info.json").exists():
            Dataset.create(sub, [all_demos.episode(i) for i in range(n)], env=args.task, meta={"next_seed": n})
        return Dataset.load(sub)

    def bc_point(n: int, k: int) -> None:
        name = f"bc-{n}" + (f"-x{k}" if k > 1 else "")
        if name in done:
            return
        ds = subset(n)
        t0 = time.time()
        bc.train(bc.Config(steps=k * steps), ds, out / name, progress=False,
                 resume=(out / name / "checkpoint/state.json").exists())  # a killed run continues
        add({"method": "bc" if k == 1 else "bc-equal-compute", "run": name, "labels": ds.num_frames, "demos": n,
             "train_steps": k * steps, "train_s": round(time.time() - t0, 1),
             **evaluate_run(out / name, args.task, args.eval_episodes)})

    if "bc" in args.methods:
        for n in args.bc_demos:
            bc_point(n, 1)

    def dagger_run(threshold: float | None) -> None:
        label = "dagger" if threshold is None else f"hg-dagger-t{threshold:g}"
        run = out / label
        cfg = DaggerConfig(env=args.task, steps=args.steps, iterations=args.iterations, episodes_per_iter=args.episodes_per_iter,
                           initial_data=str(subset(args.initial_demos).root), gate="scripted" if threshold else None,
                           threshold=threshold or 0.3)
        t0 = time.time()
        rows = run_dagger(cfg, run, resume=is_dagger_run(run), progress=False)
        deployed = rows[-1]["deployed_iteration"]
        for r in rows:
            name = f"{label}-iter{r['iteration']}"
            if name in done:
                continue
            add({"method": label, "run": name, "threshold": threshold, "labels": r["expert_labels"], "iteration": r["iteration"],
                 "train_steps": sum(q["train_steps"] for q in rows[: r["iteration"] + 1]), "beta": r.get("beta"),
                 "new_labels": r["new_labels"], "rollout_expert_fraction": r.get("rollout_expert_fraction"),
                 "val_success": r["val_success"], "deployed": r["iteration"] == deployed, "final": r is rows[-1],
                 "run_s": round(time.time() - t0, 1),
                 **evaluate_run(run / "iters" / f"{r['iteration']:03d}", args.task, args.eval_episodes)})

    if "dagger" in args.methods:
        dagger_run(None)
    if "bc-compute" in args.methods and "dagger" in args.methods:  # BC at DAgger's training compute
        k = args.iterations + 1
        final = next(q for q in points if q["method"] == "dagger" and q.get("final"))
        n_equal = int(np.searchsorted(all_demos.episode_ends, final["labels"])) + 1  # fewest demos with >= its labels
        for n in dict.fromkeys([args.initial_demos, n_equal]):
            bc_point(n, 1)
            bc_point(n, k)
    if "hg-dagger" in args.methods:
        for t in args.thresholds:
            dagger_run(t)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    meta = {"task": args.task, "args": vars(args), "commit": commit, "steps_per_training": steps,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, 2 CPU cores shared with other jobs, torch {torch.__version__} CPU, one thread",
            "wall_s": round(time.time() - t_start, 1)}
    report(points, meta, Path(args.results), args.name)


def _cell(q: dict) -> str:
    return f"{q['success']:.2f} [{q['ci95'][0]:.2f}, {q['ci95'][1]:.2f}]"


def report(points: list[dict], meta: dict, results: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, xlabel in ((axes[0], "labels", "expert-labelled steps"), (axes[1], "train_steps", "gradient steps (all trainings)")):
        for method in sorted({q["method"] for q in points}, key=lambda m: (not m.startswith("bc"), m)):
            pts = sorted((q for q in points if q["method"] == method), key=lambda q: (q[key], q["run"]))
            x, y = [q[key] for q in pts], [q["success"] for q in pts]
            err = [[max(0.0, q["success"] - q["ci95"][0]) for q in pts], [max(0.0, q["ci95"][1] - q["success"]) for q in pts]]
            ax.errorbar(x, y, yerr=err, marker="s" if method.startswith("bc") else "o", capsize=3, label=method,
                        ls="none" if method == "bc-equal-compute" else "-")  # its points are different demo counts
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"success ({points[0]['episodes'] if points else 0} evaluation episodes)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"DAgger vs BC on {meta['task']}: equal labels (left), equal compute (right)")
    fig.tight_layout()
    fig.savefig(results / f"{name}.png", dpi=100)
    plt.close(fig)
    (results / f"{name}.json").write_text(json.dumps({"meta": meta, "points": points}, indent=1) + "\n")
    n = points[0]["episodes"] if points else 0
    lines = [f"| method | run | expert labels | gradient steps | success ({n} evaluation episodes) | note |", "|---|---|---|---|---|---|"]
    for q in sorted(points, key=lambda q: (not q["method"].startswith("bc"), q["method"], q["labels"], q["train_steps"])):
        note = ", ".join(w for w, c in (("deployed", q.get("deployed")), ("final", q.get("final"))) if c)
        if "val_success" in q:
            note = f"validation {q['val_success']:.2f}" + (f"; {note}" if note else "")
        lines.append(f"| {q['method']} | {q['run']} | {q['labels']} | {q['train_steps']} | {_cell(q)} | {note} |")
    (results / f"{name}_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {results / name}.png, .json and _table.md")


if __name__ == "__main__":
    main()
