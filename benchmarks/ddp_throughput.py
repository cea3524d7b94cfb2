"""Training throughput with 1 and N DDP processes on this machine (issue 13): `mimetic train --nproc N`.

    python benchmarks/ddp_throughput.py [--nproc 1 2] [--steps 60] [--out benchmarks/results/ddp_throughput]

Two policies, each at one global batch for every N (the global batch means the same whatever N):
- state: BC (MLP 3x256) on `reach`'s state, batch 256;
- visual: BC with the default conv encoder on `reach` with the `top` camera at 84x84 and the
  position/velocity state, batch 64.
Samples per second come from the trainer's own clock in metrics.jsonl: the steps between the first and the
last logged row (so start-up, imports and the process launch are not counted), times the global batch,
over the time between them. The ratio N / 1 is the figure; both are measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


POLICIES = {  # name: (collect env options, global batch)
    "state": ({}, 256),
    "visual": ({"cameras": "top", "state": "proprio", "image_size": 84}, 64),
}


def samples_per_s(run: Path, batch: int) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0], rows[-1]
    return (last["step"] - first["step"]) * batch / (last["time_s"] - first["time_s"])


def main() -> None:
    from mimetic.collect import collect

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--out", default="benchmarks/results/ddp_throughput")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ddp-throughput-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rows = []
    for name, (options, batch) in POLICIES.items():
        data = work / f"{name}-demos"
        collect("reach", data, 20, seed=0, env_options=options, progress=False)
        for n in args.nproc:
            run = work / f"{name}-{n}"
            cmd = [sys.executable, "-m", "mimetic", "--threads", "1", "-q", "train", "bc", "--data", str(data),
                   "--out", str(run), "--steps", str(args.steps), "--batch-size", str(batch),
                   "--log-every", str(args.steps // 6), "--val-fraction", "0", "--nproc", str(n)]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            rows.append({"policy": name, "nproc": n, "global_batch": batch, "steps": args.steps,
                         "samples_per_s": round(samples_per_s(run, batch), 1), "wall_s": round(time.perf_counter() - t, 1)})
            print(json.dumps(rows[-1]), flush=True)
    base = {r["policy"]: r["samples_per_s"] for r in rows if r["nproc"] == args.nproc[0]}
    lines = ["| policy | global batch | processes | samples / s | ratio to " + f"{args.nproc[0]} |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['policy']} | {r['global_batch']} | {r['nproc']} | {r['samples_per_s']} | "
                     f"{r['samples_per_s'] / base[r['policy']]:.2f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"command": "python benchmarks/ddp_throughput.py " + " ".join(sys.argv[1:]),
                                                    "cpu_count": os.cpu_count(), "rows": rows}, indent=1))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
