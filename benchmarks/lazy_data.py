"""Training on a camera dataset larger than the frame cache: peak memory and samples/s, eager vs lazy.

    python benchmarks/lazy_data.py [--frames 5000 20000] [--size 96] [--cache-mb 64] [--steps 300] [--out DIR]
    python benchmarks/lazy_data.py --quick        # a smoke check: tiny datasets, a few steps

Builds (once each, in --out) video camera datasets whose decoded frames are several times --cache-mb
(default 5000 and 20000 frames of 96x96x3 = 132 and 527 MiB against a 64 MiB cache: 2x and 8x), then
trains the same BC policy (conv encoder, n_obs_steps 2, batch 64) on each in a fresh process per mode:

- eager: `Dataset.load(root, lazy=False)`: every frame decoded into memory first;
- lazy:  `Dataset.load(root, lazy=True, frame_cache_mb=CACHE)`: frames decoded on demand through the cache.

Per mode: peak resident memory of the process (VmHWM) and its growth over the process right before loading
(torch and the policy are imported by then), load time, training samples/s (the training loop's own clock,
from metrics.jsonl), and for lazy the frame cache's peak bytes and hit rate. Run it on an otherwise idle
machine. Peak memory against dataset size: the lazy rows stay flat, the eager ones grow with the frames.
Results: benchmarks/results/lazy_data.json and .md (or --results PREFIX).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "lazy_data"
CAM = "observation.images.top"


def vm_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MiB (Linux)."""
    m = re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(m.group(1)) / 1024 if m else float("nan")


