"""Evaluation throughput on a rendering Meta-World task: in this process vs Ray workers (issue 13).

    python benchmarks/ray_throughput.py [--task reach-v3] [--episodes 128] [--ray-cpus 2] \\
        [--out benchmarks/results/ray_throughput]

The scripted expert on `metaworld/<task>` with camera corner4 at 84x84 (the image protocol's rendering), the
same seeds for every engine: in process with one environment process (`workers=1`), with the local worker pool
(`workers=2`), and as Ray tasks on a local Ray of `--ray-cpus` CPUs. Episodes per second over the evaluation
call alone; Ray's start-up is timed separately. The success rates must be identical (same episodes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    from mimetic.envs import make_expert
    from mimetic.evaluate import evaluate
    from mimetic.shards import RayBackend

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="reach-v3")
    p.add_argument("--episodes", type=int, default=128)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--ray-cpus", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/ray_throughput")
    args = p.parse_args()
    env, options = f"metaworld/{args.task}", {"cameras": "corner4", "image_size": 84}
    rows = []

    def run(name, **kw):
        t = time.perf_counter()
        res = evaluate(make_expert(env, **options), env, args.episodes, env_options=options, num_envs=args.num_envs, **kw)
        s = time.perf_counter() - t
        rows.append({"engine": name, "episodes": res.episodes, "seconds": round(s, 1), "episodes_per_s": round(res.episodes / s, 3),
                     "success_rate": res.success_rate, "mean_length": res.mean_length})
        print(json.dumps(rows[-1]), flush=True)

    run("in process, 1 env process", workers=1)
    run("local worker pool, 2 processes", workers=2)
    backend = RayBackend(num_cpus=args.ray_cpus)
    t = time.perf_counter()
    backend.connect()
    startup = round(time.perf_counter() - t, 1)
    run(f"Ray, {args.ray_cpus} CPUs", backend=backend)
    backend.close()
    base = rows[0]["episodes_per_s"]
    lines = [f"| engine | episodes | s | episodes / s | ratio | success |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['engine']} | {r['episodes']} | {r['seconds']} | {r['episodes_per_s']} | {r['episodes_per_s'] / base:.2f} | "
              f"{r['success_rate']:.2f} |" for r in rows]
    lines.append(f"\nRay start-up (not counted above): {startup} s.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"command": "python benchmarks/ray_throughput.py " + " ".join(sys.argv[1:]),
                                                    "cpu_count": os.cpu_count(), "ray_startup_s": startup, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
