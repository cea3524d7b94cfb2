"""Expressive policies on the multimodal task `reach-bimodal`: success and CPU cost.

    python benchmarks/expressive.py [--methods bc act diffusion flow] [--demos 100] [--episodes 100]
                                    [--steps 1500] [--work DIR] [--out FILE]

For each method: train on `--demos` expert demonstrations (seeds 0..), evaluate `--episodes`
episodes on the evaluation seeds (1_000_000.., the same for every method) with a 95% Wilson
interval, and measure on one CPU thread: training seconds per 1000 steps, parameters, and
inference milliseconds per chunk and per control step (one environment, median of repeated calls).
Diffusion and flow are also evaluated with several sampling step counts (DDIM / Euler steps), ACT
with temporal ensembling. The final checkpoint is reported (no selection on the evaluation seeds).
Each method's result is written to WORK/<method>.json as soon as it is done; the markdown report
is printed (and written to --out) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from mimetic.algos import method_module
from mimetic.collect import collect
from mimetic.data import Dataset
from mimetic.evaluate import evaluate
from mimetic.policies.base import PolicyActor

ENV = "reach-bimodal"
PRESETS = {  # small networks: the task is 8-d state, 2-d action
    "bc": dict(hidden=[256, 256]),
    "act": dict(dim_model=64, n_heads=4, dim_feedforward=128, batch_size=128, lr=1e-3),
    "diffusion": dict(down_dims=[32, 64], kernel_size=3, batch_size=128),
    "flow": dict(down_dims=[32, 64], kernel_size=3, batch_size=128),
}
SWEEP = {"diffusion": [1, 2, 5, 10, 20], "flow": [1, 2, 4, 8, 16]}


def median_ms(fn, repeats: int = 30) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def inference_cost(policy) -> dict:
    c = policy.config
    obs = torch.as_tensor(Dataset_obs[: c.n_obs_steps][None], dtype=torch.float32)
    with torch.inference_mode():
        chunk = median_ms(lambda: policy.predict(obs))
        actor = PolicyActor(policy)

        def episode():
            actor.reset(1)
            for o in Dataset_obs[:64]:
                actor.act(o[None])

        step = median_ms(episode, 5) / 64
    return {"ms_per_chunk": round(chunk, 3), "ms_per_control_step": round(step, 3)}


def run_method(name: str, ds: Dataset, work: Path, steps: int, episodes: int) -> dict:
    module = method_module(name)
    cfg = module.Config(**PRESETS[name], steps=steps, log_every=max(1, steps // 4), ckpt_every=steps, seed=0)
    run = work / name
    if (run / "checkpoint/state.json").exists():
        import shutil

        shutil.rmtree(run)
    t = time.perf_counter()
    policy = module.train(cfg, ds, run, progress=False)
    train_s = time.perf_counter() - t
    res = evaluate(PolicyActor(policy), ENV, episodes)
    out = {"method": name, "config": PRESETS[name], "steps": steps, "parameters": policy.num_parameters(),
           "train_s": round(train_s, 1), "train_s_per_1000_steps": round(train_s / steps * 1000, 1),
           "success": res.success_rate, "ci95": [round(x, 3) for x in res.ci95], **inference_cost(policy)}
    c = policy.config
    if name == "act":
        r = evaluate(PolicyActor(policy, temporal_ensemble=0.1), ENV, episodes)
        out["temporal_ensemble_0.1"] = {"success": r.success_rate, "ci95": [round(x, 3) for x in r.ci95]}
    for k in SWEEP.get(name, []):
        c.num_inference_steps = k
        policy._gen = None
        r = evaluate(PolicyActor(policy), ENV, episodes)
        out.setdefault("sampling_steps", {})[str(k)] = {"success": r.success_rate, "ci95": [round(x, 3) for x in r.ci95],
                                                         **inference_cost(policy)}
    (work / f"{name}.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out), flush=True)
    return out


def report(results: list[dict], argv: str, demos: int, episodes: int, commit: str) -> str:
    lines = [f"Command: `python benchmarks/expressive.py {argv}`  ",
             f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPU cores shared with other jobs, torch {torch.__version__}, 1 thread.  ",
             f"{demos} demonstrations, {episodes} evaluation episodes (seeds 1000000..), final checkpoint.", "",
             "| method | params | train steps | train s / 1000 steps | success [95% CI] | ms / chunk | ms / control step |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['method']} | {r['parameters']:,} | {r['steps']} | {r['train_s_per_1000_steps']} | "
                     f"{r['success']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] | {r['ms_per_chunk']} | {r['ms_per_control_step']} |")
    for r in results:
        if "temporal_ensemble_0.1" in r:
            te = r["temporal_ensemble_0.1"]
            lines += ["", f"ACT with temporal ensembling (m = 0.1, a new chunk every step): success {te['success']:.2f} "
                      f"[{te['ci95'][0]:.2f}, {te['ci95'][1]:.2f}]"]
        if "sampling_steps" in r:
            lines += ["", f"{r['method']}: sampling steps vs success", "",
                      "| steps | success [95% CI] | ms / chunk | ms / control step |", "|---|---|---|---|"]
            for k, v in r["sampling_steps"].items():
                lines.append(f"| {k} | {v['success']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}] | {v['ms_per_chunk']} | {v['ms_per_control_step']} |")
    return "\n".join(lines) + "\n"


Dataset_obs: np.ndarray = np.zeros((0, 8))


def main(argv: list[str] | None = None) -> None:
    global Dataset_obs
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="+", default=["bc", "act", "diffusion", "flow"], choices=list(PRESETS))
    p.add_argument("--demos", type=int, default=100)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--work", default="bench-expressive", help="working directory (demos, runs, per-method JSON)")
    p.add_argument("--out", default=None, help="also write the markdown report here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()  # at the start
    work = Path(args.work)
    demos = work / f"demos{args.demos}"
    if not demos.exists():
        collect(ENV, demos, args.demos, seed=0, progress=False)
    ds = Dataset.load(demos)
    Dataset_obs = ds.episode(0).observations.astype(np.float32)
    results = [run_method(m, ds, work, args.steps, args.episodes) for m in args.methods]
    text = report(results, " ".join(argv if argv is not None else __import__("sys").argv[1:]), args.demos, args.episodes, commit)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
