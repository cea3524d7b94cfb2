"""The discriminator of GAIL / AIRL, the generator's reward derived from it, and the learned reward on disk.

- GAIL: D(s, a) = sigmoid(d(s, a)); generator reward r = log D - log(1 - D) = d(s, a).
- AIRL: the logit is f(s, a, s') - log pi(a|s) with f = g(s) + gamma h(s') - h(s): g is a state-only
  reward, h a shaping potential, so g is disentangled from the dynamics. The SAC generator's reward is
  f (SAC adds the entropy bonus itself), the PPO generator's f - log pi (= the logit).
- Absorbing states (DAC): the state after a termination is an absorbing state (observation zeroed,
  indicator 1) whose self-loop the discriminator also scores; its value is r_abs / (1 - gamma).
- Optional gradient penalty on points between expert and generator inputs (`grad_penalty`).

RUN/reward/ holds the trained discriminator: `config.json` + `reward.safetensors` (`save_reward`,
`load_reward`; no pickle). `learned_rewards` scores transitions with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from mimetic.data.io import atomic_write_bytes, atomic_write_json, read_json
from mimetic.errors import MimeticError
from mimetic.policies.base import Normalizer
from mimetic.policies.gaussian import OBS_CLIP, TanhGaussianPolicy
from mimetic.policies.mlp import mlp

KINDS = ("gail", "airl")
REWARD_DIR = "reward"


class Discriminator(nn.Module):
    """GAIL: d(x, a). AIRL: g(x) + gamma h(x') - h(x) - log pi(a|s). x = (normalized obs, absorbing flag)."""

    def __init__(self, kind: str, obs_dim: int, act_dim: int, hidden: list[int], gamma: float, absorbing: bool = True):
        super().__init__()
        if kind not in KINDS:
            raise MimeticError(f"unknown adversarial method {kind!r}: use one of {', '.join(KINDS)}")
        self.kind, self.gamma, self.absorbing = kind, gamma, absorbing
        self.obs_norm = Normalizer(obs_dim)
        if kind == "gail":
            self.d = mlp([obs_dim + 1 + act_dim, *hidden, 1], activation=nn.ReLU)
        else:
            self.g = mlp([obs_dim + 1, *hidden, 1], activation=nn.ReLU)
            self.h = mlp([obs_dim + 1, *hidden, 1], activation=nn.ReLU)

    def state_input(self, obs: torch.Tensor, absorbing: torch.Tensor) -> torch.Tensor:
        flag = absorbing.float()[:, None]
        return torch.cat([self.obs_norm(obs).clamp(-OBS_CLIP, OBS_CLIP) * (1 - flag), flag], -1)

    def inputs(self, b: dict) -> dict[str, torch.Tensor]:
        """The differentiable inputs of a batch (what the gradient penalty interpolates)."""
        x = self.state_input(b["obs"], b["absorbing"])
        act = b["act"] * (1 - b["absorbing"].float()[:, None])
        if self.kind == "gail":
            return {"x": x, "act": act}
        nxt_absorbing = b["terminal"] | b["absorbing"] if self.absorbing else b["absorbing"]
        return {"x": x, "x2": self.state_input(b["next_obs"], nxt_absorbing), "live": (~b["terminal"]).float()[:, None]}

    def f(self, inp: dict) -> torch.Tensor:
        """GAIL: d(s, a); AIRL: f(s, s') = g(s) + gamma h(s') - h(s). Shape (B,)."""
        if self.kind == "gail":
            return self.d(torch.cat([inp["x"], inp["act"]], -1)).squeeze(-1)
        h2 = self.h(inp["x2"]) if self.absorbing else self.h(inp["x2"]) * inp["live"]  # h = 0 after a plain termination
        return (self.g(inp["x"]) + self.gamma * h2 - self.h(inp["x"])).squeeze(-1)

    def logits(self, inp: dict, logp: torch.Tensor | None) -> torch.Tensor:
        out = self.f(inp)
        return out - logp if self.kind == "airl" else out

    def state_reward(self, obs: torch.Tensor) -> torch.Tensor:
        """AIRL's learned state-only reward g(s) (B,)."""
        return self.g(self.state_input(obs, torch.zeros(len(obs), dtype=torch.bool))).squeeze(-1)

    def absorbing_reward(self, act_dim: int) -> torch.Tensor:
        """The reward of the absorbing state's self-loop (scalar)."""
        one = torch.ones(1, dtype=torch.bool)
        b = {"obs": torch.zeros(1, self.obs_norm.shift.shape[0]), "act": torch.zeros(1, act_dim), "absorbing": one,
             "next_obs": torch.zeros(1, self.obs_norm.shift.shape[0]), "terminal": one}
        return self.f(self.inputs(b))[0]


def discriminator_step(disc: Discriminator, opt, expert: dict, agent: dict, policy: TanhGaussianPolicy,
                       grad_penalty: float) -> dict[str, float]:
    """One step of logistic regression expert (1) vs agent (0), plus the gradient penalty."""
    bce = nn.functional.binary_cross_entropy_with_logits
    lp_e = lp_a = None
    if disc.kind == "airl":
        with torch.no_grad():
            lp_e, lp_a = _logp(policy, disc, expert), _logp(policy, disc, agent)
    in_e, in_a = disc.inputs(expert), disc.inputs(agent)
    le, la = disc.logits(in_e, lp_e), disc.logits(in_a, lp_a)
    loss = bce(le, torch.ones_like(le)) + bce(la, torch.zeros_like(la))
    gp = torch.zeros(())
    if grad_penalty > 0:
        eps = torch.rand(len(le), 1)
        mix = {k: (eps * in_e[k] + (1 - eps) * in_a[k]).detach().requires_grad_(k != "live") for k in in_e}
        out = disc.f(mix)
        grads = torch.autograd.grad(out.sum(), [v for k, v in mix.items() if k != "live"], create_graph=True)
        gp = torch.cat(grads, -1).pow(2).sum(-1).mean()
        loss = loss + grad_penalty * gp
    if not torch.isfinite(loss):
        raise MimeticError(f"the discriminator diverged (loss {loss.item()}): lower --disc-lr or raise --grad-penalty")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        acc = 0.5 * ((le > 0).float().mean() + (la < 0).float().mean())
    return {"disc_loss": loss.item(), "disc_acc": float(acc), "gp": gp.item()}


def _logp(policy: TanhGaussianPolicy, disc: Discriminator, b: dict) -> torch.Tensor:
    """log pi(a|s) of a batch (0 on absorbing rows)."""
    lp = policy.log_prob(policy.obs_norm(b["obs"]), b["act"])
    return torch.where(b["absorbing"], torch.zeros_like(lp), lp)


def generator_reward(disc: Discriminator, b: dict, policy: TanhGaussianPolicy, generator: str) -> torch.Tensor:
    with torch.no_grad():
        r = disc.f(disc.inputs(b))
        if disc.kind == "airl" and generator == "ppo":
            r = r - _logp(policy, disc, b)
    return r


def terminal_value(disc: Discriminator, act_dim: int, gamma: float, absorbing: bool) -> torch.Tensor:
    if not absorbing:
        return torch.zeros(())
    with torch.no_grad():
        return disc.absorbing_reward(act_dim) / (1 - gamma)


# ============================================================================ the learned reward on disk


def save_reward(disc: Discriminator, directory: Path, meta: dict) -> None:
    """RUN/reward/: config.json (kind, sizes, gamma, ...) + reward.safetensors (the discriminator). No pickle."""
    from safetensors.torch import save

    state = {k: v.detach().contiguous().clone() for k, v in disc.state_dict().items()}
    atomic_write_bytes(directory / "reward.safetensors", save(state, metadata={"format": "mimetic-adversarial-reward"}))
    hidden = [m.out_features for m in (disc.d if disc.kind == "gail" else disc.g) if isinstance(m, nn.Linear)][:-1]
    atomic_write_json(directory / "config.json", {**meta, "kind": disc.kind, "obs_dim": int(disc.obs_norm.shift.shape[0]),
                                                   "hidden": hidden, "gamma": disc.gamma, "absorbing": disc.absorbing, "format": "mimetic-adversarial-reward-1"})


def load_reward(run_dir: str | Path) -> tuple[Discriminator, dict]:
    """The discriminator (learned reward) of a gail/airl run, and its config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(run_dir) / REWARD_DIR
    cfg = read_json(directory / "config.json", "learned reward config")
    try:
        disc = Discriminator(cfg["kind"], int(cfg["obs_dim"]), int(cfg["act_dim"]), list(cfg["hidden"]), float(cfg["gamma"]),
                             bool(cfg.get("absorbing", True)))
    except (KeyError, TypeError, ValueError) as e:
        raise MimeticError(f"{directory / 'config.json'}: not a gail/airl reward config ({e})") from None
    path = directory / "reward.safetensors"
    if not path.is_file():
        raise MimeticError(f"learned reward {path} not found")
    try:
        disc.load_state_dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise MimeticError(f"{path}: cannot load the learned reward: {str(e).strip().splitlines()[0]}") from None
    return disc.eval(), cfg


@torch.no_grad()
def learned_rewards(disc: Discriminator, obs: np.ndarray, act_n: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """Per-step learned reward: GAIL d(s, a); AIRL g(s), its state-only reward."""
    if disc.kind == "airl":
        return disc.state_reward(torch.as_tensor(obs, dtype=torch.float32)).numpy()
    b = {"obs": torch.as_tensor(obs, dtype=torch.float32), "act": torch.as_tensor(act_n, dtype=torch.float32),
         "next_obs": torch.as_tensor(next_obs, dtype=torch.float32), "absorbing": torch.zeros(len(obs), dtype=torch.bool),
         "terminal": torch.zeros(len(obs), dtype=torch.bool)}
    return disc.f(disc.inputs(b)).numpy()
