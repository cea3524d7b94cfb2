"""How `reach-fork`'s parameters were chosen: validation seeds only (2_000_000..).

    python benchmarks/reach_fork_design.py [--episodes 200] [--bc] [--out benchmarks/results/reach_fork_design.jsonl]

1. The scripted expert for several swerve distances (`split_distance`, the distance to the obstacle's
   centre at which it swerves): its success, its smallest clearance to the obstacle, its episode
   lengths, and the success of the same expert when it swerves 1-4 steps late (going straight on
   meanwhile), with the chosen radius 0.2, start 0.9, margin 0.15 and a generous time limit (60).
   The shipped split distance is one the expert clears safely while a swerve 3-4 steps late fails.
2. With --bc: deterministic BC at its defaults (100 demonstrations, 100 validation episodes) with the
   start and goal fixed (the shipped task) and with both jittered by up to 0.05 per coordinate: with
   jitter, the state at the split carries the small offsets of the start, which BC can turn into a
   side, so the fixed start is what makes the modes share their states exactly.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from mimetic.envs.reach_fork import ReachForkEnv, late_swerve
from mimetic.evaluate import VAL_SEED


def expert_rows(split: float, episodes: int, delays=(0, 1, 2, 3, 4)) -> dict:
    env = ReachForkEnv(max_steps=60)
    row = {"split_distance": split}
    for delay in delays:
        runs = [late_swerve(delay, s, env, split_distance=split) for s in range(VAL_SEED, VAL_SEED + episodes)]
        wins = sum(r[0] for r in runs) / episodes
        if delay == 0:
            lengths = [r[1] for r in runs]
            row.update(expert_success=wins, min_clearance=round(min(r[2] for r in runs), 3),
                       lengths=[min(lengths), max(lengths)], split_step=runs[0][3])
        else:
            row[f"success_{delay}_steps_late"] = wins
    return row


def bc_row(jitter: float, work: Path) -> dict:
    from mimetic.algos import bc
    from mimetic.collect import collect
    from mimetic.evaluate import evaluate
    from mimetic.policies.base import PolicyActor

    opts = {"jitter": jitter} if jitter else {}
    ds = collect("reach-fork", work / f"demos-{jitter}", 100, seed=0, env_options=opts, progress=False)
    policy = bc.train(bc.Config(), ds, work / f"bc-{jitter}", progress=False)
    res = evaluate(PolicyActor(policy), "reach-fork", 100, seed=VAL_SEED, env_options=opts)
    return {"bc_defaults_jitter": jitter, "success_rate": res.success_rate, "ci95": [round(x, 4) for x in res.ci95]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--bc", action="store_true")
    p.add_argument("--out", default="benchmarks/results/reach_fork_design.jsonl")
    args = p.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = [expert_rows(s, args.episodes) for s in (0.55, 0.6, 0.65, 0.7)]
    if args.bc:
        with tempfile.TemporaryDirectory() as work:
            rows += [bc_row(j, Path(work)) for j in (0.0, 0.05)]
    with open(args.out, "a") as f:
        for r in rows:
            f.write(json.dumps({**r, "commit": commit, "seeds": f"{VAL_SEED}.."}) + "\n")
            print(json.dumps(r))


if __name__ == "__main__":
    main()
