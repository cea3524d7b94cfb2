"""Why BC misses reach-v3: how its observations are normalized (session 23).

A reach-v3 specialist (BC at its defaults, the ten MT10 demonstrations of reach-v3 in `--data`) trained with its
normalizers fitted differently, each evaluated on `--episodes` episodes of the validation seeds (2,000,000..):

- `default`: fitted on its own ten demonstrations (what `mimetic train bc` does), with `obs_scale` 1;
- `pooled`, `pooled-obs`, `pooled-act`: the observation and/or action normalizer fitted on the whole MT10 dataset
  (`--pooled`), whose spread is 2-3x wider;
- `floor0.01`, `floor-rel0.1`: the observation std floored at 0.01, or at 0.1 x the median std (the near-constant
  dimensions, e.g. the puck's orientation, are not blown up);
- `scale0.33`, `scale0.5`: `obs_scale` (the normalized input multiplied by it), the option this led to;
- `scale0.33-act`: also the action normalizer's scale x 3;
- `steps30000`: the default trained 10x longer (the steps MT10's one policy takes for its ten tasks).

One JSON row per (variant, training seed) is appended to --out (finished rows are skipped on a re-run).

    python benchmarks/bc_input_scale.py --data W/single/reach-v3 --pooled W/demos --train-seeds 0 1 2 \\
        --work /tmp/bcis --out benchmarks/results/bc_input_scale.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

VARIANTS = ("default", "pooled", "pooled-obs", "pooled-act", "floor0.01", "floor-rel0.1", "scale0.33", "scale0.5",
            "scale0.33-act", "steps30000")


def fit_with(variant: str, pooled):
    """The replacement for `Policy.fit_normalization` that `variant` uses (None: the library's own)."""
    from mimetic.policies.base import Policy

    own = Policy.fit_normalization

    def fit(self, obs, act, aux=None):
        if variant.startswith("pooled"):
            obs = pooled[0] if variant in ("pooled", "pooled-obs") else obs
            act = pooled[1] if variant in ("pooled", "pooled-act") else act
        own(self, obs, act, aux)
        if variant.startswith("floor"):
            s = self.obs_norm.scale
            kept = s[s != 1.0]  # 1.0: a constant dimension, passed through
            floor = 0.01 if variant == "floor0.01" else 0.1 * float(kept.median())
            self.obs_norm.scale.copy_(torch.clamp(s, min=floor).where(s != 1.0, s))
        if variant == "scale0.33-act":
            s = self.act_norm.scale
            self.act_norm.scale.copy_((s * 3).where(s != 1.0, s))

    return fit if variant.startswith(("pooled", "floor")) or variant == "scale0.33-act" else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the reach-v3 demonstrations")
    p.add_argument("--pooled", required=True, help="the MT10 dataset whose spread the pooled variants use")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    from mimetic.algos import method_module
    from mimetic.algos.trainer import resolve_for_dataset
    from mimetic.data import Dataset
    from mimetic.data.windows import vector_input
    from mimetic.evaluate import VAL_SEED, evaluate
    from mimetic.policies.base import Policy, PolicyActor

    torch.set_num_threads(1)
    data, mt = Dataset.load(args.data), Dataset.load(args.pooled)
    pooled = (vector_input({"observation.state": mt.frames("observation.state")}), mt.actions)
    out = Path(args.out)
    done = {(r["variant"], r["train_seed"]) for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
    bc, own_fit = method_module("bc"), Policy.fit_normalization
    for variant in args.variants:
        for seed in args.train_seeds:
            if (variant, seed) in done:
                continue
            scale = {"scale0.33": 1 / 3, "scale0.33-act": 1 / 3, "scale0.5": 0.5}.get(variant, 1.0)
            cfg = resolve_for_dataset(bc.Config(val_fraction=0.0, seed=seed, obs_scale=scale), data)
            if variant == "steps30000":
                cfg.steps = 30000
            cfg.log_every = cfg.ckpt_every = cfg.steps
            Policy.fit_normalization = fit_with(variant, pooled) or own_fit
            t0 = time.perf_counter()
            try:
                policy = bc.train(cfg, data, Path(args.work) / f"{variant}-{seed}", progress=False)
            finally:
                Policy.fit_normalization = own_fit
            train_s = time.perf_counter() - t0
            r = evaluate(PolicyActor(policy), "metaworld/reach-v3", args.episodes, seed=VAL_SEED)
            row = {"variant": variant, "train_seed": seed, "success_rate": r.success_rate, "ci95": list(r.ci95),
                   "episodes": args.episodes, "seeds": "val", "obs_scale": scale, "train_s": round(train_s, 1)}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    print("| variant | " + " | ".join(f"seed {s}" for s in args.train_seeds) + " | mean |\n|---|" + "---:|" * (len(args.train_seeds) + 1))
    for v in dict.fromkeys(r["variant"] for r in rows):
        got = [r["success_rate"] for s in args.train_seeds for r in rows if (r["variant"], r["train_seed"]) == (v, s)]
        print(f"| {v} | " + " | ".join(f"{x:.2f}" for x in got) + f" | {np.mean(got):.2f} |")


if __name__ == "__main__":
    main()
