"""Helpers that tests/test_ray.py sends to Ray workers: importable there because the test puts tests/ on the
workers' PYTHONPATH (a class defined in a test module would be pickled by reference to a module they cannot see)."""

import os
import signal

import gymnasium as gym

CRASH_SEED = 1_000_005


class KillOnce:
    """Wraps an actor; the first Ray worker process to reach step `after` of an episode kills itself (SIGKILL),
    exactly once in all (a marker file created with O_EXCL), and only outside the process that built it."""

    def __init__(self, actor, marker: str, after: int = 3):
        self.actor, self.marker, self.after, self.home = actor, marker, after, os.getpid()
        self.name = getattr(actor, "name", "expert")

    def reset(self, num_envs=1, seeds=None):
        self.steps = 0
        self.actor.reset(num_envs, seeds)

    def act(self, obs):
        self.steps += 1
        if self.steps == self.after and os.getpid() != self.home:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return self.actor.act(obs)


class CrashOnSeed(gym.Wrapper):
    """`reach` whose simulator raises at the first step of the episode with seed CRASH_SEED."""

    def __init__(self, **options):
        from mimetic.envs import make_env

        super().__init__(make_env("reach", **options))
        self.seed = None

    def reset(self, *, seed=None, options=None):
        self.seed = seed
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        if self.seed == CRASH_SEED:
            raise RuntimeError("simulator exploded")
        return self.env.step(action)


gym.register("CrashyReach-v0", entry_point=CrashOnSeed, max_episode_steps=50)
