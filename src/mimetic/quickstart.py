"""`mimetic quickstart`: the whole spine on the built-in `reach` task in about a minute.

Collects 50 expert demonstrations, trains behavioral cloning, evaluates expert and BC on the
same 100 evaluation seeds and prints a table.
"""

from __future__ import annotations

import time
from pathlib import Path

from mimetic.errors import MimeticError

ENV = "reach"


def quickstart(out: str | Path | None = None, *, demos: int = 50, episodes: int = 100, steps: int = 3000,
               progress: bool = True) -> dict:
    from mimetic.algos import bc
    from mimetic.collect import collect
    from mimetic.envs import make_expert
    from mimetic.evaluate import evaluate
    from mimetic.policies.base import PolicyActor

    if out is None:
        out = Path(f"mimetic-quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise MimeticError(f"{out} exists and is not empty: quickstart never overwrites; pass another --out")
    t0 = time.perf_counter()
    print(f"[1/3] collecting {demos} expert demonstrations of {ENV!r} -> {out / 'demos'}")
    ds = collect(ENV, out / "demos", demos, seed=0, progress=progress)
    print(f"[2/3] training behavioral cloning ({steps} steps) -> {out / 'bc'}")
    policy = bc.train(bc.Config(steps=steps), ds, out / "bc", progress=progress)
    print(f"[3/3] evaluating expert and BC on the same {episodes} evaluation seeds")
    rows = {
        "expert": evaluate(make_expert(ENV), ENV, episodes),
        "bc": evaluate(PolicyActor(policy), ENV, episodes),
    }
    print()
    print(f"| policy | success | 95% CI | mean return | mean length |")
    print(f"|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r.success_rate:.2f} | [{r.ci95[0]:.2f}, {r.ci95[1]:.2f}] | {r.mean_return:.2f} | {r.mean_length:.1f} |")
    print(f"\n{ENV}: {demos} demos, {episodes} evaluation episodes, {time.perf_counter() - t0:.0f} s in all. "
          f"Evaluate again with: mimetic eval {out / 'bc'} --episodes 100")
    return {k: v.to_json() for k, v in rows.items()}
