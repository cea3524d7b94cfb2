"""Observation-noise augmentation vs plain BC on `reach`, with the insight tools end to end.

    nice -n 10 python benchmarks/obs_noise_shift.py --out /tmp/obs-noise-bench

collects 10 expert demos, runs `mimetic compare reach --methods bc` for each --obs-noise level
(3 training seeds, 100 evaluation episodes each, the same seeds for every run), measures the state
shift of each level's seed-0 policy (`mimetic shift`, 100 episodes) and its near-goal gain (how hard it
pulls towards the goal from 0.05 away, relative to the expert), writes one HTML report over everything, and
prints a markdown table. Re-running reuses finished runs and shift results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mimetic.cli import main


def cli(*argv) -> None:
    code = main(["-q", *map(str, argv)])
    if code != 0:
        raise SystemExit(f"mimetic {' '.join(map(str, argv))} failed with status {code}")


def near_goal_gain(run: Path, data: Path, offset: float = 0.05, seed: int = 0) -> float:
    """How strongly the policy pulls towards the goal from `offset` away (zero velocity), as a fraction of the
    expert's PD action: sum(a_policy . (goal - pos)) / sum(a_expert . (goal - pos)) over the demo goals."""
    import numpy as np

    from mimetic.data import Dataset
    from mimetic.envs.reach import expert_action
    from mimetic.policies.base import load_policy

    goals = Dataset.load(data).observations[:, 4:6]
    pos = goals + np.random.default_rng(seed).normal(0, offset, goals.shape)
    obs = np.concatenate([pos, np.zeros_like(goals), goals], 1).astype(np.float32)
    a = load_policy(run).predict(torch.as_tensor(obs)[:, None, :])[:, 0].numpy()
    e = np.stack([expert_action(o) for o in obs])
    return float((a * (goals - pos)).sum() / (e * (goals - pos)).sum())


def bench(out: Path, noises: list[float], demos: int, steps: int, episodes: int, seeds: str) -> str:
    data = out / "demos"
    if not (data / "meta/info.json").exists():
        cli("collect", "reach", "--episodes", demos, "--seed", 0, "--out", data)
    rows, folders = [], []
    for noise in noises:
        folder = out / f"bc-noise{noise}"
        cli("compare", "reach", "--methods", "bc", "--data", data, "--seeds", seeds, "--episodes", episodes,
            "--steps", steps, "--option", f"obs_noise={noise}", "--out", folder)
        res = json.loads((folder / "compare.json").read_text())["results"][0]
        run = folder / "runs/bc-seed0"
        shift_json = folder / "shift-seed0.json"
        if not shift_json.exists():
            cli("shift", run, "--data", data, "--episodes", episodes, "--json", shift_json)
        sh = json.loads(shift_json.read_text())
        ref = sh["reference"]["state"]
        rows.append((noise, res, sh["state"], ref, near_goal_gain(run, data)))
        folders += [folder, run]
    cli("report", *folders, data, "--out", out / "report.html")
    lines = ["| obs noise (normalized std) | success pooled [95% Wilson CI] | mean ± std over seeds | per seed | "
             "seed-0 state KL(expert‖learner) sum | seed-0 learner states in expert k-NN | seed-0 PCA-grid overlap | "
             "seed-0 near-goal gain |",
             "|---|---|---|---|---|---|---|---|"]
    for noise, r, s, ref, gain in rows:
        lo, hi = r["ci95_pooled"]
        lines.append(f"| {noise} | {r['success_pooled']:.3f} [{lo:.3f}, {hi:.3f}] | {r['success_mean']:.3f} ± "
                     f"{r['success_std']:.3f} | {', '.join(f'{v:.2f}' for v in r['success_per_seed'])} | "
                     f"{s['kl_expert_learner_sum']:.3f} | {s['learner_in_expert']:.3f} | {s['pca_overlap']:.3f} | {gain:.2f} |")
    ref = rows[0][3]
    lines.append(f"| expert rollouts (reference) | 1.000 | – | – | {ref['kl_expert_learner_sum']:.3f} | "
                 f"{ref['learner_in_expert']:.3f} | {ref['pca_overlap']:.3f} | 1.00 |")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seeds", default="0,1,2")
    a = p.parse_args()
    print(bench(a.out, a.noise, a.demos, a.steps, a.episodes, a.seeds))
