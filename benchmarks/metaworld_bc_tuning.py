"""BC variants on Meta-World, scored on the VALIDATION seeds (2_000_000..), never the evaluation seeds:
the place to choose defaults without touching the numbers that are reported.

    python benchmarks/metaworld_bc_tuning.py --tasks assembly-v3 shelf-place-v3 \\
        --variants gmm-std0.001 gmm-std0.05 --out benchmarks/results/metaworld_bc_tuning.jsonl

Per task: 10 scripted demonstrations (seeds 0..), BC (MLP 3x256) trained 3000 steps on all of them
with each variant's options, `--episodes` episodes on the validation seeds. One JSON line per
(task, variant) is appended to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from metaworld_bc import load_or_collect_demos  # the same demonstrations as the Meta-World benchmarks

VARIANTS = {
    "base": {},
    "noise0.03": dict(obs_noise=0.03),
    "noise0.1": dict(obs_noise=0.1),
    "chunk8x4": dict(horizon=8, n_action_steps=4),
    "hist2": dict(n_obs_steps=2),
    "gmm-std0.001": dict(head="gmm", min_std=0.001),
    "gmm-std0.05": dict(head="gmm", min_std=0.05),
    "gmm-std0.2": dict(head="gmm", min_std=0.2),
    "gmm-hist2": dict(head="gmm", min_std=0.05, n_obs_steps=2),
}


def main() -> None:
    from mimetic.algos import bc
    from mimetic.evaluate import VAL_SEED, evaluate
    from mimetic.policies.base import PolicyActor

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", required=True)
    p.add_argument("--variants", nargs="+", default=["base"], choices=list(VARIANTS))
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--work", default="/tmp/mimetic-bc-tuning")
    p.add_argument("--out", default="benchmarks/results/metaworld_bc_tuning.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    for task in args.tasks:
        env = f"metaworld/{task}"
        ds = load_or_collect_demos(env, Path(args.work) / task / "demos", 10)
        for name in args.variants:
            t0 = time.perf_counter()
            options = {"head": "deterministic", "hidden": [256, 256, 256], **VARIANTS[name]}
            cfg = bc.Config(**options, steps=3000, val_fraction=0.0, seed=0, log_every=3000, ckpt_every=3000)
            policy = bc.train(cfg, ds, Path(args.work) / task / name, progress=False)
            res = evaluate(PolicyActor(policy), env, args.episodes, seed=VAL_SEED, num_envs=20)
            row = {"task": task, "variant": name, "options": options, "val_success": res.success_rate,
                   "ci95": list(res.ci95), "episodes": res.episodes, "seconds": round(time.perf_counter() - t0)}
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
