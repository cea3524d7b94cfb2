"""Cost of every method with images (issue 12): training steps per second and ms per action, batch size named.

The Meta-World image protocol (benchmarks/metaworld_methods.py IMAGE_PROTOCOL: camera corner4 at 84x84, the
4-d proprioceptive state) against the same task's full 39-d state without a camera, to show what vision
costs. Each method at its defaults (`method_module(m).Config()`: the conv backbone with spatial softmax,
crop 0.9), BC with the deterministic and the GMM head.

    python benchmarks/visual_cost.py                 # one CPU core (torch.set_num_threads(1))
    python benchmarks/visual_cost.py --device cuda   # on a GPU

- Dataset: `--demos` successful scripted demonstrations of metaworld/reach-v3 (seeds 0..), collected with
  `mimetic.collect.collect`, once with the image protocol and once with the default (state-only) options.
- Training: `module.train` itself (what `mimetic train METHOD` runs: window sampling, uint8 frames to the
  encoder, its random crop, forward = loss, backward, gradient clipping, AdamW, EMA where the method has
  it) for `--warmup` + `--repeats` steps, at the method's default batch size and at batch 64. A global
  optimizer step hook stamps the time after each optimizer step; the gap between two stamps is one whole
  iteration of the trainer's loop, so setup (decoding frames, fitting the normalization) and the final
  checkpoint are outside every measured step. Reported: the median of the last `--repeats` gaps.
  Images per second = batch x To x cameras / seconds per step (every observation step's frame goes
  through the encoder).
- Inference: a `PolicyActor` on one environment, fed the recorded observations of the first
  demonstration (the environment itself is not stepped: benchmarks/render_throughput.py measures
  rendering). After one warm-up chunk, every `act` call is timed: ms per action = total time / actions
  (a chunk prediction amortized over the Ta executed actions); per-call latency = the median of the
  calls that predict a chunk (the worst case a controller waits) and of those that pop a queued action.
- mmap off (CPU, image rows): the training steps again in a child process with glibc's mmap off
  (NO_MMAP): an activation tensor above glibc's mmap threshold (at most 32 MiB: a conv layer's output
  from about 170 84x84 frames up) otherwise gets fresh pages, faulted in, at every step.
- The weights are those after the few training steps: the cost of a pass does not depend on them.

Run it on an otherwise idle machine; the load average is recorded with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from metaworld_methods import IMAGE_PROTOCOL, METHODS  # noqa: E402

TASK = "metaworld/reach-v3"
# glibc serves an allocation above its mmap threshold (at most 32 MiB) with fresh pages, faulted in again at every
# training step; with mmap off (and no trimming) freed memory is reused. The probe re-times the image rows so.
NO_MMAP = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 36)}
SETTINGS = {"images": dict(IMAGE_PROTOCOL), "state": {}}  # name -> env options of the dataset


def collect_demos(root: Path, env_options: dict, demos: int):
    from mimetic.collect import collect
    from mimetic.data import Dataset

    if (root / "meta/info.json").exists():
        return Dataset.load(root)
    return collect(TASK, root, demos, seed=0, only_success=True, progress=False, env_options=env_options,
                   num_envs=demos)


def train_step_times(method: str, options: dict, ds, batch: int, run_dir: Path, device: str, warmup: int,
                     repeats: int):
    """(policy, seconds of each measured step) of `module.train` at `batch`, the trainer's own loop."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from mimetic.algos import method_module

    module = method_module(method)
    cfg = module.Config(**options, val_fraction=0.0, seed=0, device=device)
    cfg.batch_size = batch
    cfg.steps = warmup + repeats
    cfg.log_every = cfg.ckpt_every = cfg.steps  # logs and the checkpoint after the last step only
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    stamps: list[float] = []

    def stamp(*_):
        sync()
        stamps.append(time.perf_counter())

    handle = register_optimizer_step_post_hook(stamp)
    try:
        policy = module.train(cfg, ds, run_dir, progress=False)
    finally:
        handle.remove()
    if len(stamps) != cfg.steps:
        raise RuntimeError(f"{method}: {len(stamps)} optimizer steps stamped, expected {cfg.steps}")
    # gap i = iteration i + 2: the first iteration has no start stamp, the next warmup - 1 gaps are dropped
    return policy, np.diff(stamps)[warmup - 1:]


