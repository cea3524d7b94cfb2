"""CPU cost of the chunk policies on one core: ms per predicted chunk and ms per training step.

Uses the reach-bimodal presets of benchmarks/expressive.py (8-d state, 2-d action). The weights
are untrained: the cost of a forward pass does not depend on their values.

    python benchmarks/inference_cost.py
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from expressive import PRESETS, median_ms  # noqa: E402

from mimetic.algos import method_module  # noqa: E402
from mimetic.policies.base import POLICY_TYPES  # noqa: E402

OBS_DIM, ACT_DIM = 8, 2
POLICY = {"bc": "mlp", "act": "act", "diffusion": "diffusion", "flow": "flow"}


def build(method: str, **overrides):
    import importlib

    module = method_module(method)
    cfg = module.Config(**{**PRESETS[method], **overrides})
    if hasattr(module, "resolve_action_start"):
        module.resolve_action_start(cfg)
    mod, cls = POLICY_TYPES[POLICY[method]].split(":")
    policy_class = getattr(importlib.import_module(mod), cls)
    names = {f.name for f in dataclasses.fields(policy_class.config_class)}
    pcfg = policy_class.config_class(**{k: v for k, v in dataclasses.asdict(cfg).items() if k in names},
                                     obs_dim=OBS_DIM, act_dim=ACT_DIM)
    return policy_class(pcfg), cfg


def train_ms(policy, cfg, repeats: int = 30) -> float:
    c = policy.config
    B = cfg.batch_size
    batch = {"obs": torch.randn(B, c.n_obs_steps, OBS_DIM), "action": torch.randn(B, c.horizon, ACT_DIM),
             "action_pad": torch.zeros(B, c.horizon, dtype=torch.bool)}
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)

    def step():
        loss, _ = policy.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    policy.train()
    return median_ms(step, repeats)


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    cases = [("bc", {}), ("act", {}), ("diffusion", {"num_inference_steps": 10}), ("diffusion", {"num_inference_steps": 5}),
             ("flow", {"num_inference_steps": 4}), ("flow", {"num_inference_steps": 2})]
    for method, over in cases:
        policy, cfg = build(method, **over)
        policy.eval()
        obs = torch.randn(1, policy.config.n_obs_steps, OBS_DIM)
        with torch.inference_mode():
            chunk = median_ms(lambda: policy.predict(obs), 50)
        rows.append((method, over.get("num_inference_steps", "-"), policy.num_parameters(), chunk,
                     chunk / max(1, policy.config.n_action_steps), train_ms(policy, cfg), cfg.batch_size))
    print(f"{platform.machine()}, torch {torch.__version__}, 1 thread, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| method | sampling steps | params | ms / chunk | ms / control step (chunk / Ta) | ms / train step (batch) |")
    print("|---|---|---|---|---|---|")
    for m, s, n, c, cs, t, b in rows:
        print(f"| {m} | {s} | {n:,} | {c:.2f} | {cs:.2f} | {t:.1f} ({b}) |")


if __name__ == "__main__":
    main()
