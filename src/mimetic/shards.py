"""Rollouts on an engine: in this process (the local pool of `mimetic.workers`), or as Ray tasks on a cluster.

One interface, two engines. `Rollouts(env, actor, ..., backend=None)` runs episodes by seed:
`episodes(seeds)` returns them in seed order, `batches(seed_batches)` yields them batch by batch (collection
appends each batch as it comes). With `backend=None` the environments live in this process or in the worker
processes of `mimetic.workers` (one local mechanism); with a `RayBackend` the seeds are split into shards of whole
lockstep batches, each Ray task rebuilds the environments (from the env name and options) and the actor (from a
picklable recipe: a policy's checkpoint files, or the actor object itself, never a live environment), runs the
usual `run_episodes` on its shard, and the driver merges the shards back in seed order. Algorithms never know
which engine ran them; `run_shards(fn, shards, backend)` is the generic form.

Why results do not depend on the engine or on the number of Ray workers: an episode depends only on its seed
(the actor draws its randomness per episode from it), and a shard is made of the same lockstep batches as the
in-process run (the same seeds side by side), so even a batched network call sees the same inputs. The policy
runs on the CPU in a Ray task, with the driver's torch thread count.

Faults: a Ray worker that dies has its shard run again by Ray (`max_retries`; a task is pure, it writes nothing,
so a re-run neither loses nor duplicates an episode; only the driver writes datasets and results). An environment
that raises in a Ray task is a one-line MimeticError naming the environment and the seed (not retried: it would
raise again); a shard whose workers die more than `max_retries` times is one line naming the seeds. Ray is
imported only here and only when a RayBackend is used (`pip install mimetic[ray]`).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from mimetic.errors import MimeticError

INSTALL_HINT = "pip install mimetic[ray]"


# ------------------------------------------------------------------------------ the Ray engine
@dataclass
class RayBackend:
    """Run shards as Ray tasks. `address`: a cluster to join ("host:port", "ray://host:port", "auto"); None joins
    the one in RAY_ADDRESS if set, else starts a local instance (`num_cpus` CPUs, default all). A Ray already
    started in this process (ray.init) is used as it is."""

    address: str | None = None
    num_cpus: int | None = None
    max_retries: int = 3  # re-runs of a shard whose worker died
    connect_timeout: float = 10.0  # seconds to wait for a cluster address to answer
    shards: int | None = None  # shards a list of seeds is split into (default twice the cluster's CPUs)

    def __post_init__(self):
        self.started = False  # whether connect() started or joined Ray (close() then shuts it down)

    def connect(self):
        ray = import_ray()
        # "local": a new instance, never a `ray start` cluster ray.init would find on this machine by itself
        address = self.address or os.environ.get("RAY_ADDRESS") or "local"
        if address not in ("auto", "local") and not self.started:
            _check_answers(address, self.connect_timeout)
        if ray.is_initialized():
            return ray
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address == "local":
            kwargs["num_cpus"] = self.num_cpus
        try:
            ray.init(address=address, **kwargs)
        except Exception as e:  # noqa: BLE001 - connection and start-up failures are the user's to fix
            raise MimeticError(f"Ray at {'a new local instance' if address == 'local' else address} could not be reached or started: "
                               f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        self.started = True
        return ray

    def cpus(self) -> int:
        ray = self.connect()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def map(self, fn: Callable, shards: Iterable, *args, window: int | None = None,
            describe: Callable[[Any], str] = str) -> Iterator:
        """fn(shard, *args) for every shard as Ray tasks, results yielded in shard order; at most `window`
        tasks in flight (default twice the cluster's CPUs), so `shards` may be a lazy, endless iterator."""
        ray = self.connect()
        from ray.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError

        remote = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(fn)
        refs = [ray.put(a) for a in args]  # sent once, shared by every task
        window = window or 2 * self.cpus()
        pending: list[tuple[Any, Any]] = []
        it = iter(shards)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < window:
                    try:
                        shard = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.append((shard, remote.remote(shard, *refs)))
                if not pending:
                    return
                shard, ref = pending.pop(0)
                try:
                    result = ray.get(ref)
                except RayTaskError as e:
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, MimeticError):
                        raise MimeticError(str(cause)) from None
                    raise MimeticError(f"a Ray task running {describe(shard)} raised "
                                       f"{type(cause).__name__ if cause else 'an error'}: {cause or e}") from None
                except (WorkerCrashedError, TaskCancelledError) as e:
                    raise MimeticError(f"the Ray workers running {describe(shard)} died {self.max_retries + 1} times "
                                       f"({type(e).__name__}); nothing was written for them") from None
                except ray.exceptions.RayError as e:
                    raise MimeticError(f"Ray failed running {describe(shard)} ({type(e).__name__}: "
                                       f"{str(e).splitlines()[0] if str(e) else ''})") from None
                yield result
        finally:
            for _, ref in pending:  # the consumer stopped early, or a shard failed: nothing more is needed
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - cancelling is best effort
                    pass


