"""Camera frame storage: encode / decode throughput, file size and error of MP4 (av1, h264) and PNG.

Frames look like a rendered scene (smooth shaded background, a floor, three shapes moving along
smooth paths), not noise, at the sizes imitation learning uses (84x84, 128x128). Each codec runs at
LeRobot's defaults (yuv420p, g=2, crf=30) through `mimetic.data.video`, so the figures are the cost of
what a dataset with video features does. Reported per size and codec:

- encode frames/s (`encode_video`, including the atomic write), decode frames/s (`decode_video`),
- random access frames/s (`decode_frames` on 200 random indices, in random order), and the cost of
  one `decode_frames(path, [i])` call,
- ms to append a 100-frame episode to the file (`concat_videos`, packets copied, nothing re-encoded),
- decode frames/s without decoder threads (PyAV's default thread_type), to show what "AUTO" gives,
- bytes per 1000 frames, mean absolute error against the source frames (0..255 scale).

PNG stores each frame as its own image (`encode_png`), as LeRobot's "image" features do.

    python benchmarks/video_io.py            # ~1 minute; writes benchmarks/results/video_io.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np

from mimetic.data import video
from mimetic.data.video import CODECS, concat_videos, decode_frames, decode_png, decode_video, encode_png, encode_video

RESULTS = Path(__file__).parent / "results"
COMMAND = "python benchmarks/video_io.py"
FPS = 30
EPISODE = 100  # frames in the episode appended to the file with concat_videos


def render(n: int, size: int, seed: int = 0) -> np.ndarray:
    """`n` frames of a rendered-looking scene: lit background, floor, a disc, a box and a bar moving."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) / size
    sky = np.stack([0.35 + 0.3 * v, 0.45 + 0.25 * v, 0.75 - 0.2 * v], -1)
    floor = np.stack([0.45 + 0.1 * u, 0.38 + 0.05 * u, 0.3 + 0.0 * u], -1) * (0.6 + 0.5 * v[..., None])
    base = np.where(v[..., None] > 0.6, floor, sky)
    phase = rng.uniform(0, 2 * np.pi, 6)
    frames = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        t = i / FPS
        img = base.copy()
        cx, cy = 0.5 + 0.3 * np.sin(0.7 * t + phase[0]), 0.45 + 0.15 * np.cos(1.1 * t + phase[1])
        d2 = (u - cx) ** 2 + (v - cy) ** 2
        shade = np.clip(1.0 - 8 * ((u - cx + 0.03) ** 2 + (v - cy + 0.03) ** 2), 0.3, 1.0)
        img[d2 < 0.012] = (np.array([0.9, 0.2, 0.15]) * shade[d2 < 0.012, None])
        bx, by = 0.3 + 0.2 * np.sin(0.5 * t + phase[2]), 0.7 + 0.05 * np.sin(0.9 * t + phase[3])
        box = (np.abs(u - bx) < 0.08) & (np.abs(v - by) < 0.06)
        img[box] = (0.2, 0.6, 0.3)
        angle = 0.8 * np.sin(0.4 * t + phase[4])
        along, across = (u - 0.5) * np.cos(angle) + (v - 0.2) * np.sin(angle), -(u - 0.5) * np.sin(angle) + (v - 0.2) * np.cos(angle)
        img[(np.abs(along) < 0.25) & (np.abs(across) < 0.02)] = (0.85, 0.85, 0.9)
        frames[i] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return frames


def timed(fn, *args, repeat: int = 2, **kwargs):
    """(best seconds over `repeat` calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best, out


def decode_unthreaded(path: Path, n: int) -> np.ndarray:
    """`decode_video` with PyAV's default decoder threading (SLICE) instead of "AUTO"."""
    video.THREAD_TYPE = "SLICE"
    try:
        return decode_video(path, n)
    finally:
        video.THREAD_TYPE = "AUTO"


def bench_video(frames: np.ndarray, codec: str, folder: Path, rng) -> dict:
    n = len(frames)
    path = folder / f"{codec}.mp4"
    t_enc, _ = timed(encode_video, path, frames, FPS, codec=codec, repeat=1)
    size = path.stat().st_size
    t_dec = t_plain = float("inf")
    for _ in range(3):  # interleaved, so that load from other processes hits both alike
        t, out = timed(decode_video, path, n, repeat=1)
        t_dec = min(t_dec, t)
        t_plain = min(t_plain, timed(decode_unthreaded, path, n, repeat=1)[0])
    idx = rng.integers(0, n, 200)
    t_rand, picked = timed(decode_frames, path, idx)
    assert np.array_equal(picked, out[idx]), "decode_frames disagrees with decode_video"
    singles = idx[:50].tolist()
    t_one, _ = timed(lambda: [decode_frames(path, [i]) for i in singles])
    episode = folder / f"{codec}_episode.mp4"
    encode_video(episode, frames[:EPISODE], FPS, codec=codec)
    t_append, _ = timed(concat_videos, [path, episode], path, repeat=1)  # the file grows by one episode
    assert decode_frames(path, [n + EPISODE - 1]).shape[0] == 1
    return {
        "encode_fps": n / t_enc,
        "decode_fps": n / t_dec,
        "decode_fps_no_threads": n / t_plain,
        "random_access_fps": len(idx) / t_rand,
        "one_frame_call_ms": 1000 * t_one / len(singles),
        "append_episode_ms": 1000 * t_append,
        "bytes_per_1000_frames": size * 1000 / n,
        **errors(out, frames),
    }


