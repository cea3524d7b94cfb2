"""The camera data path, measured: rendering with environment workers, collecting image demonstrations,
dataset size on disk, and decoding speed against a training step.

    python benchmarks/camera_data_path.py [--task pick-place-v3] [--quick]

Rows (benchmarks/results/camera_data_path.json and .md):
1. render + step throughput (frames/s) of a Meta-World task with one camera (corner4), state=proprio,
   the scripted expert acting, at 84x84 and 128x128, with 1 environment worker (in-process) and with
   2 worker processes (both cores): `evaluate(..., workers=W)`, the same seeds, so the same frames;
2. time to collect 10 image demonstrations (`mimetic.collect`, corner4 84x84, proprio, video storage);
3. dataset size per 1000 frames: AV1 video (LeRobot's default), H.264 video, PNG images, all written from
   the same frames as rendered (collected with PNG storage), with their mean absolute error;
4. decoding: frames/s of `Dataset.load` (decodes every frame of every camera into uint8 memory) and of
   `video.decode_frames` at random indices, beside the cost of one training step of a small conv encoder
   (batch 64, 84x84: what decoding must outpace so training never waits).
Run it on an otherwise idle machine; it takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def render_rows(task: str, episodes: int, sizes, workers_list) -> list[dict]:
    from mimetic.envs import make_expert
    from mimetic.evaluate import evaluate

    rows = []
    for size in sizes:
        opts = {"cameras": "corner4", "image_size": size, "state": "proprio"}
        for w in workers_list:
            expert = make_expert(f"metaworld/{task}", **opts)
            t = time.perf_counter()
            res = evaluate(expert, f"metaworld/{task}", episodes, seed=0, env_options=opts, num_envs=4, workers=w)
            dt = time.perf_counter() - t
            frames = int(round(res.mean_length * res.episodes))
            rows.append({"row": "render+step", "task": task, "image_size": size, "workers": w, "episodes": episodes,
                         "frames": frames, "seconds": round(dt, 2), "frames_per_s": round(frames / dt, 1),
                         "expert_success": res.success_rate})
            print(rows[-1], flush=True)
    return rows


def collect_row(task: str, tmp: Path, episodes: int = 10, image_storage: str = "video") -> tuple[dict, Path]:
    from mimetic.collect import collect

    out = tmp / ("collect" if image_storage == "video" else f"collect-{image_storage}")
    opts = {"cameras": "corner4", "image_size": 84, "state": "proprio"}
    t = time.perf_counter()
    ds = collect(f"metaworld/{task}", out, episodes, seed=0, env_options=opts, progress=False, image_storage=image_storage)
    dt = time.perf_counter() - t
    row = {"row": "collect", "task": task, "episodes": ds.num_episodes, "frames": ds.num_frames, "seconds": round(dt, 1),
           "expert_success": float(ds.episode_success().mean()), "image_size": 84, "camera": "corner4",
           "storage": image_storage}
    print(row, flush=True)
    return row, out


def size_rows(src: Path, tmp: Path) -> list[dict]:
    from mimetic.data import Dataset

    ds = Dataset.load(src)
    eps = list(ds.episodes())
    rows = []
    for storage, codec in (("video", "av1"), ("video", "h264"), ("png", None)):
        out = tmp / f"size-{storage}-{codec}"
        kw = {"video_codec": codec} if codec else {}
        t = time.perf_counter()
        Dataset.create(out, eps, fps=ds.fps, image_storage=storage, **kw)
        write_s = time.perf_counter() - t
        cam = dir_size(out / "videos") if storage == "video" else None
        total = dir_size(out)
        t = time.perf_counter()
        back = Dataset.load(out)
        load_s = time.perf_counter() - t
        row = {"row": "size", "storage": storage, "codec": codec, "frames": ds.num_frames,
               "bytes_per_1000_frames": int(total / ds.num_frames * 1000),
               "camera_bytes_per_1000_frames": int(cam / ds.num_frames * 1000) if cam is not None else None,
               "write_s": round(write_s, 2), "load_s": round(load_s, 2),
               "load_frames_per_s": round(ds.num_frames / load_s, 1)}
        a = back.frames(ds.image_keys[0]).astype(np.int16)  # against the frames as rendered (the PNG source)
        row["mean_abs_error_vs_source"] = round(float(np.abs(a - ds.frames(ds.image_keys[0])).mean()), 3)
        rows.append(row)
        print(row, flush=True)
    return rows


def decode_rows(src: Path) -> list[dict]:
    import torch
    from torch import nn

    from mimetic.data import Dataset
    from mimetic.data.video import decode_frames

    ds = Dataset.load(src)
    key = ds.image_keys[0]
    videos = sorted((src / "videos" / key).rglob("*.mp4"))
    rng = np.random.default_rng(0)
    idx = rng.integers(0, min(200, ds.episode_lengths()[0]), size=64)
    t = time.perf_counter()
    decode_frames(videos[0], idx)
    random_s = time.perf_counter() - t
    torch.set_num_threads(1)
    enc = nn.Sequential(nn.Conv2d(3, 32, 3, 2), nn.ReLU(), nn.Conv2d(32, 64, 3, 2), nn.ReLU(), nn.Conv2d(64, 64, 3, 2),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 4))
    opt = torch.optim.Adam(enc.parameters())
    frames = torch.as_tensor(ds.frames(key)[:64]).permute(0, 3, 1, 2).float() / 255
    for _ in range(2):
        loss = enc(frames).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    t = time.perf_counter()
    steps = 5
    for _ in range(steps):
        loss = enc(frames).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    step_s = (time.perf_counter() - t) / steps
    row = {"row": "decode", "random_access_64_frames_s": round(random_s, 3),
           "random_access_frames_per_s": round(64 / random_s, 1),
           "train_step_batch64_s": round(step_s, 3), "train_step_frames_per_s": round(64 / step_s, 1)}
    print(row, flush=True)
    return [row]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="pick-place-v3")
    ap.add_argument("--episodes", type=int, default=8, help="episodes per render row")
    ap.add_argument("--quick", action="store_true", help="84x84 only, fewer episodes (a smoke run)")
    args = ap.parse_args()
    sizes = (84,) if args.quick else (84, 128)
    episodes = 4 if args.quick else args.episodes
    tmp = Path(tempfile.mkdtemp(prefix="mimetic-camera-bench-"))
    try:
        rows = render_rows(args.task, episodes, sizes, (1, 2))
        row, src = collect_row(args.task, tmp)
        rows.append(row)
        row, _ = collect_row(args.task, tmp, image_storage="png")  # lossless frames as rendered: the size rows' source
        rows.append(row)
        rows += size_rows(tmp / "collect-png", tmp)
        rows += decode_rows(src)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta = {"command": "python benchmarks/camera_data_path.py" + (" --quick" if args.quick else ""),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "MUJOCO_GL": os.environ.get("MUJOCO_GL")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "camera_data_path.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [f"# Camera data path\n", f"Command: `{meta['command']}` ({meta['machine']}, MUJOCO_GL={meta['MUJOCO_GL']})\n"]
    for kind in ("render+step", "collect", "size", "decode"):
        sel = [r for r in rows if r["row"] == kind]
        if not sel:
            continue
        keys = [k for k in sel[0] if k != "row"]
        lines += [f"\n## {kind}\n", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(r.get(k)) for k in keys) + " |" for r in sel]
    (RESULTS / "camera_data_path.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