def import_ray():
    try:
        import ray
    except ImportError:
        raise MimeticError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


# Asks the cluster's GCS for its id, as ray.init would; run in a subprocess so that it is bounded by a timeout
# (ray.init keeps retrying for 20-40 s, printing a warning a second) and its warnings stay out of our one line.
_PROBE = """
import sys
try:
    import ray
    from ray._private import services
    GcsClient = ray._raylet.GcsClient
except Exception:
    sys.exit(3)  # this Ray has no such client: leave the check to ray.init
try:
    GcsClient(address=services.canonicalize_bootstrap_address_or_die(sys.argv[1]))
except BaseException as e:
    print(f"{type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)
    sys.exit(1)
"""


def _check_answers(address: str, timeout: float) -> None:
    """A one-line error, after at most about `timeout` seconds, unless a Ray cluster answers at `address`: first
    something must accept a connection at host:port, then (not for ray:// client addresses) its GCS must reply."""
    import subprocess
    import sys

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise MimeticError(f"--ray-address {address!r}: expected host:port (or ray://host:port, or auto)")
    hint = "is `ray start --head` running there, and is the port its GCS port (default 6379)?"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise MimeticError(f"Ray cluster at {address} does not answer ({e.strerror or type(e).__name__}, "
                           f"waited up to {timeout:.0f} s): {hint}") from None
    if address.startswith("ray://"):
        return
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE, hostport], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MimeticError(f"Ray cluster at {address} does not answer (no reply in {timeout:.0f} s): {hint}") from None
    if r.returncode == 1:
        why = (r.stderr.strip().splitlines() or ["no reply"])[-1]
        if "auth" in why.lower():  # it answers, but started with token authentication (`ray start` does by default)
            raise MimeticError(f"Ray cluster at {address} refuses this client ({why.split('. ')[0]}): set "
                               "RAY_AUTH_MODE=token here, with the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN")
        raise MimeticError(f"Ray cluster at {address} does not answer ({why}): {hint}")


def run_shards(fn: Callable, shards: Iterable, backend: RayBackend | None = None, *args,
               describe: Callable[[Any], str] = str) -> Iterator:
    """fn(shard, *args) for every shard, in shard order: in this process one after another (backend None), or
    as Ray tasks. The engine is the caller's choice; the results are the same."""
    if backend is None:
        return (fn(shard, *args) for shard in shards)
    return backend.map(fn, shards, *args, describe=describe)


# ------------------------------------------------------------------------------ actors sent to Ray tasks
@dataclass
class PolicyRecipe:
    """A policy actor as data: its checkpoint files (config.json, model.safetensors) and how it acts."""

    files: dict[str, bytes]
    temporal_ensemble: float | None
    n_action_steps: int
    sampling_steps: int | None
    task: str | None = None  # a task-conditioned policy's instruction ...
    demo: Any = None  # ... or demonstration (an Episode)

    def build(self):
        from mimetic.policies.base import PolicyActor, load_policy

        folder = tempfile.mkdtemp(prefix="mimetic-policy-")
        try:
            for name, data in self.files.items():
                Path(folder, name).write_bytes(data)
            policy = load_policy(folder, device="cpu")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if self.sampling_steps is not None:
            policy.set_sampling_steps(self.sampling_steps)
        return PolicyActor(policy, temporal_ensemble=self.temporal_ensemble, n_action_steps=self.n_action_steps,
                           task=self.task, demo=self.demo)


