"""Label efficiency: success versus expert-labelled steps for BC (more demos), DAgger and HG-DAgger.

Every point is the final policy of its run (BC) or the policy of that iteration (DAgger / HG-DAgger,
each iteration's policy is a point on the curve, nothing is chosen by test success), evaluated on
the same `--eval-episodes` test seeds (1,000,000+) with a 95% Wilson interval. Labels = frames in
the training dataset (every frame holds an expert action).

    nice -n 10 python benchmarks/dagger_label_efficiency.py --task metaworld/reach-v3 \
        --out /tmp/dagger-bench --results benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from mimetic.algos import bc
from mimetic.algos.dagger import DaggerConfig, run_dagger
from mimetic.collect import collect
from mimetic.data.dataset import Dataset
from mimetic.evaluate import evaluate
from mimetic.policies.base import PolicyActor, load_policy


def evaluate_run(path: Path, task: str, episodes: int) -> dict:
    res = evaluate(PolicyActor(load_policy(path)), task, episodes)
    return {"success": res.success_rate, "ci95": list(res.ci95)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="metaworld/reach-v3")
    p.add_argument("--out", default="/tmp/dagger-bench")
    p.add_argument("--results", default="benchmarks/results")
    p.add_argument("--steps", type=int, default=2000, help="training steps per run / per iteration")
    p.add_argument("--bc-demos", type=int, nargs="+", default=[10, 20, 40, 80, 160])
    p.add_argument("--initial-demos", type=int, default=10)
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--episodes-per-iter", type=int, default=5)
    p.add_argument("--threshold", type=float, default=0.5, help="HG-DAgger scripted gate |a_learner - a_expert|")
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--methods", nargs="+", default=["bc", "dagger", "hg-dagger"])
    p.add_argument("--tag", default="", help="suffix for the DAgger / HG-DAgger run names (another setting, same demos)")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "points.jsonl"
    points = [json.loads(l) for l in results_path.read_text().splitlines()] if results_path.exists() else []
    done = {(q["method"], q["run"]) for q in points}

    def add(point: dict) -> None:
        points.append(point)
        with open(results_path, "a") as f:
            f.write(json.dumps(point) + "\n")
        print(json.dumps(point), flush=True)

    t_start = time.time()
    demos = out / "demos"
    if not (demos / "meta/info.json").exists():
        collect(args.task, demos, max(args.bc_demos), seed=0, progress=False)
    all_demos = Dataset.load(demos)
    if "bc" in args.methods:
        for n in args.bc_demos:
            name = f"bc-{n}"
            if ("bc", name) in done:
                continue
            sub = out / f"demos-{n}"
            if not (sub / "meta/info.json").exists():
                Dataset.create(sub, [all_demos.episode(i) for i in range(n)], env=args.task, meta={"next_seed": n})
            ds = Dataset.load(sub)
            t0 = time.time()
            bc.train(bc.Config(steps=args.steps), ds, out / name, progress=False)
            add({"method": "bc", "run": name, "labels": ds.num_frames, "demos": n, "train_s": round(time.time() - t0, 1),
                 **evaluate_run(out / name, args.task, args.eval_episodes)})
    for method in ("dagger", "hg-dagger"):
        if method not in args.methods:
            continue
        label = method + args.tag
        run = out / label
        sub = out / f"demos-{args.initial_demos}"
        if not (sub / "meta/info.json").exists():
            Dataset.create(sub, [all_demos.episode(i) for i in range(args.initial_demos)], env=args.task,
                           meta={"next_seed": args.initial_demos})
        cfg = DaggerConfig(env=args.task, steps=args.steps, iterations=args.iterations, episodes_per_iter=args.episodes_per_iter,
                           initial_data=str(sub), eval_episodes=10,
                           beta="exponential" if method == "dagger" else "constant", beta0=0.5,
                           gate="scripted" if method == "hg-dagger" else None, threshold=args.threshold)
        rows = run_dagger(cfg, run, resume=(run / "dagger.json").exists(), progress=False)
        for r in rows:
            name = f"{label}-iter{r['iteration']}"
            if (label, name) in done:
                continue
            add({"method": label, "run": name, "threshold": args.threshold if method == "hg-dagger" else None, "labels": r["expert_labels"], "iteration": r["iteration"],
                 "beta": r.get("beta"), "new_labels": r["new_labels"], "rollout_expert_fraction": r.get("rollout_expert_fraction"),
                 **evaluate_run(run / "iters" / f"{r['iteration']:03d}", args.task, args.eval_episodes)})
    meta = {"task": args.task, "args": vars(args), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, 2 CPU cores shared, torch {torch.__version__} CPU",
            "wall_s": round(time.time() - t_start, 1)}
    report(points, meta, Path(args.results))


def report(points: list[dict], meta: dict, results: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in sorted({q["method"] for q in points}, key=lambda m: (m != "bc", m)):
        marker = {"bc": "s", "dagger": "o"}.get(method, "^")
        pts = sorted((q for q in points if q["method"] == method), key=lambda q: q["labels"])
        if not pts:
            continue
        x, y = [q["labels"] for q in pts], [q["success"] for q in pts]
        err = [[max(0.0, q["success"] - q["ci95"][0]) for q in pts], [max(0.0, q["ci95"][1] - q["success"]) for q in pts]]
        ax.errorbar(x, y, yerr=err, marker=marker, capsize=3, label=method)
    ax.axhline(0.95, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("expert-labelled steps")
    ax.set_ylabel(f"success ({points[0].get('episodes', 50) if points else 50} test episodes)")
    ax.set_title(f"label efficiency on {meta['task']}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(results / "dagger.png", dpi=100)
    plt.close(fig)
    (results / "dagger.json").write_text(json.dumps({"meta": meta, "points": points}, indent=1) + "\n")
    lines = ["| method | run | expert labels | success (50 test episodes) | 95% CI |", "|---|---|---|---|---|"]
    for q in sorted(points, key=lambda q: (q["method"], q["labels"])):
        lines.append(f"| {q['method']} | {q['run']} | {q['labels']} | {q['success']:.2f} | "
                     f"[{q['ci95'][0]:.2f}, {q['ci95'][1]:.2f}] |")
    (results / "dagger_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {results / 'dagger.png'}, {results / 'dagger.json'} and {results / 'dagger_table.md'}")


if __name__ == "__main__":
    main()
