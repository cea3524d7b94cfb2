"""How well a gail/airl run's learned reward matches the environment's: `mimetic reward RUN`."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mimetic.algos.adversarial.discriminator import learned_rewards, load_reward
from mimetic.errors import MimeticError


def reward_report(run_dir: str | Path, env: str | None = None, env_options: dict | None = None, episodes: int = 10,
                  plot: bool | str | Path = True) -> dict:
    """Compare the learned reward with the environment's reward along expert and random trajectories
    (evaluation seeds). Returns pearson / spearman over all steps, the mean learned reward per step of
    each, and `plot` (PNG: learned vs true scatter, and both along one trajectory of each)."""
    from scipy import stats

    from mimetic.actors import RandomActor
    from mimetic.envs import make_env, make_expert
    from mimetic.envs.spaces import sizes_of
    from mimetic.evaluate import EVAL_SEED
    from mimetic.rollout import rollout

    if episodes < 1:
        raise MimeticError(f"reward: --episodes must be at least 1, got {episodes}")
    run_dir = Path(run_dir)
    disc, cfg = load_reward(run_dir)
    env = env or cfg["env"]
    options = dict(cfg.get("env_options") or {}) if env_options is None else dict(env_options)
    e = make_env(env, **options)
    try:
        sizes = sizes_of(e)
        sizes.require_continuous("reward", env)
        sizes.check_data(int(cfg["obs_dim"]), int(cfg["act_dim"]), f"the learned reward of {run_dir}", env)
        random_actor = RandomActor(e.action_space, seed=0)
    finally:
        e.close()
    low, high = sizes.low, sizes.high
    seeds = range(EVAL_SEED, EVAL_SEED + episodes)
    groups = {}
    for name, actor in (("expert", make_expert(env, **options)), ("random", random_actor)):
        eps = rollout(env, actor, seeds, env_options=options)
        learned, true = [], []
        for ep in eps:
            nxt = np.concatenate([ep.observations[1:], ep.final_observation[None]])
            act_n = np.clip(2 * (ep.actions - low) / (high - low) - 1, -1, 1)
            learned.append(learned_rewards(disc, ep.observations, act_n, nxt))
            true.append(np.asarray(ep.rewards, dtype=np.float64))
        groups[name] = (learned, true)
    all_l = np.concatenate([np.concatenate(g[0]) for g in groups.values()])
    all_t = np.concatenate([np.concatenate(g[1]) for g in groups.values()])
    const = np.ptp(all_l) == 0 or np.ptp(all_t) == 0
    report = {
        "method": cfg["kind"], "env": env, "env_options": options, "episodes": episodes,
        "reward": "g(s) (state-only)" if cfg["kind"] == "airl" else "d(s, a) = log D - log(1 - D)",
        "pearson": float("nan") if const else float(stats.pearsonr(all_l, all_t)[0]),
        "spearman": float("nan") if const else float(stats.spearmanr(all_l, all_t)[0]),
        "expert_learned_reward": float(np.mean(np.concatenate(groups["expert"][0]))),
        "random_learned_reward": float(np.mean(np.concatenate(groups["random"][0]))),
        "expert_true_reward": float(np.mean(np.concatenate(groups["expert"][1]))),
        "random_true_reward": float(np.mean(np.concatenate(groups["random"][1]))),
        "plot": None,
    }
    if plot is not False:
        path = run_dir / "reward.png" if plot is True else Path(plot)
        report["plot"] = str(_plot(path, groups, f"{cfg['kind']} on {env}: learned {report['reward']} vs true reward"))
    return report


def _plot(path: Path, groups: dict, title: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mimetic.data.io import atomic_write_bytes

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    for i, (name, (learned, true)) in enumerate(groups.items()):
        ax.scatter(np.concatenate(true), np.concatenate(learned), s=3, alpha=0.4, color=f"C{i}", label=name)
    ax.set_xlabel("true reward")
    ax.set_ylabel("learned reward")
    ax.legend()
    ax = fig.add_subplot(1, 2, 2)
    ax2 = ax.twinx()
    for i, (name, (learned, true)) in enumerate(groups.items()):
        ax.plot(learned[0], color=f"C{i}", label=f"{name} learned")
        ax2.plot(true[0], color=f"C{i}", linestyle=":", label=f"{name} true")
    ax.set_xlabel("step (first episode)")
    ax.set_ylabel("learned (solid)")
    ax2.set_ylabel("true (dotted)")
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path
