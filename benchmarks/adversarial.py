"""GAIL / AIRL (SAC and PPO generators) and BC on the same demonstrations: normalized return against
environment steps and wall-clock. Writes a markdown report and a JSON-lines file of every curve.

    python benchmarks/adversarial.py --tasks reach pendulum --methods gail-sac airl-sac gail-ppo bc \
        --out /tmp/adv-bench --results benchmarks/results/adversarial.md [--imitation-python /tmp/imitation-venv/bin/python]

Normalized return = (R - R_random) / (R_expert - R_random), with R_random (uniform random actions) and
R_expert (the scripted expert) measured on the same seeds. Demonstrations: the expert on seeds 0..N-1.
Curves: `eval_every` environment steps, 10 episodes on validation seeds (2_000_000..); final figure:
the last policy on 50 test seeds (1_000_000..), never selected on them. With --imitation-python the
`imitation` library's GAIL (PPO generator) runs on the same demonstrations (exported to .npz) through
benchmarks/imitation_baseline.py in its own virtual environment.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from mimetic.actors import RandomActor
from mimetic.algos.adversarial.training import AdversarialConfig, train_adversarial
from mimetic.data import Dataset
from mimetic.envs import make_env, make_expert
from mimetic.evaluate import EVAL_SEED, VAL_SEED, evaluate
from mimetic.policies.base import PolicyActor
from mimetic.rollout import rollout

torch.set_num_threads(1)

# Small networks and half an update per environment step: the machine these ran on had 2 cores shared by
# several developers, so CPU time per update is the budget.
LEAN = dict(hidden=[64, 64], disc_hidden=[64, 64], batch_size=128, lr=1e-3, disc_lr=1e-3)
TASKS = {
    # name: env, demos, env-step budget and evaluation interval per generator, config overrides per generator
    "reach": dict(env="reach", demos=50, steps={"sac": 4000, "ppo": 40000}, eval_every={"sac": 800, "ppo": 8192},
                  config={"sac": dict(LEAN, utd=0.5, disc_every=2, learning_starts=400),
                          "ppo": dict(LEAN, lr=3e-4, num_envs=8, rollout_steps=256, ppo_epochs=5, disc_epochs=2)}),
    "pendulum": dict(env="gym/Pendulum-v1", demos=10, steps={"sac": 8000, "ppo": 40000}, eval_every={"sac": 1000, "ppo": 8192},
                     config={"sac": dict(LEAN, utd=0.5, disc_every=2, learning_starts=1000),
                             "ppo": dict(LEAN, lr=3e-4, num_envs=8, rollout_steps=256, ppo_epochs=5, disc_epochs=2)}),
    "mw-reach": dict(env="metaworld/reach-v3", demos=10, steps={"sac": 5000, "ppo": 40000}, eval_every={"sac": 2500, "ppo": 20000},
                     config={"sac": dict(LEAN, utd=0.5, disc_every=2, learning_starts=1000),
                             "ppo": dict(LEAN, lr=3e-4, num_envs=8, rollout_steps=256, ppo_epochs=5, disc_epochs=2)}),
}


def demonstrations(task: str, out: Path) -> tuple[Dataset, Path]:
    """Expert episodes on seeds 0..N-1 as a mimetic dataset and as an .npz for imitation (with final observations)."""
    spec = TASKS[task]
    eps = rollout(spec["env"], make_expert(spec["env"]), range(spec["demos"]))
    root = out / task / "demos"
    ds = Dataset.load(root) if (root / "meta" / "info.json").exists() else Dataset.create(root, eps, env=spec["env"])
    lengths = np.array([len(e) for e in eps])
    npz = out / task / "demos.npz"
    np.savez(npz, obs=np.concatenate([e.observations for e in eps]), acts=np.concatenate([e.actions for e in eps]),
             final_obs=np.stack([e.final_observation for e in eps]), terminated=np.array([e.terminated for e in eps]),
             lengths=lengths, starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]))
    return ds, npz


def reference(env: str, seed: int, episodes: int) -> tuple[float, float]:
    expert = evaluate(make_expert(env), env, episodes, seed=seed).mean_return
    rand = evaluate(RandomActor(make_env(env).action_space, seed=0), env, episodes, seed=seed).mean_return
    return expert, rand


def run_method(task: str, method: str, ds: Dataset, out: Path, ref: dict, args) -> dict:
    spec = TASKS[task]
    env = spec["env"]
    run = out / task / method
    norm_val = lambda r: (r - ref["val_random"]) / (ref["val_expert"] - ref["val_random"])  # noqa: E731
    norm_test = lambda r: (r - ref["test_random"]) / (ref["test_expert"] - ref["test_random"])  # noqa: E731
    t0 = time.perf_counter()
    if method == "bc":
        from mimetic.algos import bc

        cfg = bc.Config(steps=args.bc_steps, hidden=[256, 256], log_every=500, ckpt_every=args.bc_steps, val_fraction=0.0)
        policy = bc.train(cfg, ds, run, progress=False)
        curve = []
        steps = 0
    else:
        kind, gen = method.split("-")
        cfg = AdversarialConfig(generator=gen, steps=spec["steps"][gen], eval_every=spec["eval_every"][gen],
                                log_every=spec["eval_every"][gen], eval_episodes=args.val_episodes, seed=args.seed,
                                **spec["config"][gen])
        policy = train_adversarial(kind, cfg, ds, run, progress=False)
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        curve = [{"env_steps": r["step"], "time_s": r["time_s"], "val_return": r["val_return"],
                  "normalized": norm_val(r["val_return"])} for r in rows if "val_return" in r]
        steps = cfg.steps
    seconds = time.perf_counter() - t0
    res = evaluate(PolicyActor(policy), env, args.test_episodes, seed=EVAL_SEED)
    first = next((c for c in curve if c["normalized"] >= 0.9), None)
    return {"task": task, "method": method, "env_steps": steps, "seconds": round(seconds, 1), "test_return": res.mean_return,
            "test_normalized": norm_test(res.mean_return), "test_success": res.success_rate,
            "steps_to_0.9": first["env_steps"] if first else None, "time_to_0.9": first["time_s"] if first else None,
            "curve": curve}


def run_imitation(task: str, npz: Path, out: Path, ref: dict, args, algo: str) -> dict:
    spec = TASKS[task]
    env = "reach" if spec["env"] == "reach" else spec["env"].split("/", 1)[1]
    path = out / task / f"imitation-{algo}.json"
    cmd = [args.imitation_python, str(Path(__file__).with_name("imitation_baseline.py")), "--npz", str(npz), "--env", env,
           "--algo", algo, "--steps", str(args.imitation_steps[task]), "--eval-every", str(args.imitation_eval_every),
           "--eval-episodes", str(args.val_episodes), "--final-episodes", str(args.test_episodes), "--json", str(path)]
    t0 = time.perf_counter()
    if not (args.imitation_reuse and path.exists()):
        envvars = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
        proc = subprocess.run(cmd, env=envvars, capture_output=True, text=True)
        if proc.returncode != 0:
            return {"task": task, "method": f"imitation-{algo}-ppo", "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    r = json.loads(path.read_text())
    norm_val = lambda x: (x - ref["val_random"]) / (ref["val_expert"] - ref["val_random"])  # noqa: E731
    curve = [{**c, "normalized": norm_val(c["val_return"])} for c in r["curve"]]
    first = next((c for c in curve if c["normalized"] >= 0.9), None)
    return {"task": task, "method": f"imitation-{algo}-ppo", "env_steps": r["env_steps"], "seconds": r["seconds"],
            "test_return": r["final_return"],
            "test_normalized": (r["final_return"] - ref["test_random"]) / (ref["test_expert"] - ref["test_random"]),
            "test_success": None, "steps_to_0.9": first["env_steps"] if first else None,
            "time_to_0.9": first["time_s"] if first else None, "curve": curve}


def fmt(x, nd=2):
    return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=["reach", "pendulum"])
    p.add_argument("--methods", nargs="+", default=["gail-sac", "airl-sac", "gail-ppo", "bc"])
    p.add_argument("--out", default="/tmp/adv-bench")
    p.add_argument("--results", default=None, help="markdown report (also printed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bc-steps", type=int, default=3000)
    p.add_argument("--val-episodes", type=int, default=10)
    p.add_argument("--test-episodes", type=int, default=50)
    p.add_argument("--imitation-python", default=None)
    p.add_argument("--imitation-algos", nargs="+", default=["gail"])
    p.add_argument("--imitation-steps", type=json.loads, default={"reach": 150000, "pendulum": 300000, "mw-reach": 100000})
    p.add_argument("--imitation-eval-every", type=int, default=16384)
    p.add_argument("--imitation-reuse", action="store_true", help="reuse OUT/TASK/imitation-ALGO.json from an earlier run of the same command")
    p.add_argument("--budget", type=json.loads, default=None, metavar="JSON",
                   help='override env-step budgets and eval intervals, e.g. {"sac": [12000, 2000]}')
    p.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                   help="only write the report from earlier runs' DIR/results.jsonl (runs split across processes), "
                        "plus OUT/TASK/imitation-ALGO.json where present")
    args = p.parse_args(argv)
    out = Path(args.out)
    results = []
    jsonl = out / "results.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        for d in args.merge:
            results += [json.loads(x) for x in (Path(d) / "results.jsonl").read_text().splitlines() if x.strip()]
        args.imitation_reuse = True
        for task in dict.fromkeys(r["task"] for r in results):
            ref = next(r["reference"] for r in results if r["task"] == task)
            for algo in args.imitation_algos:
                if (out / task / f"imitation-{algo}.json").exists():
                    results.append(run_imitation(task, out / task / "demos.npz", out, ref, args, algo))
        args.tasks = []
    for gen, (steps, every) in (args.budget or {}).items():
        for spec in TASKS.values():
            spec["steps"][gen], spec["eval_every"][gen] = steps, every
    for task in args.tasks:
        env = TASKS[task]["env"]
        ds, npz = demonstrations(task, out)
        ve, vr = reference(env, VAL_SEED, args.val_episodes)
        te, tr = reference(env, EVAL_SEED, args.test_episodes)
        ref = {"val_expert": ve, "val_random": vr, "test_expert": te, "test_random": tr}
        print(f"{task}: expert {te:.1f}, random {tr:.1f} (test seeds)", flush=True)
        jobs = [("m", m) for m in args.methods] + ([("i", a) for a in args.imitation_algos] if args.imitation_python else [])
        for kind, m in jobs:
            r = run_method(task, m, ds, out, ref, args) if kind == "m" else run_imitation(task, npz, out, ref, args, m)
            r["reference"] = ref
            results.append(r)
            with open(jsonl, "a") as f:
                f.write(json.dumps(r) + "\n")
            print({k: v for k, v in r.items() if k not in ("curve", "reference")}, flush=True)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = ["# Adversarial imitation (GAIL / AIRL) vs BC", "",
             f"- command: `python benchmarks/adversarial.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
             f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, {platform.machine()}, "
             f"{os.cpu_count()} cores shared with other jobs (wall-clock figures are inflated and noisy), torch {torch.__version__}",
             "- normalized return: 0 = uniform random actions, 1 = the scripted expert, on the same seeds; final figure: the "
             f"last policy on {args.test_episodes} test seeds; curve: {args.val_episodes} validation episodes", "",
             "| task | method | env steps | wall s | test return | normalized | success | env steps to 0.9 (val) | wall s to 0.9 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['task']} | {r['method']} | failed: {r['error']} |||||||")
            continue
        lines.append(f"| {r['task']} | {r['method']} | {r['env_steps']} | {fmt(r['seconds'], 0)} | {fmt(r['test_return'], 1)} | "
                     f"{fmt(r['test_normalized'])} | {fmt(r['test_success'])} | {fmt(r['steps_to_0.9'])} | {fmt(r['time_to_0.9'], 0)} |")
    lines += ["", "## Curves (validation normalized return at env steps)", ""]
    for r in results:
        if r.get("curve"):
            # (runs before the logging fix evaluated the final PPO policy again at every step past the budget)
            pts = ", ".join(f"{c['env_steps']}: {c['normalized']:.2f}" for c in r["curve"] if c["env_steps"] <= r["env_steps"])
            lines.append(f"- {r['task']} / {r['method']} ({r['env_steps']} steps): {pts}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(text)


if __name__ == "__main__":
    main()
