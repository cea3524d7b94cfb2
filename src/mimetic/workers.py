"""Environments for rollouts: in this process, or split across worker processes.

`open_envs(env, num_envs, env_options=..., workers=W)` gives `num_envs` environments that are
reset by seed and stepped by slot index. With W = 1 they live in this process; with W >= 2 they
are dealt round-robin to W worker processes (slot i to worker i % W), each of which builds its
share from the env name and options and resets or steps it on command. Rollout stays lockstep:
the actor sees the whole batch every step in the main process, sends every worker the actions
for its slots at once, and the workers step their shares in parallel (rendering cameras is what
takes the time). An environment's results depend only on its slot's seeds and actions, so a
rollout is bit-identical whatever W. The default W (`auto_workers`) is 2 where a simulator renders
cameras (MuJoCo: milliseconds a frame) and 1 otherwise: a step through a worker's pipe costs more
than a numpy-drawn frame or a state-only step.

Why our own small pool rather than gymnasium's AsyncVectorEnv: AsyncVectorEnv runs one process
per environment (16 processes, each importing MuJoCo and holding a GL context, for a batch of 16
on a 2-core machine), resets all environments together, and steps all of them every step with
autoreset, whereas rollout resets each slot with its own seed, steps only the slots still running
and never autoresets. A worker here holds several environments, so W follows the CPU count,
not the batch size.

Workers start with the "spawn" method: MuJoCo/EGL state must not be forked, and a spawned worker
builds its environments itself (a script that starts workers needs the usual
`if __name__ == "__main__":` guard of multiprocessing). They are started once per `open_envs` and
reused for every batch. A callable environment factory (instead of a name) goes to the workers
only if it can be pickled (a module-level function or a functools.partial of one); a lambda or a
closure cannot: it runs in process with W = 1, and asking for W >= 2 is a one-line error.

An environment that raises in a worker, a worker that dies, or one that does not answer within
`REPLY_TIMEOUT` seconds, is a one-line MimeticError naming the environment and the episode's
seed; every worker is shut down whatever happens (no orphans, no hang).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import pickle
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from mimetic.envs.spaces import EnvSizes, return_meaning, sizes_of_spaces
from mimetic.errors import MimeticError

REPLY_TIMEOUT = 600.0  # seconds a worker may take to build its environments or answer one command
_POLL = 0.05  # seconds between checks that a silent worker is still alive

EnvSpec = str | Callable[[], gym.Env]


@dataclass
class EnvInfo:
    """What the main process needs to know about the environments (built in a worker, or here)."""

    observation_space: gym.Space
    action_space: gym.Space
    metadata: dict
    feature_names: Any
    return_meaning: tuple[bool, str]

    @property
    def sizes(self) -> EnvSizes:
        return sizes_of_spaces(self.observation_space, self.action_space, self.metadata, self.feature_names)


def env_info(env: gym.Env) -> EnvInfo:
    meta = {"render_fps": (getattr(env, "metadata", None) or {}).get("render_fps")}
    names = getattr(getattr(env, "unwrapped", env), "feature_names", None)
    return EnvInfo(env.observation_space, env.action_space, meta, names, return_meaning(env))


def renders_cameras(env_options: Mapping | None) -> bool:
    """Whether the env options ask for camera images (the `cameras` option)."""
    cams = (env_options or {}).get("cameras")
    return bool(cams) and str(cams).lower() not in ("none", "false", "0", "")


def auto_workers(env: EnvSpec, env_options: Mapping | None = None) -> int:
    """Default worker count: min(2, CPUs) where the environment renders cameras with a simulator's renderer
    (Meta-World, gym/<id>: MuJoCo, milliseconds a frame), else 1 (in process). The built-in tasks draw their
    camera in numpy in microseconds, where the pipes to a worker cost more than they save. Evaluating the expert
    on 2 cores (load ~2): reach cameras=top, 640 episodes, about 1000 episodes/s in process and 400 with 2 workers;
    metaworld/reach-v3 cameras=corner4, 32 episodes in 16 envs, 1.5 episodes/s in process and 2.3 with 2 workers."""
    from mimetic.envs import BUILTIN

    if callable(env) or not renders_cameras(env_options) or env in BUILTIN:
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def _name_of(env: EnvSpec) -> str:
    while isinstance(env, functools.partial):
        env = env.func
    return env if isinstance(env, str) else getattr(env, "__name__", type(env).__name__)


def _factory(env: EnvSpec, env_options: Mapping | None) -> Callable[[], gym.Env]:
    if callable(env):
        return env
    from mimetic.envs import make_env

    return lambda: make_env(env, **dict(env_options or {}))


def _do(env: gym.Env, cmd: str, arg):
    """Reset (arg: the seed) or step (arg: the action) one environment; a step returns what rollout keeps."""
    if cmd == "reset":
        return env.reset(seed=arg)[0]
    obs, r, term, trunc, info = env.step(arg)
    return obs, float(r), bool(term), bool(trunc), bool(info.get("success", False))


class LocalEnvs:
    """`num_envs` environments in this process."""

    workers = 1

    def __init__(self, env: EnvSpec, num_envs: int, env_options: Mapping | None = None):
        factory = _factory(env, env_options)
        self.envs: list[gym.Env] = []
        try:
            for _ in range(num_envs):
                self.envs.append(factory())
        except BaseException:
            self.close()
            raise
        self.num_envs = num_envs
        self.info = env_info(self.envs[0])

    def run(self, cmd: str, items: Sequence[tuple[int, Any]]) -> list:
        """`cmd` ("reset" with seeds, "step" with actions) for (slot, argument) pairs; results in their order."""
        return [_do(self.envs[i], cmd, arg) for i, arg in items]

    def close(self) -> None:
        for e in self.envs:
            e.close()
        self.envs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _worker_main(conn, spec: tuple, count: int, current) -> None:
    """A worker: build `count` environments, then reset / step them on command until told to close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle; it shuts us down
    envs: list[gym.Env] = []
    try:
        kind, env, options = spec
        factory = _factory(pickle.loads(env) if kind == "pickle" else env, options)
        try:
            for _ in range(count):
                envs.append(factory())
            conn.send(("ready", env_info(envs[0])))
        except Exception as e:  # noqa: BLE001 - reported to the main process as a one-line error
            conn.send(("error", -1, f"{type(e).__name__}: {e}", traceback.format_exc()))
            return
        while True:
            cmd, items = conn.recv()
            if cmd == "close":
                return
            out, j = [], -1
            try:
                for j, arg in items:
                    current.value = j
                    out.append(_do(envs[j], cmd, arg))
                conn.send(("ok", out))
            except Exception as e:  # noqa: BLE001
                conn.send(("error", j, f"{type(e).__name__}: {e}", traceback.format_exc()))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the main process went away
    finally:
        for e in envs:
            try:
                e.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


