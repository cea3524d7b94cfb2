"""LeRobot's side of the mimetic <-> LeRobot video-dataset check.

Runs under the separate LeRobot venv (see README.md beside this file), never under mimetic's:

    /work/lerobot-venv/bin/python benchmarks/lerobot_interop/lerobot_side.py write OUT --episodes 3 --frames 40 --size 64 --fps 10
    /work/lerobot-venv/bin/python benchmarks/lerobot_interop/lerobot_side.py read ROOT --out FRAMES.npz [--time]

`write` records a dataset with LeRobot's own writer (LeRobotDataset.create(use_videos=True), add_frame,
save_episode, finalize): observation.state float32[4], action float32[2] and one camera
observation.images.top (S x S x 3, stored as MP4 by LeRobot's encoder, its defaults: libsvtav1,
yuv420p, g=2, crf=30). The uint8 frames it was fed are saved to OUT.raw.npz.

`read` loads ROOT with LeRobotDataset(repo_id="local/x", root=ROOT) offline, reads every item in order
and saves every camera as uint8 (N, H, W, 3) (LeRobot returns float CHW in [0, 1]), observation.state,
action and episode_index to FRAMES.npz. With --time it reports the frames/s of that loop (median of
--repeat passes) and of LeRobot's decode_video_frames called once per episode with all its timestamps.
Prints one JSON line on stdout with what it did.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local datasets only, never the hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration at every encode otherwise

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

CAM = "observation.images.top"


def make_frames(n: int, size: int, seed: int, width: int | None = None) -> np.ndarray:
    """Deterministic frames whose content changes every frame: a drifting colour gradient, a moving
    filled circle and a moving square of per-seed colours, plus a little fixed noise texture.
    Frames are size x size, or size (height) x width."""
    h, w = size, width or size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / max(h - 1, 1), xx / max(w - 1, 1)
    c1, c2 = rng.integers(40, 256, 3), rng.integers(40, 256, 3)
    phase, speed = rng.uniform(0, 2 * np.pi, 4), rng.uniform(0.05, 0.2, 4)
    texture = rng.integers(-8, 9, (h, w, 3))
    out = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        s = t / max(n - 1, 1)
        img = np.stack([
            120 * xx + 60 * s,
            120 * yy + 40 * np.sin(2 * np.pi * s),
            100 * (1 - xx) * yy + 50,
        ], axis=-1)
        cx = 0.5 + 0.35 * np.cos(phase[0] + speed[0] * t * 2 * np.pi)
        cy = 0.5 + 0.35 * np.sin(phase[1] + speed[1] * t * 2 * np.pi)
        r = 0.15
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = c1
        sx = 0.5 + 0.3 * np.sin(phase[2] + speed[2] * t * 2 * np.pi)
        sy = 0.5 + 0.3 * np.cos(phase[3] + speed[3] * t * 2 * np.pi)
        img[(np.abs(xx - sx) < 0.1) & (np.abs(yy - sy) < 0.1)] = c2
        out[t] = np.clip(img + texture, 0, 255).astype(np.uint8)
    return out


def cmd_write(a) -> dict:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    out = Path(a.out)
    if out.exists():
        if not a.overwrite:
            sys.exit(f"{out} exists (pass --overwrite to replace it)")
        shutil.rmtree(out)
    features = {
        "observation.state": {"dtype": "float32", "shape": (4,), "names": None},
        "action": {"dtype": "float32", "shape": (2,), "names": None},
        CAM: {"dtype": "video", "shape": (a.size, a.width or a.size, 3), "names": ["height", "width", "channels"]},
    }
    ds = LeRobotDataset.create(repo_id="local/x", fps=a.fps, features=features, root=out, use_videos=True,
                               vcodec=a.vcodec, streaming_encoding=a.streaming)
    raw_frames, states, actions, ep_index = [], [], [], []
    t0 = time.perf_counter()
    for e in range(a.episodes):
        frames = make_frames(a.frames, a.size, seed=a.seed * 1000 + e, width=a.width)
        rng = np.random.default_rng(a.seed * 1000 + e + 7)
        st = rng.standard_normal((a.frames, 4)).astype(np.float32)
        ac = rng.uniform(-1, 1, (a.frames, 2)).astype(np.float32)
        for t in range(a.frames):
            ds.add_frame({"observation.state": st[t], "action": ac[t], CAM: frames[t], "task": "interop"})
        ds.save_episode()
        raw_frames.append(frames)
        states.append(st)
        actions.append(ac)
        ep_index.append(np.full(a.frames, e, np.int64))
    ds.finalize()
    secs = time.perf_counter() - t0
    np.savez(str(out) + ".raw.npz", **{CAM: np.concatenate(raw_frames), "observation.state": np.concatenate(states),
                                       "action": np.concatenate(actions), "episode_index": np.concatenate(ep_index)})
    return {"cmd": "write", "root": str(out), "episodes": a.episodes, "frames": a.frames * a.episodes,
            "size": a.size, "width": a.width or a.size, "fps": a.fps, "vcodec": ds.vcodec, "streaming": a.streaming, "write_s": round(secs, 3),
            "raw": str(out) + ".raw.npz"}


def _read_all(ds, cams):
    """Every item of `ds` in order, as LeRobot's __getitem__ returns it, cameras back to uint8 HWC."""
    import torch

    cols: dict[str, list] = {k: [] for k in cams + ["observation.state", "action", "episode_index", "timestamp"]}
    for i in range(len(ds)):
        item = ds[i]
        for k in cams:
            x = item[k]  # float32 CHW in [0, 1]
            cols[k].append((x * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
        for k in ("observation.state", "action", "episode_index", "timestamp"):
            if k in item:
                cols[k].append(np.asarray(item[k]))
    return {k: np.stack(v) for k, v in cols.items() if v}


def _decode_batches(ds, cams) -> int:
    """Every frame decoded with LeRobot's own decode_video_frames, one call per episode and camera
    (all of the episode's timestamps at once, as a delta_timestamps window does): the decoder's
    throughput without the per-item overhead of __getitem__."""
    from lerobot.datasets.video_utils import decode_video_frames

    n = 0
    ts_all = np.asarray(ds.hf_dataset.with_format(None)["timestamp"], np.float64).reshape(-1)
    ep_all = np.asarray(ds.hf_dataset.with_format(None)["episode_index"]).reshape(-1)
    for e in range(ds.meta.total_episodes):
        ts = ts_all[ep_all == e]
        ep = ds.meta.episodes[e]
        for k in cams:
            path = ds.root / ds.meta.get_video_file_path(e, k)
            frames = decode_video_frames(path, [ep[f"videos/{k}/from_timestamp"] + t for t in ts.tolist()],
                                         ds.tolerance_s, ds.video_backend)
            n += len(frames)
    return n


def cmd_read(a) -> dict:
    import lerobot
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if a.threads:
        torch.set_num_threads(a.threads)
    t_load = time.perf_counter()
    ds = LeRobotDataset(repo_id="local/x", root=a.root, video_backend=a.backend)
    t_load = time.perf_counter() - t_load
    cams = list(ds.meta.camera_keys)
    n = len(ds)
    times = []
    for r in range(max(1, a.repeat if a.time else 1)):
        t0 = time.perf_counter()
        arrays = _read_all(ds, cams)
        times.append(time.perf_counter() - t0)
    np.savez(a.out, **arrays)
    res = {"cmd": "read", "root": str(a.root), "frames": n, "episodes": ds.num_episodes, "cameras": cams,
           "backend": ds.video_backend, "lerobot": getattr(lerobot, "__version__", None),
           "torch": torch.__version__, "load_s": round(t_load, 3), "out": a.out}
    if a.time:
        res["getitem_s"] = [round(t, 4) for t in times]
        res["getitem_frames_per_s"] = round(n / float(np.median(times)), 1)
        btimes = []
        for r in range(max(1, a.repeat)):
            t0 = time.perf_counter()
            nb = _decode_batches(ds, cams)
            btimes.append(time.perf_counter() - t0)
        res["batch_decode_s"] = [round(t, 4) for t in btimes]
        res["batch_decode_frames_per_s"] = round(nb / float(np.median(btimes)), 1)
    return res


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="record a video dataset with LeRobot's writer")
    w.add_argument("out")
    w.add_argument("--episodes", type=int, default=3)
    w.add_argument("--frames", type=int, default=40, help="frames per episode")
    w.add_argument("--size", type=int, default=64, help="frame height (and width unless --width)")
    w.add_argument("--width", type=int, default=None, help="frame width (default: --size)")
    w.add_argument("--fps", type=int, default=10)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--vcodec", default="libsvtav1", help="LeRobot's vcodec (its default: libsvtav1)")
    w.add_argument("--streaming", action="store_true", help="streaming_encoding=True (encode while recording, no PNGs)")
    w.add_argument("--overwrite", action="store_true")
    r = sub.add_parser("read", help="read every item with LeRobotDataset")
    r.add_argument("root")
    r.add_argument("--out", required=True)
    r.add_argument("--time", action="store_true")
    r.add_argument("--backend", default=None, help="video_backend: torchcodec (LeRobot's default) or pyav")
    r.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    r.add_argument("--repeat", type=int, default=3, help="timed passes with --time (the median is reported)")
    a = p.parse_args(argv)
    res = cmd_write(a) if a.cmd == "write" else cmd_read(a)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