def recipe(actor):
    """What is sent to Ray tasks for `actor`: a PolicyRecipe for a policy actor (its weights as a checkpoint), the
    actor itself otherwise (scripted experts, mixtures: pickled by Ray), refused in one line if it cannot be."""
    from mimetic.policies.base import PolicyActor, save_policy

    if isinstance(actor, PolicyActor):
        folder = tempfile.mkdtemp(prefix="mimetic-policy-")
        try:
            save_policy(actor.policy, folder)
            files = {p.name: p.read_bytes() for p in Path(folder).iterdir()}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return PolicyRecipe(files, actor.ensemble, actor.Ta, getattr(actor.policy, "sampling_steps", None), actor.task,
                            actor.demo)
    import ray.cloudpickle as cloudpickle

    try:
        cloudpickle.dumps(actor)
    except Exception as e:  # noqa: BLE001 - a live window, a device handle, a lock
        who = getattr(actor, "name", type(actor).__name__)
        raise MimeticError(f"the actor {who!r} cannot be sent to Ray workers ({type(e).__name__}: {e}); "
                           "run without --ray") from None
    return actor


def _build(recipe_or_actor):
    return recipe_or_actor.build() if isinstance(recipe_or_actor, PolicyRecipe) else recipe_or_actor


class _NamedEnvs:
    """Environments of a Ray task whose failures name the environment and the episode's seed."""

    def __init__(self, envs, name: str):
        self.envs, self.name = envs, name
        self.info, self.num_envs = envs.info, envs.num_envs
        self.seeds: dict[int, int] = {}

    def run(self, cmd: str, items: Sequence[tuple[int, Any]]) -> list:
        out = []
        for i, arg in items:
            if cmd == "reset":
                self.seeds[i] = arg
            try:
                out.extend(self.envs.run(cmd, [(i, arg)]))
            except MimeticError:
                raise
            except Exception as e:  # noqa: BLE001 - the simulator crashed: one line for the driver
                raise MimeticError(f"environment {self.name!r} (seed {self.seeds.get(i)}) raised {type(e).__name__}: "
                                   f"{e} (in a Ray worker on {socket.gethostname()})") from None
        return out

    def close(self) -> None:
        self.envs.close()


def _rollout_shard(batches: list[list[int]], job: dict, actor) -> list:
    """One Ray task: the lockstep batches of a shard, in this worker process; returns their episodes per batch."""
    from mimetic.rollout import run_episodes

    if job.get("threads"):
        import torch

        torch.set_num_threads(job["threads"])
    actor = _build(actor)
    named = _worker_envs(job["env"], job["env_options"], max(len(b) for b in batches))
    try:
        return [run_episodes(named, actor, seeds, task=job["task"]) for seeds in batches]
    except BaseException:  # a simulator that failed is not reused
        _drop_worker_envs()
        raise


# The environments of this Ray worker process's last shard, kept for its next shard of the same environment:
# building simulators (and their renderers) costs more than a short shard's episodes. Every episode starts with a
# seeded reset, as in the in-process path, which also reuses its environments from batch to batch.
_worker_cache: dict = {}


def _worker_envs(env: str, env_options: dict, num_envs: int):
    import json

    from mimetic.workers import open_envs

    key = (env, json.dumps(env_options, sort_keys=True, default=str))
    kept = _worker_cache.get(key)
    if kept is None or kept.num_envs < num_envs:  # a set at least as large serves a smaller batch (run_episodes)
        _drop_worker_envs()
        envs = open_envs(env, num_envs, env_options=env_options, workers=1)
        _worker_cache[key] = _NamedEnvs(envs, env)
    return _worker_cache[key]


