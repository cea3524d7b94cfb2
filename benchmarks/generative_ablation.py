"""Why do diffusion and flow trail BC on Meta-World states? One change at a time from the defaults, scored on
the VALIDATION seeds (2_000_000..), never the evaluation seeds: the place to choose their defaults.

    python benchmarks/generative_ablation.py --method diffusion --tasks push-v3 pick-place-v3 \\
        --variants base to1 cond-mlp --out benchmarks/results/generative_ablation.jsonl

Per task: the 10 scripted demonstrations of the Meta-World benchmarks (seeds 0..), the method's `Config()`
with the variant's fields changed, trained on all of them (final checkpoint, EMA weights), `--episodes`
episodes on the validation seeds. Each trained checkpoint is also evaluated executing 4 actions per chunk
instead of 8 (row "<variant>+ta4": an evaluation-time change, no training). One JSON line per (task, method,
row) is appended to --out; rows already there are skipped, so an interrupted run resumes.

The variants change today's `Config()`: the rows in benchmarks/results/generative_ablation.jsonl were measured
from the defaults before commit ef93fde (no conditioning MLP, Ta=8, epsilon prediction), so "base" there is
what the other rows are compared against; re-running "base" now measures the new defaults.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from metaworld_bc import load_or_collect_demos  # the same demonstrations as the Meta-World benchmarks

# variant: (fields of the method's Config changed, training steps or None for the default)
VARIANTS = {
    "base": {},
    "to1": dict(n_obs_steps=1),  # one observation instead of two (BC with two lost on validation seeds)
    "cond-mlp": dict(cond_hidden=[256, 256]),  # an MLP between the observations and FiLM instead of one Linear
    "wide": dict(down_dims=[64, 128]),  # twice the channels
    "sample": dict(prediction_type="sample"),  # diffusion only: predict the clean chunk instead of the noise
    "gauss": dict(norm_obs="gaussian"),  # z-scored observations instead of min-max
    "lr3e-4": dict(lr=3e-4),
    "steps4k": dict(steps=4000),
    "cond-mlp-sample": dict(cond_hidden=[256, 256], prediction_type="sample"),
}


def table(rows: list[dict]) -> str:
    """Markdown: one line per (method, row), validation success per task and the mean over the tasks it ran on."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    cells: dict[tuple, dict] = {}
    for r in rows:  # the first row of a (method, row, task) counts (a duplicate re-run is identical or ignored)
        cells.setdefault((r["method"], r["row"]), {}).setdefault(r["task"], r["val_success"])
    lines = ["| method | variant | " + " | ".join(tasks) + " | mean | train s (median) |",
             "|---|---|" + "---|" * (len(tasks) + 2)]
    for (method, row), got in sorted(cells.items(), key=lambda kv: kv[0][0]):  # by method, then in run order
        secs = sorted(r["train_s"] for r in rows if (r["method"], r["row"]) == (method, row))
        mean = f"{sum(got.values()) / len(got):.2f}" + ("" if len(got) == len(tasks) else f" ({len(got)} tasks)")
        lines.append(f"| {method} | {row} | " + " | ".join(f"{got[t]:.3f}" if t in got else "–" for t in tasks)
                     + f" | {mean} | {secs[len(secs) // 2]} |")
    return "\n".join(lines)


def main() -> None:
    from mimetic.algos import method_module
    from mimetic.algos.trainer import resolve_for_dataset
    from mimetic.evaluate import VAL_SEED, evaluate
    from mimetic.policies.base import PolicyActor, load_policy

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=["diffusion", "flow"])
    p.add_argument("--tasks", nargs="+", default=[])
    p.add_argument("--variants", nargs="+", default=["base"], choices=list(VARIANTS))
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--work", default="/tmp/mimetic-generative-ablation")
    p.add_argument("--out", default="benchmarks/results/generative_ablation.jsonl")
    p.add_argument("--table-only", action="store_true", help="print the markdown table of --out and stop")
    args = p.parse_args()
    if args.table_only:
        print(table([json.loads(line) for line in Path(args.out).read_text().splitlines()]))
        return
    torch.set_num_threads(1)
    out = Path(args.out)
    done = {(r["task"], r["method"], r["row"]) for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
    module = method_module(args.method)
    for task in args.tasks:
        env = f"metaworld/{task}"
        ds = load_or_collect_demos(env, Path(args.work) / task / "demos", 10)
        for name in args.variants:
            rows = [name, f"{name}+ta4"]
            if all((task, args.method, r) in done for r in rows):
                continue
            run_dir = Path(args.work) / task / f"{args.method}-{name}"
            t0 = time.perf_counter()
            if (run_dir / "config.json").exists() and (task, args.method, name) in done:
                policy = load_policy(run_dir)
            else:
                cfg = resolve_for_dataset(module.Config(**VARIANTS[name], val_fraction=0.0, seed=0), ds)
                cfg.log_every = cfg.ckpt_every = cfg.steps
                policy = module.train(cfg, ds, run_dir, progress=False)
            train_s = time.perf_counter() - t0
            for row, ta in zip(rows, [None, 4]):
                if (task, args.method, row) in done:
                    continue
                t1 = time.perf_counter()
                res = evaluate(PolicyActor(policy, n_action_steps=ta), env, args.episodes, seed=VAL_SEED, num_envs=20)
                line = {"task": task, "method": args.method, "row": row, "variant": name, "changes": VARIANTS[name],
                        "n_action_steps": ta or policy.config.n_action_steps, "val_success": res.success_rate,
                        "ci95": list(res.ci95), "episodes": res.episodes, "train_s": round(train_s),
                        "eval_s": round(time.perf_counter() - t1)}
                with open(out, "a") as f:
                    f.write(json.dumps(line) + "\n")
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
