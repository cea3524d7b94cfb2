"""GPU smoke test: bc, act, diffusion and flow each train a few steps on CUDA (bf16 autocast), on a tiny state
dataset and a tiny image dataset (`reach`, a 32x32 top camera, proprioception-only state), then sample, save,
load (on the GPU and on the CPU: the same actions), and evaluate a few episodes on the GPU.

Under pytest it skips without CUDA (test_the_smoke_script_runs_on_the_cpu keeps the script itself working).
As a script it prints one JSON line per method and dataset (and one for the batch transfer path), e.g. on the
GPU machine:

    python tests/test_gpu_smoke.py                       # --device auto: cuda there
    python tests/test_gpu_smoke.py --steps 200 --backbone resnet18 --methods diffusion

Exit status 1 if any line has "ok": false. train_s is the whole `train` call (setup, normalization, checkpoints);
steps_per_s counts the training loop only (with its one validation pass); predict_ms_batch4 includes the first
call's warm-up (diffusion / flow trace their U-Net then): use --steps 200 and the benchmarks for rates.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import pytest
import torch

METHODS = ("bc", "act", "diffusion", "flow")
DATASETS = {
    "state": {},
    "image": {"cameras": "top", "image_size": 32, "state": "proprio"},
}

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (this machine has none)")


def make_datasets(root: Path, episodes: int = 4) -> dict:
    """The tiny datasets: name -> Dataset (the cameras stored as PNG: no video decoder needed)."""
    from mimetic.collect import collect

    return {name: collect("reach", root / name, episodes, seed=0, env_options=opts, image_storage="png", progress=False)
            for name, opts in DATASETS.items()}


def smoke(method: str, data: str, dataset, run_dir: Path, device: str = "auto", steps: int = 4, episodes: int = 2,
          batch_size: int = 16, options: dict | None = None) -> dict:
    """Train, sample, save, load and evaluate one method on one dataset; the JSON summary (raises on a failed check)."""
    from mimetic.algos import method_module
    from mimetic.algos.run_dir import read_metrics
    from mimetic.devices import autocast_dtype, resolve_device
    from mimetic.evaluate import evaluate
    from mimetic.policies.base import PolicyActor, load_policy

    dev = resolve_device(device)
    module = method_module(method)
    cfg = module.Config(steps=steps, batch_size=batch_size, log_every=steps, ckpt_every=steps, device=device,
                        **(options or {}))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    policy = module.train(cfg, dataset, run_dir, progress=False)
    sync()
    train_s = time.perf_counter() - t0
    loop_s = read_metrics(run_dir)[-1]["time_s"]  # the training loop (with its validation), not the setup
    assert policy.device.type == dev.type, f"trained policy is on {policy.device}, not {dev}"
    assert all(p.dtype == torch.float32 for p in policy.parameters()), "autocast changed the weights' dtype"

    # sample: the trained policy, the checkpoint loaded on the device and on the CPU, with the same episode seeds
    n = 4
    rows = list(range(0, dataset.num_frames, max(1, dataset.num_frames // n)))[:n]
    c = policy.config
    obs = {"obs": torch.as_tensor(dataset.observations[rows], dtype=torch.float32)[:, None].repeat(1, c.n_obs_steps, 1)}
    for key in dataset.image_keys:
        if key in c.input_features:
            frames = torch.as_tensor(dataset.frames(key)[rows])  # uint8 (n, H, W, 3): moved as it is
            obs[key] = frames[:, None].repeat(1, c.n_obs_steps, 1, 1, 1)
    if not dataset.image_keys:
        obs = obs["obs"]
    seeds = range(n)
    t1 = time.perf_counter()
    trained = policy.predict(obs, generators=policy.generators(seeds))
    sync()
    predict_ms = 1000 * (time.perf_counter() - t1)
    loaded = load_policy(run_dir, device=device)
    on_cpu = load_policy(run_dir)  # saved from the GPU, loads on the CPU
    assert loaded.device.type == dev.type and on_cpu.device.type == "cpu"
    again = loaded.predict(obs, generators=loaded.generators(seeds))
    cpu = on_cpu.predict(obs, generators=on_cpu.generators(seeds))
    assert trained.device.type == dev.type and torch.isfinite(trained).all(), "non-finite or misplaced actions"
    reload_diff = float((trained - again).abs().max())
    cpu_diff = float((trained.cpu() - cpu).abs().max())
    scale = float(cpu.abs().max()) + 1e-6
    assert reload_diff <= 1e-4 * max(1.0, scale), f"reloaded checkpoint predicts differently ({reload_diff:.2e})"
    assert cpu_diff <= 2e-2 * max(1.0, scale), f"the CPU copy predicts differently ({cpu_diff:.2e})"

    t2 = time.perf_counter()
    res = evaluate(PolicyActor(loaded), dataset.env_name, episodes, env_options=dataset.env_options, num_envs=episodes,
                   progress=False)
    eval_s = time.perf_counter() - t2
    steps_taken = max(1, int(round(res.mean_length * res.episodes)))
    out = {"check": "smoke", "method": method, "data": data, "ok": True, "device": str(dev),
           "autocast": str(autocast_dtype(dev)).replace("torch.", ""), "policy": policy.type_name,
           "parameters": policy.num_parameters(), "steps": steps, "batch_size": batch_size,
           "train_s": round(train_s, 3), "steps_per_s": round(steps / loop_s, 2),
           "predict_ms_batch4": round(predict_ms, 2), "reload_max_diff": reload_diff, "cpu_max_diff": cpu_diff,
           "eval_episodes": res.episodes, "eval_success": res.success_rate,
           "eval_ms_per_env_step": round(1000 * eval_s / steps_taken, 3)}
    if dev.type == "cuda":
        out["peak_mem_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return out


def transfer_timing(device: str = "auto", batch: int = 64, n_obs_steps: int = 2, size: int = 84, repeats: int = 20) -> dict:
    """The cost of getting one batch of camera frames to the device: uint8 through `to_device` (pinned, non-blocking
    on CUDA) against converting to float32 on the CPU first (4x the bytes; the path the trainer avoids)."""
    from mimetic.devices import device_summary, resolve_device, to_device

    dev = resolve_device(device)
    frames = torch.randint(0, 256, (batch, n_obs_steps, size, size, 3), dtype=torch.uint8)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def timed(fn) -> float:
        fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync()
        return 1000 * (time.perf_counter() - t0) / repeats

    uint8 = timed(lambda: to_device({"f": frames}, dev)["f"].float())
    float_first = timed(lambda: to_device({"f": frames.float()}, dev)["f"])
    out = {"check": "transfer", "ok": True, "device": str(dev), "machine": device_summary(dev), "frames": list(frames.shape),
           "uint8_mb": round(frames.numel() / 2**20, 2), "uint8_then_float_on_device_ms": round(uint8, 3),
           "float_on_cpu_then_move_ms": round(float_first, 3)}
    if dev.type == "cuda":
        out["unpinned_uint8_ms"] = round(timed(lambda: frames.to(dev).float()), 3)
    return out


# ---------------------------------------------------------------------------------- pytest
@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    return make_datasets(tmp_path_factory.mktemp("gpu-smoke"))


@needs_cuda
@pytest.mark.parametrize("data", list(DATASETS))
@pytest.mark.parametrize("method", METHODS)
def test_gpu_smoke(method, data, datasets, tmp_path):
    out = smoke(method, data, datasets[data], tmp_path / "run", device="cuda")
    assert out["ok"] and out["device"].startswith("cuda") and out["autocast"] in ("bfloat16", "None")
    print(json.dumps(out))


@needs_cuda
def test_gpu_transfer_path():
    out = transfer_timing("cuda", repeats=5)
    assert out["uint8_then_float_on_device_ms"] > 0


def test_the_smoke_script_runs_on_the_cpu(tmp_path, capsys):
    """The script's own code, kept working where there is no GPU: one method, the image dataset, two steps."""
    code = main(["--device", "cpu", "--methods", "bc", "--data", "image", "--steps", "2", "--episodes", "1",
                 "--out", str(tmp_path)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and [(r["check"], r.get("method")) for r in lines] == [("smoke", "bc"), ("transfer", None)]
    assert lines[0]["ok"] and lines[0]["device"] == "cpu" and lines[0]["autocast"] == "None"


# ---------------------------------------------------------------------------------- script
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--data", default=",".join(DATASETS), help="state,image")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--backbone", default=None, help="vision_backbone for the image runs (conv | resnet18)")
    p.add_argument("--out", default=None, help="folder for datasets and runs (default: a temporary one)")
    args = p.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        data = make_datasets(root / "data")
        for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
            for name in [d.strip() for d in args.data.split(",") if d.strip()]:
                options = {"vision_backbone": args.backbone} if args.backbone and name == "image" else None
                try:
                    row = smoke(method, name, data[name], root / "runs" / f"{method}-{name}", args.device, args.steps,
                                args.episodes, args.batch_size, options)
                except Exception as e:  # one method failing does not hide the others
                    traceback.print_exc(file=sys.stderr)
                    row = {"check": "smoke", "method": method, "data": name, "ok": False, "device": args.device,
                           "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"}
                ok &= row["ok"]
                print(json.dumps(row), flush=True)
        try:
            row = transfer_timing(args.device)
        except Exception as e:
            row = {"check": "transfer", "ok": False, "error": f"{type(e).__name__}: {e}"}
        ok &= row["ok"]
        print(json.dumps(row), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
