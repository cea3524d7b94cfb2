"""Meta-World comparison of policy families: BC-MLP, BC-GMM, ACT, diffusion, flow
(../shared/BENCHMARK-PROTOCOL.md: 10 scripted demonstrations, 50 evaluation episodes per task).

    python benchmarks/metaworld_methods.py --methods bc-mlp bc-gmm act diffusion flow \\
        --tasks door-open-v3 reach-v3 --demos 10 --episodes 50 --steps 3000 \\
        --out benchmarks/results/metaworld_methods.jsonl

For each task: `--demos` successful expert demonstrations (seeds 0..), each method trained on all
of them for `--steps` steps (final checkpoint), `--episodes` evaluation episodes on the seeds
1_000_000.. (the same for every method), and the expert on those seeds. One JSON line per
(task, method) is appended to --out, so an interrupted run resumes where it stopped; the markdown
table (per task and per difficulty group) is printed at the end, or alone with --table-only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from metaworld_bc import DEV_SUITE, GROUP_OF, done_keys, load_rows, table  # the suite, groups and table of the BC benchmark

METHODS = {  # name: (training method, options); small networks for 39-d state, 4-d action, sized so that
    # one policy trains in a few minutes on one core (benchmarks/results/metaworld_methods.md)
    "bc-mlp": ("bc", dict(head="deterministic", hidden=[256, 256, 256])),
    "bc-gmm": ("bc", dict(head="gmm", hidden=[256, 256, 256])),
    "act": ("act", dict(dim_model=64, n_heads=4, dim_feedforward=256, batch_size=64, lr=1e-3)),
    "diffusion": ("diffusion", dict(down_dims=[32, 64], kernel_size=3, batch_size=128)),
    "flow": ("flow", dict(down_dims=[32, 64], kernel_size=3, batch_size=128)),
}
# sampling steps also evaluated (same checkpoint, rows named e.g. "diffusion-5"); the default's row has the plain name
SWEEP = {"diffusion": [5], "flow": [1, 2]}


def run(args) -> None:
    from mimetic.algos import method_module
    from mimetic.collect import collect
    from mimetic.envs import make_expert
    from mimetic.evaluate import EVAL_SEED, evaluate
    from mimetic.policies.base import PolicyActor

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_keys(out)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="mw-methods-"))
    for task in args.tasks:
        env = f"metaworld/{task}"
        todo = [m for m in ["expert"] + args.methods if (task, m) not in done]
        if not todo:
            continue
        ds = collect(env, work / task / "demos", args.demos, seed=0, only_success=True, progress=False)
        for name in todo:
            t0 = time.perf_counter()
            if name == "expert":
                actor, policy, train_s, params = make_expert(env), None, 0.0, 0
            else:
                method, options = METHODS[name]
                module = method_module(method)
                cfg = module.Config(**options, steps=args.steps, val_fraction=0.0, seed=args.seed, log_every=args.steps,
                                    ckpt_every=args.steps)
                policy = module.train(cfg, ds, work / task / name, progress=False)
                train_s, params = time.perf_counter() - t0, policy.num_parameters()
                actor = PolicyActor(policy)
            variants = [(name, None)] + [(f"{name}-{k}", k) for k in SWEEP.get(name, []) if (task, f"{name}-{k}") not in done]
            for row_name, steps in variants:
                if steps is not None:
                    policy.set_sampling_steps(steps)
                    actor = PolicyActor(policy)
                t1 = time.perf_counter()
                res = evaluate(actor, env, args.episodes, seed=EVAL_SEED, num_envs=args.num_envs)
                row = {"task": task, "group": GROUP_OF.get(task, "other"), "policy": row_name,
                       "success_rate": res.success_rate, "ci95": list(res.ci95), "episodes": res.episodes,
                       "mean_length": res.mean_length, "demos": ds.num_episodes, "steps": args.steps if name != "expert" else 0,
                       "sampling_steps": getattr(getattr(policy, "config", None), "num_inference_steps", None),
                       "parameters": params, "train_s": round(train_s, 1), "eval_s": round(time.perf_counter() - t1, 1)}
                with open(out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--tasks", nargs="+", default=DEV_SUITE)
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num-envs", type=int, default=25)
    p.add_argument("--out", default="benchmarks/results/metaworld_methods.jsonl")
    p.add_argument("--work", default="", help="keep datasets and trained runs here (default: a temporary folder)")
    p.add_argument("--bc-from", default="", help="also tabulate bc-mlp / bc-gmm rows from this metaworld_bc.py results file")
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    if not args.table_only:
        run(args)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"\ncommit {commit}\n")
    rows = load_rows(Path(args.out))
    policies = ["expert"] + [m for m in args.methods if m not in SWEEP] + [m for m in args.methods if m in SWEEP]
    if args.bc_from:  # BC rows of benchmarks/metaworld_bc.py (same demonstrations and evaluation seeds)
        rows += [r for r in load_rows(Path(args.bc_from), {"deterministic": "bc-mlp", "gmm": "bc-gmm"})
                 if r["policy"] in ("bc-mlp", "bc-gmm") and (r["task"], r["policy"]) not in {(x["task"], x["policy"]) for x in rows}]
        policies = ["expert", "bc-mlp", "bc-gmm"] + [p for p in policies[1:] if p not in ("bc-mlp", "bc-gmm")]
    sweep = [f"{m}-{k}" for m in args.methods for k in SWEEP.get(m, [])]
    print(table(rows, policies))
    print("\nsampling steps (diffusion: DDIM steps, default 10; flow: Euler steps, default 4):\n")
    print(table(rows, [p for p in policies if p in SWEEP] + sweep))
    print("\ntraining seconds per policy (median over tasks, one thread, --steps steps):\n")
    for p in policies[1:]:
        ts = sorted(r["train_s"] for r in rows if r["policy"] == p)
        if ts:
            print(f"- {p}: {ts[len(ts) // 2]:.0f} s ({len(ts)} tasks)")


if __name__ == "__main__":
    main()
