"""mimetic <-> LeRobot 0.4.x: do video datasets written by one read back in the other, and how fast?

Runs under mimetic's venv; LeRobot runs in its own venv (see README.md beside this file) through
`lerobot_side.py`, so LeRobot never enters mimetic's environment.

(a) LeRobot's writer (LeRobotDataset.create(use_videos=True) / add_frame / save_episode / finalize,
    also with streaming_encoding=True) records synthetic frames; mimetic reads the dataset
    (`Dataset.load`, `ds.frames`). mimetic's frames are compared with the uint8 frames LeRobot was
    given (codec error) and with LeRobot's own decode of the same files (decoder agreement); state
    and action must be equal.
(b) mimetic writes the same kind of frames (`Dataset.create(..., image_storage="video")`, also
    created then appended to: a second MP4) and a `mimetic collect reach --env-option cameras=top`
    dataset; LeRobotDataset reads them; its frames are compared with mimetic's own decode (and, for
    the synthetic ones, with the frames mimetic was given).
(c) Throughput on the same datasets, same run, same machine: mimetic `Dataset.load` (decodes every
    camera frame) against LeRobotDataset reading every item in order (`ds[i]`, its training path), and
    against LeRobot's decode_video_frames called once per episode (its decoder without the per-item
    overhead). The ratio mimetic/LeRobot is reported for both.

Alignment: each decoded frame is matched to the source frame of its episode it is closest to; a
reader that is off by one frame (timestamps, episode offsets in a shared MP4) shows up as
aligned < 1.0 even when the error is small.

    .venv/bin/python benchmarks/lerobot_interop/run.py   # ~3 minutes; writes benchmarks/results/lerobot_interop.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"
SIDE = HERE / "lerobot_side.py"
CAM = "observation.images.top"
DEFAULT_LEROBOT_PY = os.environ.get("LEROBOT_PYTHON", "/work/lerobot-venv/bin/python")
LEROBOT_CODEC = {"av1": "libsvtav1", "h264": "h264"}  # mimetic codec name -> LeRobot vcodec


def lerobot(py: str, *args: str) -> dict:
    """Run lerobot_side.py under LeRobot's venv; its last stdout line is a JSON result."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "SVT_LOG": "1"}
    env.pop("PYTHONPATH", None)
    p = subprocess.run([py, str(SIDE), *args], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"lerobot_side.py {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def compare(got: np.ndarray, ref: np.ndarray, episode_index: np.ndarray | None = None) -> dict:
    """Error of `got` against `ref` (uint8 frames, same shape), and whether each frame is closest
    to its own reference frame within its episode."""
    if got.shape != ref.shape:
        return {"shape_mismatch": [list(got.shape), list(ref.shape)]}
    d = np.abs(got.astype(np.int16) - ref.astype(np.int16))
    mse = float(np.mean(d.astype(np.float64) ** 2))
    res = {"frames": int(len(got)), "mae": round(float(d.mean()), 4), "max_abs": int(d.max()) if d.size else 0,
           "psnr_db": round(10 * np.log10(255.0 ** 2 / mse), 2) if mse > 0 else float("inf"),
           "identical_frames": int(sum(np.array_equal(g, r) for g, r in zip(got, ref)))}
    if episode_index is not None:
        ok = 0
        for e in np.unique(episode_index):
            idx = np.flatnonzero(episode_index == e)
            g = got[idx].reshape(len(idx), -1).astype(np.float32)
            r = ref[idx].reshape(len(idx), -1).astype(np.float32)
            for j in range(len(idx)):
                dist = np.abs(r - g[j]).mean(axis=1)
                ok += int(dist[j] <= dist.min())  # ties count: a still camera repeats frames
        res["aligned"] = round(ok / len(got), 4)
    return res


def vec_equal(a: np.ndarray, b: np.ndarray) -> dict:
    a, b = np.asarray(a, np.float32).reshape(len(a), -1), np.asarray(b, np.float32).reshape(len(b), -1)
    if a.shape != b.shape:
        return {"equal": False, "shape_mismatch": [list(a.shape), list(b.shape)]}
    return {"equal": bool(np.array_equal(a, b)), "max_abs": float(np.abs(a - b).max()) if a.size else 0.0}


def mimetic_read(root: Path, repeat: int) -> tuple[dict, float]:
    """Load `root` with mimetic `repeat` times; (arrays of the last load, median seconds)."""
    from mimetic.data import Dataset

    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ds = Dataset.load(root)
        frames = ds.frames(CAM)
        times.append(time.perf_counter() - t0)
    return {CAM: frames, "observation.state": ds.observations,
            "action": ds.actions, "episode_index": ds.episode_index}, float(np.median(times))


def synthetic_episodes(n_ep: int, T: int, size: int, seed: int, width: int | None = None):
    """The frames lerobot_side.py writes (same generator, imported from it), as mimetic Episodes."""
    sys.path.insert(0, str(HERE))
    from lerobot_side import make_frames

    from mimetic.data.episode import Episode

    eps, raw = [], []
    for e in range(n_ep):
        frames = make_frames(T, size, seed=seed * 1000 + e, width=width)
        rng = np.random.default_rng(seed * 1000 + e + 7)
        st = rng.standard_normal((T, 4)).astype(np.float32)
        ac = rng.uniform(-1, 1, (T, 2)).astype(np.float32)
        eps.append(Episode(observations={"observation.state": st, CAM: frames}, actions=ac,
                           rewards=np.zeros(T, np.float32), successes=np.zeros(T, bool)))
        raw.append(frames)
    return eps, np.concatenate(raw)


def throughput(py: str, root: Path, n: int, repeat: int, rounds: int) -> dict:
    """mimetic Dataset.load vs LeRobotDataset on `root`: `rounds` rounds of [LeRobot, mimetic], each
    reader `repeat` passes a round; the best pass of each is kept (the one least slowed by other work
    on the shared cores)."""
    from mimetic.data.video import decode_video

    files = sorted(root.glob("videos/*/chunk-*/file-*.mp4"))
    lr_get, lr_batch, m_load, m_dec = [], [], [], []
    for _ in range(rounds):
        lr = lerobot(py, "read", str(root), "--out", str(root) + ".lr_time.npz", "--time", "--repeat", str(repeat))
        lr_get += lr["getitem_s"]
        lr_batch += lr["batch_decode_s"]
        for _ in range(repeat):
            t0 = time.perf_counter()
            Dataset_load(root)
            m_load.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            nd = sum(len(decode_video(f)) for f in files)
            m_dec.append(time.perf_counter() - t0)
    fps = {k: n / min(v) for k, v in (("m_load", m_load), ("m_dec", m_dec), ("lr_get", lr_get), ("lr_batch", lr_batch))}
    assert nd == n, (nd, n)
    return {"frames": n, "mimetic_load_frames_per_s": round(fps["m_load"], 1),
            "mimetic_decode_video_frames_per_s": round(fps["m_dec"], 1),
            "lerobot_getitem_frames_per_s": round(fps["lr_get"], 1),
            "lerobot_batch_decode_frames_per_s": round(fps["lr_batch"], 1),
            "ratio_mimetic_over_lerobot_getitem": round(fps["m_load"] / fps["lr_get"], 2),
            "ratio_mimetic_over_lerobot_batch_decode": round(fps["m_load"] / fps["lr_batch"], 2),
            "ratio_mimetic_decode_over_lerobot_batch_decode": round(fps["m_dec"] / fps["lr_batch"], 2),
            "passes_s": {"mimetic_load": [round(t, 4) for t in m_load], "mimetic_decode": [round(t, 4) for t in m_dec],
                         "lerobot_getitem": lr_get, "lerobot_batch": lr_batch},
            "lerobot_backend": lr["backend"], "load_average_1min": round(os.getloadavg()[0], 2)}


def Dataset_load(root: Path) -> None:
    """What a mimetic user does to get every frame: load the dataset (decodes every camera) and take them."""
    from mimetic.data import Dataset

    Dataset.load(root).frames(CAM)



def lerobot_reads(a, root: Path, mraw) -> dict:
    """LeRobot reads the mimetic dataset at `root`: its frames against mimetic's decode and the frames given to mimetic."""
    m, _ = mimetic_read(root, 1)
    try:
        lerobot(a.lerobot_python, "read", str(root), "--out", str(root) + ".lr.npz")
    except RuntimeError as e:
        return {"lerobot_error": str(e)}
    lrf = np.load(str(root) + ".lr.npz")
    return {"lerobot_vs_mimetic_decode": compare(lrf[CAM], m[CAM]),
            "lerobot_vs_raw": compare(lrf[CAM], mraw, m["episode_index"]),
            "mimetic_vs_raw": compare(m[CAM], mraw, m["episode_index"]),
            "state": vec_equal(lrf["observation.state"], m["observation.state"]),
            "action": vec_equal(lrf["action"], m["action"]),
            "episode_index": bool(np.array_equal(lrf["episode_index"].reshape(-1), m["episode_index"]))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lerobot-python", default=DEFAULT_LEROBOT_PY, help="python of the LeRobot venv ($LEROBOT_PYTHON)")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--frames", type=int, default=40, help="frames per episode")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--wide", default="48x80", help="HxW of an extra non-square av1 case in (a) and (b) ('' to skip)")
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--codecs", default="av1,h264", help="mimetic codec names; LeRobot writes libsvtav1 / h264")
    p.add_argument("--bench-episodes", type=int, default=10)
    p.add_argument("--bench-frames", type=int, default=100)
    p.add_argument("--bench-size", type=int, default=96)
    p.add_argument("--repeat", type=int, default=3, help="timed passes per reader per round")
    p.add_argument("--rounds", type=int, default=2, help="rounds of [LeRobot passes, mimetic passes]; the best pass counts")
    p.add_argument("--collect-episodes", type=int, default=3, help="(b2) mimetic collect reach episodes (0: skip)")
    p.add_argument("--workdir", default=None, help="keep the datasets here (default: a temporary folder, removed)")
    p.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/lerobot_interop.*")
    a = p.parse_args(argv)
    args = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python benchmarks/lerobot_interop/run.py", *args])

    from mimetic.data import Dataset

    if not Path(a.lerobot_python).exists():
        sys.exit(f"no LeRobot venv at {a.lerobot_python}: build it as benchmarks/lerobot_interop/README.md says, or pass --lerobot-python")
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="lerobot_interop."))
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version()}
    t_all = time.perf_counter()
    try:
        import av
        import mimetic

        head = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--", "../../src/mimetic/data", "../../src/mimetic/features.py"],
                               capture_output=True, text=True).stdout.split("\n")
        dirty = [ln[3:] for ln in dirty if ln.strip()]
        out["mimetic_commit"] = head + (f" + uncommitted changes to {', '.join(dirty)}" if dirty else "")
        out["mimetic_decoder"] = f"PyAV {av.__version__} (libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))})"
        ver = subprocess.run([a.lerobot_python, "-c", "import importlib.metadata as m; print(m.version('lerobot'), m.version('torch'), m.version('torchcodec'), m.version('av'))"],
                             capture_output=True, text=True, check=True).stdout.split()
        out["lerobot"] = {"lerobot": ver[0], "torch": ver[1], "torchcodec": ver[2], "av": ver[3]}
        cfg = {"episodes": a.episodes, "frames_per_episode": a.frames, "size": a.size, "fps": a.fps}
        out["config"] = cfg
        out["a_lerobot_writes_mimetic_reads"] = {}
        out["b_mimetic_writes_lerobot_reads"] = {}
        cases = [(c, a.size, a.size, False) for c in a.codecs.split(",") if c]
        if a.wide:
            h, w_ = (int(x) for x in a.wide.lower().split("x"))
            cases.append(("av1", h, w_, False))
        cases.append(("av1", a.size, a.size, True))  # LeRobot's streaming_encoding (mimetic's (b) side: same as plain av1)
        for codec, height, width, streaming in cases:
            name = codec if height == width == a.size else f"{codec} {height}x{width}"
            if streaming:
                name += " streaming"
            tag = name.replace(" ", "_")
            # (a) LeRobot writes, mimetic reads
            root = work / f"lerobot_{tag}"
            w = lerobot(a.lerobot_python, "write", str(root), "--episodes", str(a.episodes), "--frames", str(a.frames),
                        "--size", str(height), "--width", str(width), "--fps", str(a.fps),
                        "--vcodec", LEROBOT_CODEC[codec], "--overwrite", *(["--streaming"] if streaming else []))
            raw = np.load(str(root) + ".raw.npz")
            lr = lerobot(a.lerobot_python, "read", str(root), "--out", str(root) + ".lr.npz")
            lrf = np.load(str(root) + ".lr.npz")
            res: dict = {"lerobot_vcodec": w["vcodec"], "lerobot_write_s": w["write_s"]}
            try:
                m, _ = mimetic_read(root, 1)
            except Exception as e:  # report, do not hide: what mimetic refused in LeRobot's dataset
                res["mimetic_error"] = f"{type(e).__name__}: {e}"
            else:
                res["mimetic_vs_raw"] = compare(m[CAM], raw[CAM], raw["episode_index"])
                res["lerobot_vs_raw"] = compare(lrf[CAM], raw[CAM], raw["episode_index"])
                res["mimetic_vs_lerobot_decode"] = compare(m[CAM], lrf[CAM])
                res["state"] = vec_equal(m["observation.state"], raw["observation.state"])
                res["action"] = vec_equal(m["action"], raw["action"])
                res["episode_index"] = bool(np.array_equal(m["episode_index"], raw["episode_index"]))
            out["a_lerobot_writes_mimetic_reads"][name] = res
            if streaming:
                continue

            # (b1) mimetic writes (Dataset API), LeRobot reads
            root = work / f"mimetic_{tag}"
            shutil.rmtree(root, ignore_errors=True)
            eps, mraw = synthetic_episodes(a.episodes, a.frames, height, seed=0, width=width)
            t0 = time.perf_counter()
            Dataset.create(root, eps, fps=a.fps, image_storage="video", video_codec=codec)
            res = {"mimetic_write_s": round(time.perf_counter() - t0, 3)}
            res.update(lerobot_reads(a, root, mraw))
            out["b_mimetic_writes_lerobot_reads"][name] = res

        # (b1') appended: episodes 0..1 created, the rest appended (a second MP4, file_index 1)
        if a.episodes >= 2:
            root = work / "mimetic_av1_appended"
            shutil.rmtree(root, ignore_errors=True)
            eps, mraw = synthetic_episodes(a.episodes, a.frames, a.size, seed=0)
            Dataset.create(root, eps[:2], fps=a.fps, image_storage="video", video_codec="av1")
            Dataset.load(root).append(eps[2:]) if len(eps) > 2 else None
            res = {"video_files": sorted(str(f.relative_to(root)) for f in root.glob("videos/*/*/*.mp4"))}
            res.update(lerobot_reads(a, root, mraw))
            out["b_mimetic_writes_lerobot_reads"]["av1 appended"] = res

        # (b2) a dataset from `mimetic collect` with a camera
        if a.collect_episodes:
            root = work / "collect_reach"
            shutil.rmtree(root, ignore_errors=True)
            mimetic_bin = Path(sys.executable).parent / "mimetic"
            cmd = [str(mimetic_bin), "collect", "reach", "--episodes", str(a.collect_episodes), "--out", str(root),
                   "--env-option", "cameras=top", "--seed", "0"]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            res = {"command": " ".join(["mimetic"] + cmd[1:]).replace(str(root), "DIR")}
            m, _ = mimetic_read(root, 1)
            try:
                lerobot(a.lerobot_python, "read", str(root), "--out", str(root) + ".lr.npz")
            except RuntimeError as e:
                res["lerobot_error"] = str(e)
            else:
                lrf = np.load(str(root) + ".lr.npz")
                res["lerobot_vs_mimetic_decode"] = compare(lrf[CAM], m[CAM], m["episode_index"])
                res["state"] = vec_equal(lrf["observation.state"], m["observation.state"])
                res["action"] = vec_equal(lrf["action"], m["action"])
            out["b_mimetic_writes_lerobot_reads"]["collect_reach"] = res

        # (c) throughput on the same datasets, av1 (both libraries' default)
        n = a.bench_episodes * a.bench_frames
        out["c_throughput"] = {"config": {"episodes": a.bench_episodes, "frames_per_episode": a.bench_frames,
                                          "size": a.bench_size, "codec": "av1", "repeat": a.repeat, "rounds": a.rounds}}
        root = work / "bench_lerobot"
        lerobot(a.lerobot_python, "write", str(root), "--episodes", str(a.bench_episodes), "--frames", str(a.bench_frames),
                "--size", str(a.bench_size), "--fps", str(a.fps), "--overwrite", "--seed", "1")
        out["c_throughput"]["written_by_lerobot"] = throughput(a.lerobot_python, root, n, a.repeat, a.rounds)
        root = work / "bench_mimetic"
        shutil.rmtree(root, ignore_errors=True)
        eps, _ = synthetic_episodes(a.bench_episodes, a.bench_frames, a.bench_size, seed=1)
        Dataset.create(root, eps, fps=a.fps, image_storage="video", video_codec="av1")
        out["c_throughput"]["written_by_mimetic"] = throughput(a.lerobot_python, root, n, a.repeat, a.rounds)
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    out["total_s"] = round(time.perf_counter() - t_all, 1)
    text = json.dumps(out, indent=2)
    print(text)
    if not a.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "lerobot_interop.json").write_text(text + "\n")
        (RESULTS / "lerobot_interop.md").write_text(markdown(out))


