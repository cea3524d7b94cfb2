"""How an image policy is told its task on reach-colours (BENCHMARKS.md, "Reading the instruction from pixels").

One BC image policy on the three reach-colours tasks (24 x 24 top camera, 100 demonstrations per task, PNG frames),
a short budget (`STEPS` at lr 3e-3), then 50 episodes per task told its instruction, on the seeds 10,000.. (the
development seeds of this study, neither the validation nor the evaluation seeds). One line per run:

    python benchmarks/reach_colours_conditioning.py --work /work/runs/s28 --steps 1000 condition=task vision_film=true
    python benchmarks/reach_colours_conditioning.py --work /work/runs/s28 --steps 1000 condition=task-id vision_film=false

Any `KEY=VALUE` is a BC config field (the value as JSON when it parses).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mimetic.algos import bc
from mimetic.collect import collect
from mimetic.data import Dataset
from mimetic.envs.suites import suite_tasks
from mimetic.evaluate import evaluate
from mimetic.policies.base import PolicyActor

SEED = 10_000  # evaluation episodes of this study


def value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--size", type=int, default=24)
    p.add_argument("--demos", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("fields", nargs="*", metavar="KEY=VALUE")
    args = p.parse_args()
    torch.set_num_threads(1)
    fields = {k: value(v) for k, v in (f.split("=", 1) for f in args.fields)}
    work = Path(args.work)
    root = work / f"demos_{args.size}_{args.demos}_png"
    if not root.exists():
        collect("reach-colours", root, args.demos, seed=0, env_options={"image_size": args.size}, progress=False,
                image_storage="png")
    ds = Dataset.load(root)
    tag = "_".join(f"{k}{v}" for k, v in fields.items())
    t0 = time.time()
    policy = bc.train(bc.Config(steps=args.steps, batch_size=64, lr=3e-3, warmup_steps=30, val_fraction=0.0,
                                log_every=args.steps, seed=args.seed, **fields), ds,
                      work / f"m_{args.steps}_{args.size}_{args.seed}_{tag}", progress=False)
    told = policy.config.condition != "none"
    rates = [evaluate(PolicyActor(policy, **({"task": t.instruction} if told else {})), t.env, 50,
                      env_options={**t.options, "image_size": args.size}, seed=SEED).success_rate
             for t in suite_tasks("reach-colours")]
    print(json.dumps({"steps": args.steps, "size": args.size, "demos": args.demos, "seed": args.seed, **fields,
                      "train_s": round(time.time() - t0), "mean": round(float(np.mean(rates)), 3),
                      "success_rates": rates}), flush=True)


if __name__ == "__main__":
    main()