def actor_times(policy, observations: list[dict], min_calls: int = 20) -> dict:
    """Time every `PolicyActor.act` call on one environment after a warm-up chunk."""
    from mimetic.policies.base import PolicyActor

    actor = PolicyActor(policy)
    actor.reset(1, seeds=[0])
    Ta = actor.Ta
    calls = Ta * max(5, -(-min_calls // Ta))
    chunk_t, queued_t, total = [], [], 0.0
    with torch.inference_mode():
        for t in range(Ta + calls):
            obs = observations[t % len(observations)]
            predicts = not actor.queue
            t0 = time.perf_counter()
            actor.act(obs)
            dt = time.perf_counter() - t0
            if t < Ta:  # the warm-up chunk
                continue
            total += dt
            (chunk_t if predicts else queued_t).append(dt)
    return {"Ta": Ta, "calls": calls, "chunks": len(chunk_t), "ms_per_action": 1000 * total / calls,
            "ms_chunk_call": 1000 * float(np.median(chunk_t)),
            "ms_queued_call": 1000 * float(np.median(queued_t)) if queued_t else None}


def episode_observations(ds, episode: int = 0) -> list[dict]:
    """The observations of one episode, as a batch of one environment would give them."""
    lo, hi = int(ds.episode_starts[episode]), int(ds.episode_ends[episode])
    frames = {k: ds.frames(k) for k in ds.observation_keys}
    return [{k: np.asarray(v[t])[None] for k, v in frames.items()} for t in range(lo, hi)]


def probe_rows(args, work: Path, rows: list[dict]) -> None:
    """Re-time the image rows' training in a child process with glibc's mmap off (NO_MMAP); adds the
    figures to `rows` as s_per_step_no_mmap / step_s_runs_no_mmap."""
    out = work / "no-mmap"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--methods", *args.methods, "--settings", "images",
           "--batch", *map(str, args.batch), "--demos", str(args.demos), "--warmup", str(args.warmup),
           "--repeats", str(args.repeats), "--threads", str(args.threads), "--work", str(work), "--out", str(out),
           "--no-malloc-probe"]
    subprocess.run(cmd, check=True, env={**os.environ, **NO_MMAP}, stdout=subprocess.DEVNULL)
    by = {(r["setting"], r["method"], r["batch"]): r for r in json.loads(out.with_suffix(".json").read_text())["rows"]}
    for r in rows:
        p = by.get((r["setting"], r["method"], r["batch"]))
        if p is not None:
            r["s_per_step_no_mmap"], r["step_s_runs_no_mmap"] = p["s_per_step"], p["step_s_runs"]


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--demos", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2, help="training steps before the measured ones (at least 1)")
    p.add_argument("--repeats", type=int, default=5, help="measured training steps (the median is reported)")
    p.add_argument("--batch", type=int, nargs="+", default=[64], help="batch sizes measured beside each method's default")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/visual_cost", help="writes OUT.json and OUT.md")
    p.add_argument("--no-malloc-probe", dest="malloc_probe", action="store_false",
                   help="skip re-timing the image rows' training with glibc's mmap off (%s)" % " ".join(f"{k}={v}" for k, v in NO_MMAP.items()))
    p.add_argument("--work", default="", help="keep the datasets and runs here (default: a temporary folder)")
    args = p.parse_args()
    if args.warmup < 1 or args.repeats < 1:
        p.error("--warmup and --repeats must be at least 1")

    from mimetic.algos import method_module
    from mimetic.algos.trainer import resolve_for_dataset

    torch.set_num_threads(args.threads)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="visual-cost-"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    repo = str(Path(__file__).resolve().parent.parent) + os.sep
    argv = " ".join(a.replace(repo, "") for a in sys.argv[1:])  # paths in the checkout, relative to its root
    command = "python benchmarks/visual_cost.py" + (f" {argv}" if argv else "")
    device = args.device
    if device.startswith("cuda"):
        hw = torch.cuda.get_device_name(device)
    else:
        hw = f"{platform.machine()} CPU, {os.cpu_count()} cores, {args.threads} torch thread(s)"
    no_mmap = all(os.environ.get(k) == v for k, v in NO_MMAP.items())
    malloc_env = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    load_start = load_average()
    t_start = time.perf_counter()
    rows = []
    datasets = {}
    for setting in args.settings:
        t0 = time.perf_counter()
        ds = collect_demos(work / f"demos-{setting}", SETTINGS[setting], args.demos)
        datasets[setting] = {"env_options": SETTINGS[setting], "episodes": ds.num_episodes, "frames": int(ds.num_frames),
                             "features": {k: list(ds.features[k].shape) for k in ds.observation_keys},
                             "collect_s": round(time.perf_counter() - t0, 1)}
        print(f"{setting}: {datasets[setting]}", flush=True)
        observations = episode_observations(ds)
        n_cameras = sum(ds.features[k].is_image for k in ds.observation_keys)
        for name in args.methods:
            method, options = METHODS[name]
            default_batch = resolve_for_dataset(method_module(method).Config(**options), ds).batch_size
            policy = None
            for batch in dict.fromkeys([default_batch, *args.batch]):  # once where the default is the batch
                run_dir = work / setting / f"{name}-b{batch}{'-nommap' if no_mmap else ''}"
                policy, steps = train_step_times(method, options, ds, batch, run_dir, device, args.warmup, args.repeats)
                c = policy.config
                s = float(np.median(steps))
                row = {"setting": setting, "method": name, "batch": batch, "default_batch": batch == default_batch,
                       "n_obs_steps": c.n_obs_steps, "cameras": n_cameras, "parameters": policy.num_parameters(),
                       "encoder_parameters": sum(q.numel() for q in policy.obs_encoder.parameters()),
                       "s_per_step": s, "steps_per_s": 1 / s, "samples_per_s": batch / s,
                       "images_per_s": batch * c.n_obs_steps * n_cameras / s,
                       "step_s_runs": [round(float(x), 5) for x in steps]}
                if batch == default_batch:
                    row.update(actor_times(policy, observations))
                    row["sampling_steps"] = getattr(c, "num_inference_steps", None)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.malloc_probe and not no_mmap and device == "cpu" and "images" in args.settings:
        probe_rows(args, work, rows)
    load_end = load_average()
    result = {"command": command, "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": hw, "device": device, "torch": torch.__version__, "task": TASK, "malloc_env": malloc_env,
              "load_average": {"start": load_start, "end": load_end}, "warmup": args.warmup, "repeats": args.repeats,
              "runtime_s": round(time.perf_counter() - t_start, 1), "datasets": datasets, "rows": rows}
    write(result, Path(args.out))
    return 0


def fmt(x, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def write(result: dict, out: Path) -> None:
    la = result["load_average"]
    lines = [
        "# Cost of each method with images: training and inference (issue 12)",
        "",
        f"`{result['command']}` — commit {result['commit']}, {result['date']}, {result['machine']}, "
        f"torch {result['torch']}, load average {la['start']} at the start and {la['end']} at the end "
        f"(1-minute; a shared machine), {result['runtime_s']:.0f} s in all.",
        "",
        f"Task {result['task']}: `images` = the Meta-World image protocol (camera corner4 84x84, crop 0.9, "
        "proprioceptive 4-d state), `state` = the full 39-d state, no camera. Each method at its defaults "
        "(conv backbone, spatial softmax). Training: the trainer's own loop (`module.train`), seconds between "
        f"consecutive optimizer steps, median of {result['repeats']} steps after {result['warmup']} warm-up steps "
        "(a whole iteration: sampling, crop, forward, backward, clipping, AdamW, EMA). Images/s counts every "
        "frame through the encoder (batch x To x cameras). Inference: `PolicyActor` on one environment, "
        "ms per action = a chunk's cost amortized over the Ta executed actions; the chunk call is the latency "
        "of a call that predicts, the queued call that of a call that pops an action.",
        "",
        "mmap off: the same training steps in a process run with " + " ".join(f"{k}={v}" for k, v in NO_MMAP.items())
        + " (glibc then reuses freed memory instead of serving every allocation above its mmap threshold, at most "
        "32 MiB, with fresh pages faulted in at every step). Since commit 'train on CPU keeps freed memory', `mimetic train` "
        "on a CPU applies the same setting itself (mallopt), so both columns time what it does and should agree. "
        f"This process's MALLOC_* variables: {result.get('malloc_env') or 'none'}.",
        "",
        "| data | method | batch | params (encoder) | ms / train step | train steps/s | images/s | "
        "ms / action | ms / chunk call (Ta) | ms / queued call | ms / train step, mmap off |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        batch = f"{r['batch']}" + (" (default)" if r["default_batch"] else "")
        infer = (f"{r['ms_per_action']:.2f} | {r['ms_chunk_call']:.2f} ({r['Ta']}) | {fmt(r['ms_queued_call'], '.3f')}"
                 if "ms_per_action" in r else "| |")
        nomm = f"{1000 * r['s_per_step_no_mmap']:.1f}" if "s_per_step_no_mmap" in r else "–"
        images = f"{r['images_per_s']:.0f}" if r["cameras"] else "–"
        lines.append(f"| {r['setting']} | {r['method']} | {batch} | {r['parameters']:,} ({r['encoder_parameters']:,}) | "
                     f"{1000 * r['s_per_step']:.1f} | {r['steps_per_s']:.2f} | {images} | {infer} | {nomm} |")
    by = {(r["setting"], r["method"], r["batch"]): r for r in result["rows"]}
    ratios = []
    for r in result["rows"]:
        s = by.get(("state", r["method"], r["batch"]))
        if r["setting"] == "images" and s is not None:
            inf = (f"{r['ms_per_action'] / s['ms_per_action']:.1f}x"
                   if "ms_per_action" in r and "ms_per_action" in s else "–")
            ratios.append(f"| {r['method']} | {r['batch']} | {r['s_per_step'] / s['s_per_step']:.1f}x | {inf} |")
    if ratios:
        lines += ["", "What vision costs (images / state, same method and batch):", "",
                  "| method | batch | train step | ms / action |", "|---|---:|---:|---:|", *ratios]
    lines += ["", "Datasets:", ""]
    lines += [f"- {k}: {v['episodes']} episodes, {v['frames']} frames, features {v['features']}, env options "
              f"{v['env_options'] or 'default'}" for k, v in result["datasets"].items()]
    from mimetic.data.io import atomic_write_bytes

    for suffix, text in ((".json", json.dumps(result, indent=2) + "\n"), (".md", "\n".join(lines) + "\n")):
        atomic_write_bytes(out.with_suffix(suffix), text.encode())
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
