"""Meta-World behavioral cloning benchmark (../shared/BENCHMARK-PROTOCOL.md).

For each task: 10 scripted demonstrations (seeds 0..), BC with each head trained on all of them
(final checkpoint), 50 evaluation episodes on seeds 1_000_000.. (disjoint from the demos, the
same for every head), and the expert's own success on those evaluation seeds.

    python benchmarks/metaworld_bc.py --out benchmarks/results/metaworld_bc.jsonl

Results are appended one JSON line per (task, policy) so an interrupted run resumes where it
stopped; the markdown table is printed at the end (and with --table-only from the JSONL file).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

GROUPS = {
    "easy": ["door-open", "drawer-open", "button-press-topdown", "window-open", "reach"],
    "medium": ["peg-insert-side", "coffee-push", "sweep-into", "basketball"],
    "hard": ["pick-place", "assembly", "push"],
    "very hard": ["shelf-place", "stick-pull"],
}
DEV_SUITE = [f"{t}-v3" for ts in GROUPS.values() for t in ts]
GROUP_OF = {f"{t}-v3": g for g, ts in GROUPS.items() for t in ts}


def done_keys(path: Path) -> set[tuple[str, str]]:
    if not path.exists():
        return set()
    return {(r["task"], r["policy"]) for r in map(json.loads, path.read_text().splitlines())}


def run(args) -> None:
    from mimetic.algos import bc
    from mimetic.collect import collect
    from mimetic.envs import make_expert
    from mimetic.evaluate import EVAL_SEED, evaluate
    from mimetic.policies.base import PolicyActor

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mw-bc-"))
    for task in args.tasks:
        env = f"metaworld/{task}"
        done = done_keys(out)  # re-read: several processes may share the file, one task each at a time
        todo = [h for h in ["expert"] + args.heads if (task, h) not in done]
        if not todo:
            continue
        ds = collect(env, work / task / "demos", args.demos, seed=0, only_success=True, progress=False)
        for head in todo:
            t0 = time.perf_counter()
            if head == "expert":
                actor, train_s = make_expert(env), 0.0
            else:
                cfg = bc.Config(head=head, steps=args.steps, hidden=args.hidden, val_fraction=0.0, seed=args.seed,
                                log_every=args.steps)
                policy = bc.train(cfg, ds, work / task / head, progress=False)
                train_s = time.perf_counter() - t0
                actor = PolicyActor(policy)
            res = evaluate(actor, env, args.episodes, seed=EVAL_SEED, num_envs=args.num_envs)
            row = {"task": task, "group": GROUP_OF.get(task, "other"), "policy": head,
                   "success_rate": res.success_rate, "ci95": list(res.ci95), "episodes": res.episodes,
                   "mean_length": res.mean_length, "demos": ds.num_episodes, "steps": args.steps if head != "expert" else 0,
                   "train_s": round(train_s, 1), "total_s": round(time.perf_counter() - t0, 1)}
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def load_or_collect_demos(env: str, root: Path, episodes: int, env_options: dict | None = None, expert_noise: float = 0.0,
                          image_storage: str | None = None):
    """The successful scripted demonstrations (seeds 0..) in `root`, collected there on first use (`expert_noise`:
    DART demonstrations, see `mimetic collect --expert-noise`; `image_storage`: "video" or "png" frames)."""
    from mimetic.collect import collect
    from mimetic.data import Dataset

    if (root / "meta/info.json").exists():
        return Dataset.load(root)
    return collect(env, root, episodes, seed=0, only_success=True, progress=False, env_options=env_options,
                   expert_noise=expert_noise, image_storage=image_storage)


def load_rows(path: Path, rename: dict[str, str] | None = None) -> list[dict]:
    """The JSON lines of a results file, with policy names mapped through `rename`."""
    rows = [json.loads(l) for l in path.read_text().splitlines()]
    return [{**r, "policy": (rename or {}).get(r["policy"], r["policy"])} for r in rows]


def table(rows: list[dict], policies: list[str]) -> str:
    by = {(r["task"], r["policy"]): r for r in rows}
    tasks = [t for t in DEV_SUITE if any((t, p) in by for p in policies)] + sorted(
        {r["task"] for r in rows} - set(DEV_SUITE))
    lines = ["| task | group | " + " | ".join(policies) + " |", "|---|---|" + "---|" * len(policies)]
    for t in tasks:
        cells = []
        for p in policies:
            r = by.get((t, p))
            cells.append("–" if r is None else f"{r['success_rate']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]")
        lines.append(f"| {t} | {GROUP_OF.get(t, 'other')} | " + " | ".join(cells) + " |")
    lines += ["", "| group | tasks | " + " | ".join(policies) + " |", "|---|---|" + "---|" * len(policies)]
    for g in list(GROUPS) + ["all"]:
        ts = [t for t in tasks if g == "all" or GROUP_OF.get(t) == g]
        cells = []
        for p in policies:
            vals = [by[(t, p)]["success_rate"] for t in ts if (t, p) in by]
            partial = f" ({len(vals)}/{len(ts)} tasks)" if 0 < len(vals) < len(ts) else ""
            cells.append(f"{np.mean(vals):.2f}{partial}" if vals else "–")
        lines.append(f"| {g} | {len(ts)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=DEV_SUITE)
    p.add_argument("--heads", nargs="+", default=["deterministic", "gaussian", "gmm"])
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--num-envs", type=int, default=25)
    p.add_argument("--out", default="benchmarks/results/metaworld_bc.jsonl")
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    if not args.table_only:
        run(args)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"\ncommit {commit}\n")
    print(table(load_rows(Path(args.out)), ["expert"] + args.heads))


if __name__ == "__main__":
    main()
