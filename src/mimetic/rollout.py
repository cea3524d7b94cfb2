"""Run any actor in environments and record Episodes.

Episodes run in lockstep batches of `num_envs` environments: every environment of a batch is reset
with its own seed, the actor gets the whole batch of observations at once (one batched network
call per step instead of one per environment), and a finished environment waits for the batch to
end. Seeds fully determine initial states, so two actors run on the same seeds start from the
same states (paired comparisons); the actor is reset with the batch's seeds too
(`reset(num_envs, seeds)`), so a stochastic actor can seed each episode's randomness from its seed.

The actor gets what the environments observe, batched (see `mimetic.actors`): a float32 (n, d)
array for plain vector observations, a dict key -> (n, ...) array for Dict observations (images stay
uint8). Episodes record only the recorded keys (`mimetic.features.recorded`: never `privileged.*`).

The environments may live in worker processes (`workers=W`, see `mimetic.workers`): the actor still
runs here on the whole batch, and the episodes are bit-identical whatever W. The default (None)
keeps them in this process unless a simulator renders cameras (`mimetic.workers.auto_workers`).

An actor may expose `last_extras` (a dict of arrays with one row per environment) after `act`;
those are recorded per step into `Episode.extras` (DAgger records who acted and the expert label).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from mimetic.actors import Actor, reset_actor
from mimetic.data.episode import Episode
from mimetic.errors import MimeticError
from mimetic.features import recorded
from mimetic.progress import progress_bar
from mimetic.workers import LocalEnvs, WorkerEnvs, open_envs, stack_obs


def check_action(action: np.ndarray, n: int, act_dim: int, who: str) -> np.ndarray:
    action = np.asarray(action, dtype=np.float32)
    if action.shape != (n, act_dim):
        raise MimeticError(f"{who} returned actions of shape {action.shape}, expected {(n, act_dim)}")
    if not np.all(np.isfinite(action)):
        raise MimeticError(f"{who} returned NaN or inf actions")
    return action


class _Recorder:
    """One episode's steps as they come: observation rows (per recorded key for dict observations), actions, ..."""

    def __init__(self):
        self.obs: list | dict[str, list] | None = None
        self.act, self.rew, self.succ, self.extras = [], [], [], {}

    def add(self, obs_batch, i: int, action, reward: float, success: bool, extras: Mapping) -> None:
        if isinstance(obs_batch, Mapping):
            if self.obs is None:
                self.obs = {k: [] for k in obs_batch}
            for k, rows in self.obs.items():
                rows.append(obs_batch[k][i])
        else:
            self.obs = self.obs if self.obs is not None else []
            self.obs.append(obs_batch[i])
        self.act.append(action)
        self.rew.append(reward)
        self.succ.append(success)
        for k, v in extras.items():
            self.extras.setdefault(k, []).append(np.asarray(v)[i])

    def episode(self, terminated: bool, task: str, final_obs) -> Episode:
        if isinstance(self.obs, dict):
            observations = {k: np.stack(v) for k, v in self.obs.items()}
            final = recorded(final_obs)
        else:
            observations = np.stack(self.obs)
            final = np.asarray(final_obs, dtype=np.float32).reshape(-1)
        return Episode(observations=observations, actions=np.stack(self.act), rewards=np.array(self.rew),
                       successes=np.array(self.succ), terminated=terminated, task=task,
                       extras={k: np.stack(v) for k, v in self.extras.items()}, final_observation=final)


def run_episodes(
    envs: LocalEnvs | WorkerEnvs,
    actor: Actor,
    seeds: Sequence[int],
    *,
    task: str = "",
    progress: bool = False,
    desc: str = "rollout",
    on_episode: Callable[[Episode], None] | None = None,
) -> list[Episode]:
    """One episode per seed in environments opened with `mimetic.workers.open_envs`, in batches of their number."""
    seeds = [int(s) for s in seeds]
    sizes = envs.info.sizes
    discrete, act_dim = sizes.discrete, sizes.act_dim
    who = getattr(actor, "name", type(actor).__name__)
    episodes: list[Episode] = []
    bar = progress_bar(progress, total=len(seeds), desc=desc, unit="ep")
    try:
        for b in range(0, len(seeds), envs.num_envs):
            batch_seeds = seeds[b : b + envs.num_envs]
            n = len(batch_seeds)
            obs = envs.run("reset", list(enumerate(batch_seeds)))
            reset_actor(actor, n, batch_seeds)  # per-episode sampling randomness follows the episode's seed
            rec = [_Recorder() for _ in range(n)]
            done = np.zeros(n, bool)
            finished: list[Episode | None] = [None] * n
            while not done.all():
                obs_batch = stack_obs(obs)
                action = check_action(actor.act(obs_batch), n, act_dim, who)
                extras = getattr(actor, "last_extras", None) or {}
                kept = recorded(obs_batch) if isinstance(obs_batch, Mapping) else obs_batch
                active = np.flatnonzero(~done)
                # a discrete env takes the nearest valid index (a regressed index may leave the range)
                sent = [int(np.clip(np.rint(action[i, 0]), 0, sizes.n_actions - 1)) if discrete else action[i]
                        for i in active]
                results = envs.run("step", list(zip(active.tolist(), sent)))
                for i, (o2, r, term, trunc, success) in zip(active, results):
                    rec[i].add(kept, i, action[i], r, success, extras)
                    obs[i] = o2
                    if term or trunc:
                        done[i] = True
                        ep = rec[i].episode(term, task, o2)
                        finished[i] = ep
                        if on_episode is not None:
                            on_episode(ep)
                        bar.update(1)
            episodes.extend(finished)  # type: ignore[arg-type]
    finally:
        bar.close()
    return episodes


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
    workers: int | None = None,
    backend=None,
) -> list[Episode]:
    """Run one episode per seed and return them in seed order.

    `workers`: processes the environments run in (1: this process; None: `mimetic.workers.auto_workers`, 2 where
    a simulator renders cameras); `backend`: a `mimetic.shards.RayBackend` runs them as Ray tasks instead
    (`on_episode` then sees each episode once its shard is back, in seed order). The episodes depend on neither."""
    seeds = [int(s) for s in seeds]
    num_envs = max(1, min(num_envs, len(seeds)))
    if backend is not None:
        from mimetic.shards import Rollouts

        with Rollouts(env, actor, num_envs=num_envs, env_options=env_options, task=task, backend=backend) as runs:
            episodes = runs.episodes(seeds, progress=progress, desc=desc)
        for ep in episodes if on_episode is not None else []:
            on_episode(ep)
        return episodes
    with open_envs(env, num_envs, env_options=env_options, workers=workers) as envs:
        return run_episodes(envs, actor, seeds, task=task, progress=progress, desc=desc, on_episode=on_episode)