def build(root: Path, frames: int, size: int, episode_len: int, codec: str) -> None:
    """A camera + state dataset: moving blocks on a gradient (compresses like a simple scene), written in
    appends of 20 episodes (several video and data files, as `collect` writes them)."""
    from mimetic.data import Dataset, Episode

    if (root / "meta/info.json").exists():
        ds = Dataset.load(root, lazy=True, frame_cache_mb=1)
        if ds.num_frames == frames and ds.features[CAM].shape == (size, size, 3):
            return
        raise SystemExit(f"{root} holds another dataset ({ds}); choose another --out")
    rng = np.random.default_rng(0)
    n_eps = max(1, frames // episode_len)
    grad = np.linspace(0, 200, size).astype(np.uint8)
    ds, batch = None, []
    for e in range(n_eps):
        T = episode_len if e < n_eps - 1 else frames - episode_len * (n_eps - 1)
        img = np.zeros((T, size, size, 3), np.uint8)
        img[..., 0] = grad[None, None, :]
        img[..., 1] = grad[None, :, None]
        pos = rng.uniform(0, size - size // 4, 2) + np.cumsum(rng.normal(0, 1, (T, 2)), 0)
        pos = np.clip(pos, 0, size - size // 4).astype(int)
        for t in range(T):
            y, x = pos[t]
            img[t, y:y + size // 4, x:x + size // 4] = (255, 40 * (e % 6), 0)
        state = np.concatenate([pos / size, np.full((T, 2), e % 7 / 7)], 1)
        action = np.diff(np.concatenate([pos, pos[-1:]]), axis=0) / 4.0
        batch.append(Episode({"observation.state": state, CAM: img}, np.clip(action, -1, 1), np.zeros(T),
                             np.arange(T) == T - 1))
        if len(batch) == 20 or e == n_eps - 1:
            if ds is None:
                ds = Dataset.create(root, batch, fps=10, image_storage="video", video_codec=codec)
            else:
                ds.append(batch)
            batch = []
            print(f"  built {ds.num_frames}/{frames} frames", flush=True)


def child(args) -> None:
    """One mode on one dataset, in its own process: load, train, measure; print one JSON line."""
    import torch

    from mimetic.algos import bc
    from mimetic.data import Dataset

    torch.set_num_threads(args.threads)
    before = vm_mb("VmRSS")
    t0 = time.perf_counter()
    ds = Dataset.load(args.data, lazy=args.child == "lazy", frame_cache_mb=args.cache_mb)
    load_s = time.perf_counter() - t0
    cfg = bc.Config(hidden=[256, 256], steps=args.steps, batch_size=args.batch_size, n_obs_steps=2, val_fraction=0.0,
                    log_every=args.steps, ckpt_every=args.steps, device="cpu", seed=0)
    run = args.data.parent / f"run-{args.data.name}-{args.child}"
    bc.train(cfg, ds, run, progress=False)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_s = rows[-1]["time_s"]
    cache = ds.frame_cache
    print(json.dumps({
        "mode": args.child, "frames": ds.num_frames, "load_s": round(load_s, 2), "train_s": round(train_s, 2),
        "samples_per_s": round(args.steps * args.batch_size / train_s, 1), "rss_before_load_mb": round(before, 1),
        "peak_rss_mb": round(vm_mb("VmHWM"), 1), "peak_growth_mb": round(vm_mb("VmHWM") - before, 1),
        "cache_peak_mb": round(cache.peak_nbytes / 2 ** 20, 2) if cache else None,
        "cache_hit_rate": round(cache.hits / max(1, cache.hits + cache.misses), 3) if cache else None,
    }))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, nargs="+", default=[5000, 20000], help="dataset sizes (one dataset each)")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--episode-len", type=int, default=100)
    p.add_argument("--codec", default="av1")
    p.add_argument("--cache-mb", type=float, default=64.0)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--modes", nargs="+", default=["eager", "lazy"])
    p.add_argument("--out", type=Path, default=Path("/tmp/mimetic-lazy-bench"))
    p.add_argument("--results", type=Path, default=RESULTS, help="PREFIX: writes PREFIX.json and PREFIX.md")
    p.add_argument("--quick", action="store_true", help="smoke check: 300 and 600 frames of 32x32, a 0.5 MiB cache, 5 steps")
    p.add_argument("--child", choices=["eager", "lazy"], help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.frames, args.size, args.episode_len, args.cache_mb, args.steps, args.batch_size = [300, 600], 32, 50, 0.5, 5, 16
        args.out = args.out.with_name(args.out.name + "-quick")
        args.results = Path(str(args.results) + "_quick")
    if args.child:
        return child(args)
    rows, datasets = [], []
    for frames in args.frames:
        decoded_mb = frames * args.size * args.size * 3 / 2 ** 20
        print(f"dataset: {frames} frames of {args.size}x{args.size}x3 = {decoded_mb:.0f} MiB decoded, "
              f"cache {args.cache_mb:g} MiB ({decoded_mb / args.cache_mb:.1f}x)", flush=True)
        data = args.out / f"data-{frames}-{args.size}-{args.codec}"
        t0 = time.perf_counter()
        build(data, frames, args.size, args.episode_len, args.codec)
        disk_mb = sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) / 2 ** 20
        datasets.append({"frames": frames, "decoded_mb": round(decoded_mb, 1), "disk_mb": round(disk_mb, 1),
                         "build_s": round(time.perf_counter() - t0, 1)})
        for mode in args.modes:
            cmd = [sys.executable, __file__, "--child", mode, "--data", str(data), "--cache-mb", str(args.cache_mb),
                   "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{mode} on {data} failed:\n{out.stderr[-3000:]}")
            rows.append({**json.loads(out.stdout.strip().splitlines()[-1]), "decoded_mb": round(decoded_mb, 1),
                         "disk_mb": round(disk_mb, 1)})
            print(json.dumps(rows[-1]), flush=True)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
              "cpus": os.cpu_count(), "load": os.getloadavg()[0], "size": args.size, "codec": args.codec,
              "cache_mb": args.cache_mb, "steps": args.steps, "batch_size": args.batch_size, "threads": args.threads,
              "datasets": datasets, "rows": rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    Path(str(args.results) + ".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"# Training on datasets larger than the frame cache ({result['date']})", "",
          f"Camera frames {args.size}x{args.size}x3 ({args.codec}), frame cache {args.cache_mb:g} MiB; BC, conv encoder, "
          f"n_obs_steps 2, batch {args.batch_size}, {args.steps} steps, {args.threads} torch thread(s); "
          f"{os.cpu_count()} CPUs, load average {result['load']:.1f} at the end. Peak RSS: the process's VmHWM; "
          f"growth: over its memory right before `Dataset.load` (torch imported).", "",
          "| frames | decoded MiB | on disk MiB | mode | load s | samples/s | peak RSS MiB | growth MiB | "
          "cache peak MiB | cache hit rate |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        dash = lambda v: "-" if v is None else v  # noqa: E731
        md.append(f"| {r['frames']} | {r['decoded_mb']} | {r['disk_mb']} | {r['mode']} | {r['load_s']} | "
                  f"{r['samples_per_s']} | {r['peak_rss_mb']} | {r['peak_growth_mb']} | {dash(r['cache_peak_mb'])} | "
                  f"{dash(r['cache_hit_rate'])} |")
    Path(str(args.results) + ".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