def errors(out: np.ndarray, frames: np.ndarray) -> dict:
    diff = out.astype(np.int16) - frames
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    return {
        "mae": float(np.abs(diff).mean()),
        "psnr_db": float(10 * np.log10(255**2 / mse)) if mse else None,  # None: lossless
        "max_abs_error": int(np.abs(diff).max()),
    }


def bench_png(frames: np.ndarray) -> dict:
    n = len(frames)
    t_enc, blobs = timed(lambda: [encode_png(f) for f in frames], repeat=1)
    t_dec, out = timed(lambda: np.stack([decode_png(b) for b in blobs]), repeat=1)
    return {
        "encode_fps": n / t_enc,
        "decode_fps": n / t_dec,
        "random_access_fps": n / t_dec,  # each frame is its own image
        "bytes_per_1000_frames": sum(map(len, blobs)) * 1000 / n,
        **errors(out, frames),
    }


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(results: list[dict]) -> str:
    head = "| size | storage | encode frames/s | decode frames/s | decode, no threads | random access frames/s | ms / one-frame call | ms to append an episode | KiB / 1000 frames | bytes / frame | MAE | PSNR dB | max error |"
    rows = [head, "|" + "---|" * 13]
    for r in results:
        no_threads = f"{r['decode_fps_no_threads']:,.0f}" if "decode_fps_no_threads" in r else "-"
        one = f"{r['one_frame_call_ms']:.2f}" if "one_frame_call_ms" in r else "-"
        append = f"{r['append_episode_ms']:.0f}" if "append_episode_ms" in r else "-"
        rows.append(
            f"| {r['size']}x{r['size']} | {r['storage']} | {r['encode_fps']:,.0f} | {r['decode_fps']:,.0f} | {no_threads} "
            f"| {r['random_access_fps']:,.0f} | {one} | {append} | {r['bytes_per_1000_frames'] / 1024:,.1f} | {r['bytes_per_1000_frames'] / 1000:,.0f} "
            f"| {r['mae']:.2f} | {'lossless' if r['psnr_db'] is None else format(r['psnr_db'], '.1f')} | {r['max_abs_error']} |"
        )
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--sizes", type=int, nargs="+", default=[84, 128])
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    results = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            frames = render(args.frames, size)
            raw = frames[0].nbytes * 1000
            for codec in ("av1", "h264"):
                r = bench_video(frames, codec, Path(tmp), rng)
                results.append({"size": size, "storage": f"{codec} ({CODECS[codec]})", **r, "ratio_vs_raw": raw / r["bytes_per_1000_frames"]})
                print(table(results[-1:]).splitlines()[-1], flush=True)
            r = bench_png(frames)
            results.append({"size": size, "storage": "png (Pillow)", **r, "ratio_vs_raw": raw / r["bytes_per_1000_frames"]})
            print(table(results[-1:]).splitlines()[-1], flush=True)
    meta = {
        "command": COMMAND + ("" if args.frames == 3000 and args.sizes == [84, 128] else f" --frames {args.frames} --sizes {' '.join(map(str, args.sizes))}"),
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "commit": commit(),
        "frames": args.frames,
        "fps": FPS,
        "settings": "pix_fmt yuv420p, g=2, crf=30 (LeRobot's defaults)",
        "pyav": av.__version__,
        "ffmpeg_libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "video_io.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    md = [
        "# Camera frame storage: MP4 (av1, h264) and PNG",
        "",
        f"Command: `{meta['command']}` (benchmarks/video_io.py), run {meta['date_utc']} UTC at commit {meta['commit']},",
        f"{meta['machine']} ({meta['load_average_1min_at_end']} load average at the end: the machine is shared, so",
        f"throughputs are rough), PyAV {meta['pyav']} (libavcodec {meta['ffmpeg_libavcodec']}), {meta['seconds']} s.",
        "",
        f"{args.frames} frames of a rendered-looking scene per size at {FPS} fps, {meta['settings']}. Throughputs are",
        "frames per second: the best of 3 interleaved runs for the two decode columns, of 2 for random",
        "access, 1 for encoding. Encoding includes the atomic write; decoding returns uint8 RGB arrays.",
        "'no threads': the same decode with PyAV's default thread_type (SLICE) instead of AUTO; dav1d",
        "(av1) threads on its own either way.",
        "Random access: `decode_frames` on 200 random indices in",
        "one call; one-frame call: `decode_frames(path, [i])` alone (open, seek, decode), mean of 50.",
        f"Append: `concat_videos([file, episode], file)`, a {EPISODE}-frame episode joined to the whole file",
        "by copying packets (the file is read and rewritten; no frame is encoded again).",
        "MAE: mean absolute error against the source frames, 0..255 scale (yuv420p alone accounts for part of it);",
        "the max error is at the sharp coloured edges that yuv420p's half-resolution colour blurs.",
        "",
        table(results),
        "",
        "Raw uint8 frames take " + ", ".join(f"{s * s * 3 * 1000 / 1024:,.0f} KiB / 1000 frames at {s}x{s}" for s in args.sizes) + ".",
        "",
    ]
    (args.out / "video_io.md").write_text("\n".join(md))
    print(f"wrote {args.out / 'video_io.json'} and video_io.md in {meta['seconds']} s")


if __name__ == "__main__":
    main()
