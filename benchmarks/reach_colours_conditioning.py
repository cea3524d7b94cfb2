"""How an image policy is told its task on reach-colours (BENCHMARKS.md, "Reading the instruction from pixels").

One BC image policy on the three reach-colours tasks (24 x 24 top camera, 100 demonstrations per task, PNG frames),
a short budget (`STEPS` at lr 3e-3), then 50 episodes per task told its instruction, on the seeds 10,000.. (the
development seeds of this study, neither the validation nor the evaluation seeds). One line per run:

    python benchmarks/reach_colours_conditioning.py --work /work/runs/s28 --steps 1000 condition=task vision_film=true
    python benchmarks/reach_colours_conditioning.py --work /work/runs/s28 --steps 1000 condition=task-id vision_film=false

Any `KEY=VALUE` is a BC config field (the value as JSON when it parses). Each run also says where its failures
end (`ends`, per task: success / nearest its own target / nearest another target / near none): a policy that
reads the instruction but places the hand imprecisely fails near its own target, one that misreads it near another.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mimetic.algos import bc
from mimetic.algos.trainer import resolve_for_dataset
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


def where_episodes_end(policy, task, size: int, episodes: int, seed: int) -> dict[str, int]:
    """Run `episodes` episodes of `task` (a SuiteTask) and count how each ends: "success", or the failure's final
    hand position nearest its own target ("own"), nearest another ("other"), or over 0.25 from every target ("none")."""
    from mimetic.envs import make_env

    counts = {"success": 0, "own": 0, "other": 0, "none": 0}
    env = make_env(task.env, **{**task.options, "image_size": size})
    actor = PolicyActor(policy, **({"task": task.instruction} if policy.config.condition != "none" else {}))
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        actor.reset(1, seeds=[seed + i])
        done, success = False, False
        while not done:
            obs, _, success, truncated, _ = env.step(actor.act({k: v[None] for k, v in obs.items()})[0])
            done = success or truncated
        e = env.unwrapped
        dists = [np.linalg.norm(e._goal - e._pos)] + [np.linalg.norm(c - e._pos) for c, _ in e._others]
        counts["success" if success else "none" if min(dists) > 0.25 else "own" if np.argmin(dists) == 0 else "other"] += 1
    env.close()
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--defaults", action="store_true", help="BC's own defaults (what `mimetic train bc` runs on this "
                   "data: 2000 steps per task at lr 1e-3) instead of the study's short budget (--steps at lr 3e-3)")
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
    study = {} if args.defaults else dict(steps=args.steps, batch_size=64, lr=3e-3, warmup_steps=30)
    cfg = resolve_for_dataset(bc.Config(**{**study, **fields}, val_fraction=0.0, seed=args.seed), ds)
    cfg.log_every = cfg.steps
    name = "defaults" if args.defaults else str(args.steps)
    policy = bc.train(cfg, ds, work / f"m_{name}_{args.size}_{args.seed}_{tag}", progress=False)
    told = policy.config.condition != "none"
    rates = [evaluate(PolicyActor(policy, **({"task": t.instruction} if told else {})), t.env, 50,
                      env_options={**t.options, "image_size": args.size}, seed=SEED).success_rate
             for t in suite_tasks("reach-colours")]
    print(json.dumps({"steps": cfg.steps, "lr": cfg.lr, "size": args.size, "demos": args.demos, "seed": args.seed, **fields,
                      "train_s": round(time.time() - t0), "mean": round(float(np.mean(rates)), 3),
                      "success_rates": rates,
                      "ends": [where_episodes_end(policy, t, args.size, 50, SEED) for t in suite_tasks("reach-colours")]}),
          flush=True)


if __name__ == "__main__":
    main()
