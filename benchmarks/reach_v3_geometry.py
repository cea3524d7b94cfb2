"""Why is metaworld/reach-v3 the weak task of every imitation method? (a diagnostic for BENCHMARKS.md)

Meta-World's reach-v3 counts success when the tool centre point (between the fingertips) is within 5 cm of
the goal, but its scripted expert steers the HAND (the first 3 numbers of the observation), which sits 4.5 cm
above the tool centre point, onto the goal. The hand positions that succeed are thus a 5 cm ball centred 4.5 cm
above the goal: the expert's end point, hand on the goal, lies 5 mm inside its lower edge. A goal below the
hand's start is approached from above, through the middle of that ball; a goal above it from below, where a
policy that stops 5 mm short of the expert's end point never succeeds.

This script measures that split: BC at its defaults (10 successful demonstrations, seeds 0..; all train) and the
scripted expert, evaluated on `--episodes` seeds (validation 2,000,000.. or evaluation 1,000,000..), each episode
sorted by whether its goal is above the hand's start height; per group the success rate (95 % Wilson interval)
and, for the failures, the median closest approach of the tool centre point to the goal, and how they end:
stalled (the policy has stopped moving, short of success: no xyz action over 0.05 in the last 50 steps), ran away
(the episode ends over 15 cm from the goal) or still moving; the median final distance of the stalled ones; and the
median over failures of the largest xyz action the policy asked for (the env clips actions to [-1, 1]).

    python benchmarks/reach_v3_geometry.py --seeds eval --episodes 100 --work /tmp/reach-geometry \\
        --out benchmarks/results/reach_v3_geometry.jsonl [--relative-to none]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mimetic.algos import method_module
from mimetic.algos.trainer import resolve_for_dataset
from mimetic.collect import collect
from mimetic.data import Dataset
from mimetic.envs import make_env, make_expert
from mimetic.evaluate import EVAL_SEED, VAL_SEED, wilson_interval
from mimetic.policies.base import PolicyActor

ENV = "metaworld/reach-v3"
STALL_STEPS, STALL_ACTION, RUNAWAY_M = 50, 0.05, 0.15  # an action of 1 moves the hand 1 cm in a step


def episodes(actor, seeds) -> list[dict]:
    """One episode per seed: whether the goal is above the hand's start, success, the closest tool-goal distance."""
    env = make_env(ENV)
    rows = []
    for s in seeds:
        obs, _ = env.reset(seed=s)
        start_z, goal = float(obs[2]), obs[-3:].copy()
        if hasattr(actor, "reset"):
            actor.reset(1, [s])
        closest, success, moves, raw = np.inf, False, [], 0.0
        for _ in range(env.max_steps):
            action = actor.act(obs[None])[0]
            obs, _, terminated, truncated, info = env.step(action)
            moves.append(float(np.abs(np.clip(action[:3], -1, 1)).max()))
            raw = max(raw, float(np.abs(action[:3]).max()))  # before the env clips it to [-1, 1]
            distance = float(np.linalg.norm(env.unwrapped._env.unwrapped.tcp_center - goal))
            closest = min(closest, distance)
            success = success or bool(info["success"])
            if terminated or truncated:
                break
        # how a failure ends: stalled (the policy has stopped moving near the goal: its largest xyz action over the
        # last STALL_STEPS steps under STALL_ACTION, i.e. under 0.5 mm a step), ran away (ends over RUNAWAY_M from it)
        # or still moving
        ending = ("ran away" if distance > RUNAWAY_M else
                  "stalled" if max(moves[-STALL_STEPS:]) < STALL_ACTION else "moving")
        rows.append({"seed": s, "goal_above_start": bool(goal[2] > start_z), "success": success, "closest": closest,
                     "final": distance, "ending": ending, "largest_action": raw})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", choices=("val", "eval"), default="val")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--relative-to", default="auto", help="BC's relative_to (default: its default; none: no offsets)")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    demos = work / "demos"
    if not (demos / "meta/info.json").exists():
        collect(ENV, demos, args.demos, seed=0, only_success=True, progress=False)
    ds = Dataset.load(demos)
    module = method_module("bc")
    cfg = resolve_for_dataset(module.Config(val_fraction=0.0, relative_to=args.relative_to), ds)
    policy = module.train(cfg, ds, work / f"bc-{args.relative_to}", progress=False)
    first = {"val": VAL_SEED, "eval": EVAL_SEED}[args.seeds]
    seeds = range(first, first + args.episodes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        for name, actor in (("expert", make_expert(ENV)), ("bc", PolicyActor(policy))):
            rows = episodes(actor, seeds)
            for above in (False, True):
                mine = [r for r in rows if r["goal_above_start"] == above]
                wins = sum(r["success"] for r in mine)
                misses = [r["closest"] for r in mine if not r["success"]]
                ends = {e: [r["final"] for r in mine if not r["success"] and r["ending"] == e]
                        for e in ("stalled", "ran away", "moving")}
                row = {"policy": name, "seeds": args.seeds, "first_seed": first, "goal": "above start" if above else
                       "below start", "episodes": len(mine), "success_rate": wins / max(1, len(mine)),
                       "ci95": list(wilson_interval(wins, len(mine))), "steps": cfg.steps if name == "bc" else 0,
                       "median_closest_miss_m": float(np.median(misses)) if misses else None,
                       "failures": {e: len(d) for e, d in ends.items()},
                       "median_stall_distance_m": float(np.median(ends["stalled"])) if ends["stalled"] else None,
                       # the largest |xyz action| the actor asked for in each failure (the env clips to 1), median
                       "failures_median_largest_action": float(np.median(
                           [r["largest_action"] for r in mine if not r["success"]])) if misses else None,
                       "relative_to": policy.config.relative_to if name == "bc" else None}
                f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