class WorkerEnvs:
    """`num_envs` environments dealt round-robin to `workers` spawned processes (see the module docstring)."""

    def __init__(self, env: EnvSpec, num_envs: int, workers: int, env_options: Mapping | None = None):
        self.name = _name_of(env)
        if callable(env):
            try:
                spec = ("pickle", pickle.dumps(env), None)
            except Exception as e:  # noqa: BLE001 - lambdas, closures, local classes
                raise MimeticError(f"workers={workers} needs an environment name or a picklable factory, and "
                                   f"{self.name!r} cannot be pickled ({type(e).__name__}): pass the env name and "
                                   f"env_options, or workers=1 to keep it in this process") from None
        else:
            spec = ("name", env, dict(env_options or {}))
        self.num_envs, self.workers = num_envs, max(1, min(workers, num_envs))
        self.seeds: list[int | None] = [None] * num_envs  # each slot's current episode, for error messages
        self.procs, self.conns, self.current = [], [], []
        ctx = mp.get_context("spawn")
        try:
            for w in range(self.workers):
                parent, child = ctx.Pipe()
                current = ctx.RawValue("i", -1)
                count = len(range(w, num_envs, self.workers))
                p = ctx.Process(target=_worker_main, args=(child, spec, count, current), daemon=True,
                                name=f"mimetic-env-{w}")
                p.start()
                child.close()
                self.procs.append(p)
                self.conns.append(parent)
                self.current.append(current)
            infos = [self._receive(w, "building its environments") for w in range(self.workers)]
        except BaseException:
            self.close()
            raise
        self.info: EnvInfo = infos[0]

    def _where(self, w: int, local: int) -> str:
        if local < 0:
            return f"environment {self.name!r}"
        slot = w + local * self.workers
        seed = self.seeds[slot] if slot < self.num_envs else None
        return f"environment {self.name!r} (seed {seed})" if seed is not None else f"environment {self.name!r}"

    def _receive(self, w: int, doing: str):
        conn, proc = self.conns[w], self.procs[w]
        deadline = time.monotonic() + REPLY_TIMEOUT
        while True:
            try:
                if conn.poll(_POLL):
                    msg = conn.recv()
                    break
            except (EOFError, OSError):
                msg = None
                break
            if not proc.is_alive():
                msg = None
                break
            if time.monotonic() > deadline:
                raise MimeticError(f"{self._where(w, self.current[w].value)} did not answer in {REPLY_TIMEOUT:.0f} s "
                                   f"while {doing} (worker process {w})")
        if msg is None:  # died: the exit code says how (a negative one is the signal that killed it)
            proc.join(1.0)
            hint = (" (a script that starts environment workers needs `if __name__ == \"__main__\":`)"
                    if doing.startswith("building") else "")
            raise MimeticError(f"{self._where(w, self.current[w].value)}: worker process {w} died "
                               f"(exit code {proc.exitcode}) while {doing}{hint}")
        if msg[0] == "error":
            _, local, text, tb = msg
            err = MimeticError(f"{self._where(w, local)} raised {text} (in worker process {w}, {doing})")
            err.add_note(f"worker traceback:\n{tb}")
            raise err
        return msg[1]

    def run(self, cmd: str, items: Sequence[tuple[int, Any]]) -> list:
        """`cmd` ("reset" with seeds, "step" with actions) for (slot, argument) pairs; results in their order.
        Every worker gets its share first, so the shares run in parallel."""
        shares: list[list[tuple[int, Any]]] = [[] for _ in range(self.workers)]
        where: list[list[int]] = [[] for _ in range(self.workers)]  # positions in `items`, per worker
        for pos, (i, arg) in enumerate(items):
            if cmd == "reset":
                self.seeds[i] = arg
            w = i % self.workers
            shares[w].append((i // self.workers, arg))
            where[w].append(pos)
        busy = [w for w in range(self.workers) if shares[w]]
        for w in busy:
            self.conns[w].send((cmd, shares[w]))
        out: list = [None] * len(items)
        doing = "resetting" if cmd == "reset" else "stepping"
        for w in busy:
            for pos, res in zip(where[w], self._receive(w, doing)):
                out[pos] = res
        return out

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except (OSError, ValueError):
                pass
        for p in self.procs:
            p.join(2.0)
            if p.is_alive():
                p.terminate()
                p.join(1.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_envs(env: EnvSpec, num_envs: int, *, env_options: Mapping | None = None,
              workers: int | None = None) -> LocalEnvs | WorkerEnvs:
    """`num_envs` environments of `env` (a name, or a factory), in process (workers=1) or in `workers` processes;
    None: `auto_workers`. Use as a context manager (it closes the environments and stops the workers)."""
    if workers is None:
        workers = auto_workers(env, env_options)
    if int(workers) < 1:
        raise MimeticError(f"workers must be at least 1, got {workers}")
    if int(workers) == 1 or num_envs == 1:
        return LocalEnvs(env, num_envs, env_options)
    return WorkerEnvs(env, num_envs, int(workers), env_options)


def stack_obs(observations: Sequence) -> np.ndarray | dict[str, np.ndarray]:
    """One batch from per-environment observations: a float32 (n, d) array for vectors, a dict key -> (n, ...)
    for dict observations (vector keys float32 (n, d), images kept as they are, uint8)."""
    first = observations[0]
    if isinstance(first, Mapping):
        from mimetic.features import is_image_key

        return {k: np.stack([np.asarray(o[k]) for o in observations]) if is_image_key(k)
                else np.stack([np.asarray(o[k], dtype=np.float32).reshape(-1) for o in observations]) for k in first}
    return np.stack([np.asarray(o, dtype=np.float32).reshape(-1) for o in observations])
