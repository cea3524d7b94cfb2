"""Run any actor in environments and record Episodes.

Episodes run in lockstep batches of `num_envs` environments: every environment of a batch is reset
with its own seed, the actor gets the whole batch of observations at once (one batched network
call per step instead of one per environment), and a finished environment waits for the batch to
end. Seeds fully determine initial states, so two actors run on the same seeds start from the
same states (paired comparisons); the actor is reset with the batch's seeds too
(`reset(num_envs, seeds)`), so a stochastic actor can seed each episode's randomness from its seed.

An actor may expose `last_extras` (a dict of arrays with one row per environment) after `act`;
those are recorded per step into `Episode.extras` (DAgger records who acted and the expert label).
"""

from __future__ import annotations

from typing import Callable, Sequence

import gymnasium as gym
import numpy as np

from mimetic.actors import Actor, reset_actor
from mimetic.data.episode import Episode
from mimetic.envs.spaces import sizes_of
from mimetic.errors import MimeticError
from mimetic.progress import progress_bar


def _as_factory(env: str | Callable[[], gym.Env], env_options: dict | None) -> Callable[[], gym.Env]:
    if callable(env):
        return env
    from mimetic.envs import make_env

    return lambda: make_env(env, **(env_options or {}))


def check_action(action: np.ndarray, n: int, act_dim: int, who: str) -> np.ndarray:
    action = np.asarray(action, dtype=np.float32)
    if action.shape != (n, act_dim):
        raise MimeticError(f"{who} returned actions of shape {action.shape}, expected {(n, act_dim)}")
    if not np.all(np.isfinite(action)):
        raise MimeticError(f"{who} returned NaN or inf actions")
    return action


def rollout(
    env: str | Callable[[], gym.Env],
    actor: Actor,
    seeds: Sequence[int],
    *,
    env_options: dict | None = None,
    num_envs: int = 16,
    task: str = "",
    progress: bool = False,
    desc: str = "rollout",
    on_episode: Callable[[Episode], None] | None = None,
) -> list[Episode]:
    """Run one episode per seed and return them in seed order."""
    factory = _as_factory(env, env_options)
    seeds = [int(s) for s in seeds]
    num_envs = max(1, min(num_envs, len(seeds)))
    envs = [factory() for _ in range(num_envs)]
    sizes = sizes_of(envs[0])
    discrete, act_dim = sizes.discrete, sizes.act_dim
    who = getattr(actor, "name", type(actor).__name__)
    episodes: list[Episode] = []
    bar = progress_bar(progress, total=len(seeds), desc=desc, unit="ep")
    try:
        for b in range(0, len(seeds), num_envs):
            batch_seeds = seeds[b : b + num_envs]
            n = len(batch_seeds)
            obs = [e.reset(seed=s)[0] for e, s in zip(envs[:n], batch_seeds)]
            reset_actor(actor, n, batch_seeds)  # per-episode sampling randomness follows the episode's seed
            rec = [dict(obs=[], act=[], rew=[], succ=[], extras={}) for _ in range(n)]
            done = np.zeros(n, bool)
            finished: list[Episode | None] = [None] * n
            while not done.all():
                obs_batch = np.stack([np.asarray(o, dtype=np.float32).reshape(-1) for o in obs])
                action = check_action(actor.act(obs_batch), n, act_dim, who)
                extras = getattr(actor, "last_extras", None) or {}
                for i in np.flatnonzero(~done):
                    # a discrete env takes the nearest valid index (a regressed index may leave the range)
                    a = int(np.clip(np.rint(action[i, 0]), 0, sizes.n_actions - 1)) if discrete else action[i]
                    o2, r, term, trunc, info = envs[i].step(a)
                    r_ = rec[i]
                    r_["obs"].append(obs_batch[i])
                    r_["act"].append(action[i])
                    r_["rew"].append(float(r))
                    r_["succ"].append(bool(info.get("success", False)))
                    for k, v in extras.items():
                        r_["extras"].setdefault(k, []).append(np.asarray(v)[i])
                    obs[i] = o2
                    if term or trunc:
                        done[i] = True
                        ep = Episode(
                            observations=np.stack(r_["obs"]),
                            actions=np.stack(r_["act"]),
                            rewards=np.array(r_["rew"]),
                            successes=np.array(r_["succ"]),
                            terminated=bool(term),
                            task=task,
                            extras={k: np.stack(v) for k, v in r_["extras"].items()},
                            final_observation=np.asarray(o2, dtype=np.float32).reshape(-1),
                        )
                        finished[i] = ep
                        if on_episode is not None:
                            on_episode(ep)
                        bar.update(1)
            episodes.extend(finished)  # type: ignore[arg-type]
    finally:
        bar.close()
        for e in envs:
            e.close()
    return episodes
