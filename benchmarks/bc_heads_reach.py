"""BC's heads where a goal must be interpolated from few demonstrations: the built-in `reach` task.

The GMM head beat the MSE head on the Meta-World development suite and on MT10 (BENCHMARKS.md, "BC's head"), but
lost on reach-v3, whose goal position varies continuously. This script measures the same on the built-in `reach`
(a random goal in the plane): BC at its defaults (3000 steps, MLP 3x256) with each candidate head, trained on the
first N expert demonstrations (seeds 0..) and evaluated on `--episodes` episodes of the validation seeds
(2,000,000..; `--seeds eval`: 1,000,000..). One JSON row per (candidate, demos, training seed) is appended to
--out (a killed run resumes); the table is printed at the end.

    python benchmarks/bc_heads_reach.py --demos 5 10 --train-seeds 0 1 --work /tmp/bch \\
        --out benchmarks/results/bc_heads_reach.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

# name -> BC options (everything else at its defaults)
CANDIDATES = {
    "mse": dict(head="deterministic"),
    "gaussian": dict(head="gaussian"),
    "gmm": dict(head="gmm"),
    "gmm-k2": dict(head="gmm", components=2),
    "gmm-std0.2": dict(head="gmm", min_std=0.2),
    "gmm-std0.5": dict(head="gmm", min_std=0.5),
    "gmm-std1": dict(head="gmm", min_std=1.0),
    "mse-os0.5": dict(head="deterministic", obs_scale=0.5),  # the normalized state x 0.5 (session 23)
    "mse-os0.33": dict(head="deterministic", obs_scale=1 / 3),
}


def table(rows: list[dict]) -> str:
    demos = sorted({r["demos"] for r in rows})
    lines = ["| head | " + " | ".join(f"{n} demos (per training seed)" for n in demos) + " |",
             "|---|" + "---:|" * len(demos)]
    for name in dict.fromkeys(r["candidate"] for r in rows):
        cells = []
        for n in demos:
            rs = sorted((r for r in rows if (r["candidate"], r["demos"]) == (name, n)), key=lambda r: r["train_seed"])
            rates = [r["success_rate"] for r in rs]
            mean = f" (mean {np.mean(rates):.2f})" if len(rates) > 1 else ""
            cells.append(" / ".join(f"{x:.2f}" for x in rates) + mean)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--demos", type=int, nargs="+", default=[5, 10])
    p.add_argument("--train-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seeds", choices=["val", "eval"], default="val")
    p.add_argument("--work", required=True, help="demonstrations and trained runs")
    p.add_argument("--out", required=True)
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    if not args.table_only:
        from metaworld_bc import load_or_collect_demos  # the benchmarks' one load-or-collect of demonstrations
        from mimetic.algos import bc
        from mimetic.evaluate import EVAL_SEED, VAL_SEED, evaluate
        from mimetic.policies.base import PolicyActor

        torch.set_num_threads(1)
        work = Path(args.work)
        done = {(r["candidate"], r["demos"], r["train_seed"]) for r in rows}
        for n in args.demos:
            ds = load_or_collect_demos("reach", work / f"demos-{n}", n)
            for seed in args.train_seeds:
                for name in args.candidates:
                    if (name, n, seed) in done:
                        continue
                    policy = bc.train(bc.Config(**CANDIDATES[name], seed=seed), ds, work / f"{name}-{n}-s{seed}",
                                      progress=False)
                    res = evaluate(PolicyActor(policy), "reach", args.episodes,
                                   seed=VAL_SEED if args.seeds == "val" else EVAL_SEED)
                    row = {"candidate": name, "options": CANDIDATES[name], "demos": n, "train_seed": seed,
                           "seeds": args.seeds, "episodes": res.episodes, "success_rate": res.success_rate,
                           "ci95": list(res.ci95)}
                    rows.append(row)
                    with open(out, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
