"""CPU cost of the chunk policies on one core: ms per predicted chunk and ms per training step.

Two sets of presets: reach-bimodal's (benchmarks/expressive.py, 8-d state, 2-d action) and
Meta-World's (benchmarks/metaworld_methods.py, 39-d state, 4-d action). Diffusion and flow chunks
are timed as `predict` runs them (the traced U-Net) and with the eager U-Net (autograd on, as in
training), to show what the trace saves. The weights are untrained: the cost of a forward pass
does not depend on their values. Run it on an otherwise idle machine.

    python benchmarks/inference_cost.py
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from expressive import PRESETS, median_ms  # noqa: E402
from metaworld_methods import METHODS  # noqa: E402

from mimetic.algos import method_module  # noqa: E402
from mimetic.algos.trainer import policy_config, resolve_defaults  # noqa: E402
from mimetic.policies.base import POLICY_TYPES  # noqa: E402

POLICY = {"bc": "mlp", "act": "act", "diffusion": "diffusion", "flow": "flow"}
TASKS = {  # name: (obs dim, act dim, method -> preset)
    "reach-bimodal": (8, 2, PRESETS),
    "Meta-World": (39, 4, {"bc": METHODS["bc-mlp"][1], **{m: METHODS[m][1] for m in ("act", "diffusion", "flow")}}),
}


def build(method: str, obs_dim: int, act_dim: int, preset: dict, **overrides):
    import importlib

    module = method_module(method)
    cfg = resolve_defaults(module.Config(**{**preset, **overrides}), reads_cameras=False)  # state observations
    mod, cls = POLICY_TYPES[POLICY[method]].split(":")
    policy_class = getattr(importlib.import_module(mod), cls)
    return policy_class(policy_config(policy_class.config_class, cfg, obs_dim, act_dim)), cfg


def train_ms(policy, cfg, repeats: int = 30) -> float:
    c = policy.config
    B = cfg.batch_size
    batch = {"obs": torch.randn(B, c.n_obs_steps, c.obs_dim), "action": torch.randn(B, c.horizon, c.act_dim),
             "action_pad": torch.zeros(B, c.horizon, dtype=torch.bool)}
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)

    def step():
        loss, _ = policy.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    policy.train()
    return median_ms(step, repeats)


def eager_ms(policy, obs) -> float | str:
    """ms per chunk with the eager U-Net (autograd on, so `denoise` does not use the trace)."""
    if not hasattr(policy, "denoise"):
        return "-"
    with torch.enable_grad():
        return median_ms(lambda: policy.predict_normalized(policy.obs_norm(obs)), 20)


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    cases = [("bc", {}), ("act", {}), ("diffusion", {"num_inference_steps": 10}), ("diffusion", {"num_inference_steps": 5}),
             ("flow", {"num_inference_steps": 4}), ("flow", {"num_inference_steps": 2}), ("flow", {"num_inference_steps": 1})]
    for task, (obs_dim, act_dim, presets) in TASKS.items():
        for method, over in cases:
            policy, cfg = build(method, obs_dim, act_dim, presets[method], **over)
            policy.eval()
            obs = torch.randn(1, policy.config.n_obs_steps, obs_dim)
            with torch.inference_mode():
                chunk = median_ms(lambda: policy.predict(obs), 50)
            eager = eager_ms(policy, obs)
            rows.append((task, method, over.get("num_inference_steps", "-"), policy.num_parameters(), chunk,
                         eager if isinstance(eager, str) else f"{eager:.2f}", chunk / max(1, policy.config.n_action_steps),
                         train_ms(policy, cfg), cfg.batch_size))
    print(f"{platform.machine()}, torch {torch.__version__}, 1 thread, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| task (dims) | method | sampling steps | params | ms / chunk | ms / chunk, eager U-Net | ms / control step (chunk / Ta) "
          "| ms / train step (batch) | s / 1000 train steps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task, m, s, n, c, e, cs, t, b in rows:
        print(f"| {task} | {m} | {s} | {n:,} | {c:.2f} | {e} | {cs:.2f} | {t:.1f} ({b}) | {t:.0f} |")


if __name__ == "__main__":
    main()
