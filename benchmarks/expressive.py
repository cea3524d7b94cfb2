"""Multimodal demonstrations: MLP regression vs chunked / generative policies, at the DEFAULTS.

    python benchmarks/expressive.py [--env reach-fork] [--methods bc bc-long act diffusion flow]
                                    [--demos 100] [--episodes 100] [--seeds eval|val]
                                    [--long-steps 30000] [--work DIR] [--out FILE.jsonl] [--md FILE.md]
    python benchmarks/expressive.py --env reach-bimodal --images 32 ...   # from pixels (issue 12)

Every method is trained with its `Config()` defaults, exactly what `mimetic train METHOD --data DEMOS`
runs (no benchmark presets): `bc` is deterministic BC (MLP 3x256, MSE) at its default budget and
`bc-long` the same with `--long-steps` training steps, to show that its failure is not a matter of
budget. The demonstrations are `--demos` expert episodes (seeds 0..); evaluation runs `--episodes`
episodes on the evaluation seeds (`--seeds eval`, 1_000_000..) or on the validation seeds
(`--seeds val`, 2_000_000..; use these to choose anything), the same for every method, 95% Wilson
intervals, final checkpoint (EMA weights for diffusion / flow), no checkpoint selection. Each
checkpoint is also evaluated in variants (diffusion / flow with other sampling steps, ACT with
temporal ensembling), all reported. Failures are split into collisions (the episode ended early)
and time-outs. One JSON line per (env, seeds, method, variant) is appended to --out (a finished
row is skipped on a re-run, and a run that finished training with the same config, e.g. for the other
seeds, is evaluated again rather than retrained: its train_s is then the one its training logged);
the markdown table is printed and written to --md.

`--images SIZE`: the same from pixels. The task renders its `top` camera at SIZE x SIZE and the state is
its proprioception only (position and velocity): the goal and the obstacle are only in the image. Every
method reads both (its defaults: the conv encoder with spatial softmax); rows are named e.g. "diffusion@img32".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from mimetic.algos import method_module
from mimetic.algos.trainer import resolve_for_dataset
from mimetic.collect import collect
from mimetic.data import Dataset
from mimetic.envs import make_env
from mimetic.evaluate import EVAL_SEED, VAL_SEED, evaluate
from mimetic.policies.base import PolicyActor, load_policy
from metaworld_methods import finished_run  # reuse a run that finished with the same config

METHODS = {"bc": "bc", "bc-long": "bc", "act": "act", "diffusion": "diffusion", "flow": "flow",
           "diffusion-aux": "diffusion", "flow-aux": "flow", "diffusion-long": "diffusion", "flow-long": "flow", "act-long": "act",
           "diffusion-k8": "diffusion", "flow-k8": "flow", "diffusion-rw": "diffusion", "flow-rw": "flow",
           "diffusion-long-fs": "diffusion", "diffusion-long-fs1": "diffusion",
           "diffusion-long-nowu": "diffusion"}  # row -> method
# rows that are not the defaults: candidates, chosen between on validation seeds (the auxiliary regression head)
OPTIONS = {"diffusion-aux": dict(aux_weight=1.0), "flow-aux": dict(aux_weight=1.0),
           "diffusion-k8": dict(noise_samples=8), "flow-k8": dict(noise_samples=8),  # 8 noise draws per sample
           # half of 4000 steps regression warm-up, then 2000 as usual
           "diffusion-rw": dict(regression_warmup=0.5, steps=4000), "flow-rw": dict(regression_warmup=0.5, steps=4000),
           # the future-state loss: predict the state 10, 25 and 50 steps ahead (where the hand goes), weight 0.1 / 1
           "diffusion-long-fs": dict(future_state=[10, 25, 50], future_weight=0.1),
           "diffusion-long-fs1": dict(future_state=[10, 25, 50], future_weight=1.0),
           # no regression warm-up (the image default has one for the first half of the steps)
           "diffusion-long-nowu": dict(regression_warmup=0.0)}
PRESETS = {m: {} for m in ("bc", "act", "diffusion", "flow")}  # the defaults (benchmarks/inference_cost.py reads this)
# variants evaluated on the same checkpoint: sampling steps (diffusion DDIM, flow Euler), ACT temporal ensembling
SWEEP = {"diffusion": [1, 5], "flow": [1, 2]}


def median_ms(fn, repeats: int = 30) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def ms_per_chunk(policy, obs: np.ndarray) -> float:
    x = torch.as_tensor(obs[: policy.config.n_obs_steps][None], dtype=torch.float32)
    with torch.inference_mode():
        return round(median_ms(lambda: policy.predict(x)), 3)


def outcome(res, max_steps: int) -> dict:
    """Success rate with its Wilson interval, and the failures split by how the episode ended."""
    fails = [n for s, n in zip(res.successes, res.lengths) if not s]
    return {"success_rate": res.success_rate, "ci95": [round(x, 4) for x in res.ci95], "episodes": res.episodes,
            "successes": int(sum(res.successes)), "collisions": sum(n < max_steps for n in fails),
            "timeouts": sum(n >= max_steps for n in fails), "mean_length": res.mean_length}


def run(args, meta: dict) -> None:
    out = Path(args.out)
    done = set()
    if out.exists():
        done = {(r["env"], r["seeds"], r["policy"], r["config"]["seed"]) for r in map(json.loads, out.read_text().splitlines())}
    work = Path(args.work)
    env_options = {"cameras": "top", "state": "proprio", "image_size": args.images} if args.images else {}
    suffix = f"@img{args.images}" if args.images else ""
    demos = work / f"{args.env}-demos{args.demos}{suffix}"
    if not (demos / "meta/info.json").exists():
        collect(args.env, demos, args.demos, seed=0, progress=False, env_options=env_options)
    ds = Dataset.load(demos)
    obs0 = None if args.images else ds.episode(0).observations.astype(np.float32)
    seed = {"eval": EVAL_SEED, "val": VAL_SEED}[args.seeds]
    max_steps = make_env(args.env).max_steps
    for name in args.methods:
        variants = [name] + ([f"{name}-te0.1"] if name == "act" else []) + [f"{name}-{k}steps" for k in SWEEP.get(METHODS[name], [])]
        variants = [v + suffix for v in variants]
        if all((args.env, args.seeds, v, args.train_seed) in done for v in variants):
            continue
        module = method_module(METHODS[name])
        cfg = module.Config(seed=args.train_seed, **OPTIONS.get(name, {}))  # the defaults (or a candidate's options)
        if "-long" in name:
            cfg.steps = args.long_steps
        cfg = resolve_for_dataset(cfg, ds)  # with --images, the defaults of a policy that reads cameras
        cfg.log_every = cfg.ckpt_every = max(1, cfg.steps // 4)  # logging only: no effect on the result
        run_dir = work / f"{args.env}-{name}{suffix}-seed{args.train_seed}"
        train_s = finished_run(run_dir, cfg)  # a run that finished with exactly this config (e.g. on other seeds)
        if train_s is not None:
            policy = load_policy(run_dir)
        else:
            if run_dir.exists():  # a run interrupted before it finished: train it again
                shutil.rmtree(run_dir)
            t = time.perf_counter()
            policy = module.train(cfg, ds, run_dir, progress=False)
            train_s = time.perf_counter() - t
        base = {"env": args.env, "seeds": args.seeds, "first_seed": seed, "method": METHODS[name], "demos": ds.num_episodes,
                "steps": cfg.steps, "batch_size": cfg.batch_size, "parameters": policy.num_parameters(),
                "train_s": round(train_s, 1), "config": {k: v for k, v in vars(cfg).items() if k not in ("log_every", "ckpt_every")},
                **meta}
        for v in variants:
            if (args.env, args.seeds, v, args.train_seed) in done:
                continue
            kw, sampling = {}, getattr(policy, "sampling_steps", None)
            plain = v.removesuffix(suffix)
            if plain.endswith("-te0.1"):
                kw = {"temporal_ensemble": 0.1}
            elif plain.endswith("steps"):
                sampling = int(plain.rsplit("-", 1)[1][: -len("steps")])
            if hasattr(policy, "set_sampling_steps"):
                policy.set_sampling_steps(sampling if plain != name else policy.config.num_inference_steps)
            res = evaluate(PolicyActor(policy, **kw), args.env, args.episodes, seed=seed, env_options=env_options)
            row = {"policy": v, **base, "sampling_steps": sampling if hasattr(policy, "set_sampling_steps") else None,
                   **kw, **outcome(res, max_steps), "env_options": env_options,
                   "ms_per_chunk": ms_per_chunk(policy, obs0) if obs0 is not None else None}
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps({k: row[k] for k in ("policy", "seeds", "steps", "success_rate", "ci95", "collisions", "timeouts", "train_s")}),
                  flush=True)


def report(rows: list[dict]) -> str:
    lines = []
    for (env, seeds) in dict.fromkeys((r["env"], r["seeds"]) for r in rows):
        sel = [r for r in rows if (r["env"], r["seeds"]) == (env, seeds)]
        lines += [f"### {env}, {seeds} seeds ({sel[0]['first_seed']}..), {sel[0]['demos']} demonstrations", "",
                  "| policy | training seed | train steps (batch) | params | train s | success [95% CI] | collisions / time-outs "
                  "| ms / chunk | commit |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sel:
            lines.append(f"| {r['policy']} | {r['config']['seed']} | {r['steps']} ({r['batch_size']}) | {r['parameters']:,} | {r['train_s']:.0f} | "
                         f"{r['success_rate']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] | {r['collisions']} / {r['timeouts']} | "
                         f"{r['ms_per_chunk'] if r['ms_per_chunk'] is not None else '–'} | {r['commit']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="reach-fork")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--demos", type=int, default=100)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seeds", choices=["eval", "val"], default="eval")
    p.add_argument("--long-steps", type=int, default=30000, help="training steps of the -long rows")
    p.add_argument("--train-seed", type=int, default=0, help="training seed (the default is 0)")
    p.add_argument("--work", default="bench-expressive", help="working directory (demos, runs)")
    p.add_argument("--out", default="benchmarks/results/expressive.jsonl")
    p.add_argument("--md", default=None, help="also write the markdown table here")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--images", type=int, default=0, metavar="SIZE",
                   help="learn from the top camera at SIZE x SIZE with a proprioception-only state (0: the full state)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = {"commit": commit, "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread",
            "command": "python benchmarks/expressive.py " + shlex.join(argv if argv is not None else sys.argv[1:])}
    if not args.table_only:
        run(args, meta)
    text = report([json.loads(line) for line in Path(args.out).read_text().splitlines()])
    print(text)
    if args.md:
        Path(args.md).write_text(text)


if __name__ == "__main__":
    main()