def _cmp_cell(c: dict | None) -> str:
    if not c:
        return "-"
    if "shape_mismatch" in c:
        return f"shape {c['shape_mismatch'][0]} vs {c['shape_mismatch'][1]}"
    s = f"MAE {c['mae']:.3f}, max {c['max_abs']}, PSNR {c['psnr_db']} dB, identical {c['identical_frames']}/{c['frames']}"
    return s + (f", aligned {c['aligned']:.2f}" if "aligned" in c else "")


def markdown(out: dict) -> str:
    cfg = out["config"]
    lines = [
        "# mimetic <-> LeRobot video datasets",
        "",
        f"    {out['command']}",
        "",
        f"{out['date']}, {out['machine']}, Python {out['python']}, mimetic at {out.get('mimetic_commit')}. mimetic decodes with {out['mimetic_decoder']}; "
        f"LeRobot {out['lerobot']['lerobot']} (torch {out['lerobot']['torch']}, torchcodec {out['lerobot']['torchcodec']}, "
        f"av {out['lerobot']['av']}) in its own venv, default video backend.",
        "",
        f"Correctness datasets: {cfg['episodes']} episodes x {cfg['frames_per_episode']} frames, "
        f"{cfg['size']}x{cfg['size']} RGB (and one non-square HxW case), {cfg['fps']} fps, one camera `{CAM}` (moving shapes on a gradient, "
        "deterministic), plus observation.state [4] and action [2]. Errors are on the 0..255 scale. "
        "`aligned` is the fraction of decoded frames closest to their own source frame in their episode.",
        "",
        "## (a) LeRobot writes, mimetic reads",
        "",
        "| codec | mimetic vs frames given to LeRobot | LeRobot's own decode vs those frames | mimetic vs LeRobot's decode | state, action, episodes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for codec, r in out["a_lerobot_writes_mimetic_reads"].items():
        if "mimetic_error" in r:
            lines.append(f"| {codec} ({r['lerobot_vcodec']}) | mimetic refused: {r['mimetic_error']} | | | |")
            continue
        sa = f"state {'equal' if r['state']['equal'] else 'differ'}, action {'equal' if r['action']['equal'] else 'differ'}, episode_index {'equal' if r['episode_index'] else 'differs'}"
        lines.append(f"| {codec} ({r['lerobot_vcodec']}) | {_cmp_cell(r['mimetic_vs_raw'])} | {_cmp_cell(r['lerobot_vs_raw'])} | "
                     f"{_cmp_cell(r['mimetic_vs_lerobot_decode'])} | {sa} |")
    lines += ["", "## (b) mimetic writes, LeRobot reads", "",
              "| dataset | LeRobot vs mimetic's decode | LeRobot vs frames given to mimetic | mimetic vs those frames | state, action |",
              "| --- | --- | --- | --- | --- |"]
    for name, r in out["b_mimetic_writes_lerobot_reads"].items():
        label = (f"`{r['command']}`" if "command" in r else
                 f"Dataset.create 2 episodes + append 1 ({len(r['video_files'])} MP4s)" if "video_files" in r else f"Dataset.create, {name}")
        if "lerobot_error" in r:
            lines.append(f"| {label} | LeRobot refused: {' '.join(r['lerobot_error'].split())[-600:]} | | | |")
            continue
        sa = f"state {'equal' if r['state']['equal'] else 'differ'}, action {'equal' if r['action']['equal'] else 'differ'}"
        lines.append(f"| {label} | {_cmp_cell(r.get('lerobot_vs_mimetic_decode'))} | {_cmp_cell(r.get('lerobot_vs_raw'))} | "
                     f"{_cmp_cell(r.get('mimetic_vs_raw'))} | {sa} |")
    c = out["c_throughput"]
    cc = c["config"]
    lines += ["", "## (c) decoding throughput, same datasets, same run", "",
              f"{cc['episodes']} episodes x {cc['frames_per_episode']} frames, {cc['size']}x{cc['size']}, {cc['codec']}; "
              f"best of {cc['repeat'] * cc.get('rounds', 1)} passes each ({cc.get('rounds', 1)} rounds of LeRobot then mimetic, {cc['repeat']} passes each), on warm files. "
              "mimetic: `Dataset.load` (parquet + every camera frame decoded to uint8). "
              "LeRobot `ds[i]`: every item in order through `LeRobotDataset.__getitem__` (its training path; float CHW). "
              "LeRobot batch: its `decode_video_frames` once per episode with all of the episode's timestamps. "
              "mimetic decode: `mimetic.data.video.decode_video` on each MP4 (the decoder alone, no parquet).",
              "",
              "| dataset written by | mimetic Dataset.load frames/s | LeRobot ds[i] frames/s | load / ds[i] | mimetic decode frames/s | LeRobot batch frames/s | load / batch | decode / batch |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for who in ("written_by_lerobot", "written_by_mimetic"):
        t = c[who]
        lines.append(f"| {who.split('_')[-1]} | {t['mimetic_load_frames_per_s']} | {t['lerobot_getitem_frames_per_s']} | "
                     f"{t['ratio_mimetic_over_lerobot_getitem']}x | {t['mimetic_decode_video_frames_per_s']} | "
                     f"{t['lerobot_batch_decode_frames_per_s']} | {t['ratio_mimetic_over_lerobot_batch_decode']}x | "
                     f"{t['ratio_mimetic_decode_over_lerobot_batch_decode']}x |")
    la = ", ".join(str(c[w].get("load_average_1min")) for w in ("written_by_lerobot", "written_by_mimetic"))
    lines += ["", f"2 CPU cores shared with other work (1-minute load average at the end of each row: {la}): "
              "absolute frames/s move by tens of percent between runs; the ratios, taken in one run, are the figures to compare.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