def _drop_worker_envs() -> None:
    for envs in _worker_cache.values():
        envs.close()
    _worker_cache.clear()


def _describe(batches: list[list[int]]) -> str:
    first, last = batches[0][0], batches[-1][-1]
    return f"seeds {first}..{last}"


# ------------------------------------------------------------------------------ one interface for rollouts
def seed_batches(seeds: Sequence[int], size: int) -> list[list[int]]:
    seeds = [int(s) for s in seeds]
    return [seeds[i:i + size] for i in range(0, len(seeds), size)]


class Rollouts:
    """Episodes of `actor` in `num_envs` lockstep environments of `env`, on the chosen engine.

    `backend=None`: in this process, environments in `workers` processes (`mimetic.workers.open_envs`, opened
    once and reused). A RayBackend: the batches go to Ray tasks (see the module docstring); `env` must be a name.
    `info` describes the environments (built once here, so an unknown env or bad options fail before any task)."""

    def __init__(self, env, actor, *, num_envs: int, env_options: Mapping | None = None, task: str = "",
                 workers: int | None = None, backend: RayBackend | None = None):
        from mimetic.workers import LocalEnvs, open_envs

        self.env, self.actor, self.task, self.backend = env, actor, task, backend
        self.env_options = dict(env_options or {})
        self.num_envs = max(1, int(num_envs))
        self.envs = None
        if backend is None:
            self.envs = open_envs(env, self.num_envs, env_options=self.env_options, workers=workers)
            self.info = self.envs.info
            return
        if not isinstance(env, str):
            raise MimeticError("Ray rollouts need an environment name (a factory cannot be sent to the workers)")
        with LocalEnvs(env, 1, self.env_options) as probe:
            self.info = probe.info
        self.recipe = None

    def _job(self) -> dict:
        import sys

        threads = None
        if "torch" in sys.modules:
            threads = sys.modules["torch"].get_num_threads()
        return {"env": self.env, "env_options": self.env_options, "task": self.task, "threads": threads}

    def batches(self, seed_batches: Iterable[Sequence[int]], *, per_shard: int = 1) -> Iterator[list]:
        """The episodes of each batch of seeds (at most num_envs each), in order; lazily, so the caller may stop."""
        from mimetic.rollout import run_episodes

        if self.backend is None:
            for seeds in seed_batches:
                yield run_episodes(self.envs, self.actor, seeds, task=self.task)
            return
        if self.recipe is None:
            self.recipe = recipe(self.actor)

        def shards():
            group: list[list[int]] = []
            for seeds in seed_batches:
                group.append([int(s) for s in seeds])
                if len(group) == per_shard:
                    yield group
                    group = []
            if group:
                yield group

        for result in run_shards(_rollout_shard, shards(), self.backend, self._job(), self.recipe,
                                 describe=lambda b: f"environment {self.env!r} {_describe(b)}"):
            yield from result

    def episodes(self, seeds: Sequence[int], *, progress: bool = False, desc: str = "rollout") -> list:
        """One episode per seed, in seed order."""
        from mimetic.progress import progress_bar
        from mimetic.rollout import run_episodes

        seeds = [int(s) for s in seeds]
        if self.backend is None:
            return run_episodes(self.envs, self.actor, seeds, task=self.task, progress=progress, desc=desc)
        batches = seed_batches(seeds, self.num_envs)
        shards = min(len(batches), self.backend.shards or 2 * self.backend.cpus())  # balance, and cheap re-runs
        per_shard = -(-len(batches) // max(1, shards))
        out: list = []
        bar = progress_bar(progress, total=len(seeds), desc=f"{desc} (Ray)", unit="ep")
        try:
            for eps in self.batches(batches, per_shard=per_shard):
                out.extend(eps)
                bar.update(len(eps))
        finally:
            bar.close()
        return out

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()
            self.envs = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
