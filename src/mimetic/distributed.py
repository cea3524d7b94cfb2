"""Training on several processes: torch.distributed, started by `torchrun` or `mimetic train|dagger --nproc N`.

torchrun starts one process per rank and describes the job in environment variables (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Without them (or with WORLD_SIZE=1) every function here gives the
single-process answer (rank 0 of 1) and nothing touches torch.distributed, so one process behaves exactly
as it did before.

- `init(device)` joins the process group once: gloo on the CPU, NCCL on CUDA (`rank_device` puts each rank
  on GPU LOCAL_RANK). Collectives give up after MIMETIC_DIST_TIMEOUT seconds (default 1800), so a rank that
  hangs cannot hang the job forever; `errors()` turns a failed collective (a rank died) into one
  `MimeticError` line.
- `shard(rows)`: this rank's contiguous share of a global batch every rank drew alike.
- `on_main(fn)`: run fn on rank 0 only (the run folder's writes) and give every rank its result or its error.
- `gather(obj)`, `mean(x)`, `barrier()`: the few collectives the trainer needs (RNG states for checkpoints,
  the logged loss).
- `launch(argv, nproc)`: `mimetic train|dagger --nproc N`: torch's elastic launcher (what torchrun runs) on this
  machine, each worker `python -m mimetic ARGV`; a worker that fails stops the others.

It sits at the bottom layer next to `devices` (torch only, no mimetic room above `errors`).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import re
import sys

import torch

from mimetic.errors import MimeticError

TIMEOUT_ENV = "MIMETIC_DIST_TIMEOUT"  # seconds a collective may wait for the other ranks
DEFAULT_TIMEOUT_S = 1800.0
LAUNCHED_ENV = "MIMETIC_NPROC_WORKER"  # set for the workers of `train --nproc`: their launcher reports a lost rank
LOST_STATUS = 3  # the exit status of such a worker that lost the others (it prints nothing: the launcher says it)
_lost_peers = False  # set when a collective failed: the group is then not destroyed at exit (see `shutdown`)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise MimeticError(f"environment variable {name}={value!r} is not an integer") from None


def _joined() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    """How many training processes this job has (WORLD_SIZE under torchrun; 1 otherwise)."""
    return torch.distributed.get_world_size() if _joined() else max(1, _env_int("WORLD_SIZE", 1))


def rank() -> int:
    return torch.distributed.get_rank() if _joined() else (_env_int("RANK", 0) if world_size() > 1 else 0)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0) if world_size() > 1 else 0


def is_main() -> bool:
    """Rank 0: the one process that writes the run folder (metrics, checkpoints, the policy) and validates."""
    return rank() == 0


def require_single_process(what: str) -> None:
    """One line, before any work, for a loop that does not run under torchrun / --nproc."""
    if world_size() > 1:
        raise MimeticError(f"{what} runs in one process; torchrun and --nproc train the supervised methods "
                           f"(bc, act, diffusion, flow) and dagger's learner only (this job has WORLD_SIZE={world_size()})")


def timeout_s() -> float:
    value = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(value) if value.strip() else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise MimeticError(f"{TIMEOUT_ENV}={value!r}: expected a positive number of seconds")
    return seconds


def rank_device(device: torch.device) -> torch.device:
    """Under torchrun, CUDA means this rank's GPU (LOCAL_RANK); other devices are returned as they are."""
    if world_size() == 1 or device.type != "cuda":
        return device
    if device.index is not None:
        raise MimeticError(f"--device {device}: under torchrun each process uses GPU LOCAL_RANK; pass --device cuda")
    if local_rank() >= torch.cuda.device_count():
        raise MimeticError(f"rank {rank()} has LOCAL_RANK {local_rank()}, but this machine has {torch.cuda.device_count()} "
                           f"GPUs: start at most that many processes per node")
    device = torch.device("cuda", local_rank())
    torch.cuda.set_device(device)
    return device


def die_with_launcher() -> None:
    """On Linux, a rank started by a launcher (torchrun's agent, `--nproc`) is killed when that launcher dies: a
    launcher killed with SIGKILL cannot stop its ranks, which would otherwise wait in a collective until the
    timeout. Called first thing by `python -m mimetic` under WORLD_SIZE > 1."""
    if world_size() == 1 or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # no glibc: the timeout still ends a stranded rank
        return
    if os.getppid() == 1:  # the launcher died before the request took effect
        os._exit(2)


def exit_rank(code: int = 0) -> None:
    """End a rank of a multi-process job: its exit handlers run (leave the process group, close metric sinks), then
    the interpreter's teardown is skipped. torch.distributed's C++ objects destroyed there can abort a rank whose
    peer has already exited ("terminate called without an active exception"), turning a finished job into a
    failure."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def init(device: torch.device) -> None:
    """Join the process group torchrun describes (gloo on the CPU, NCCL on CUDA); a no-op in one process or
    when already joined. The group is left at exit."""
    if world_size() == 1 or _joined():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        torch.distributed.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s()),
                                             device_id=device if device.type == "cuda" else None)
    except (RuntimeError, ValueError) as e:
        raise MimeticError(f"rank {rank()}: cannot join the {backend} process group at "
                           f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}: {_first_line(e)}") from None
    atexit.register(shutdown)


def shutdown() -> None:
    """Leave the process group at exit; not after a collective failed, whose broken gloo / NCCL group can abort
    the process (SIGABRT from the C++ runtime) while being destroyed, turning a clean exit status into a crash."""
    if _joined() and not _lost_peers:
        torch.distributed.destroy_process_group()


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def is_lost(e: BaseException) -> bool:
    """Whether `e` is a collective that failed because another rank died or did not answer within the timeout
    (torch raises DistError, or a RuntimeError from gloo / NCCL inside DDP's backward)."""
    if world_size() == 1 or not isinstance(e, RuntimeError):
        return False
    return isinstance(e, torch.distributed.DistError) or any(w in str(e) for w in ("gloo", "NCCL", "c10d", "Gloo"))


def lost(e: BaseException) -> MimeticError:
    """A failed collective as one line (`except RuntimeError as e: if is_lost(e): raise lost(e) from None`)."""
    global _lost_peers
    _lost_peers = True
    why = re.sub(r"^\[[^\]]*\]\s*", "", _first_line(e)).split(". This is typically")[0]  # gloo's source location, advice
    err = MimeticError(f"rank {rank()}: lost the other training processes (one died or hung; the run continues "
                       f"with --resume from its last checkpoint): {why}")
    if os.environ.get(LAUNCHED_ENV):  # under `train --nproc` the launcher says which rank died, in one line
        err.quiet, err.exit_status = True, LOST_STATUS
    return err


def everywhere(err: MimeticError) -> MimeticError:
    """An error every rank raises alike: only rank 0's command line prints it (`quiet` on the others)."""
    err.quiet = not is_main()
    return err


@contextlib.contextmanager
def errors():
    """Turn a failed collective into one MimeticError line."""
    try:
        yield
    except RuntimeError as e:
        if not is_lost(e):
            raise
        raise lost(e) from None


def check_batch(batch_size: int, what: str = "--batch-size", n: int | None = None) -> int:
    """The per-rank share of a global batch over `n` processes (default this job's); one line if they cannot share
    it equally."""
    n = world_size() if n is None else n
    if batch_size % n:
        raise everywhere(MimeticError(f"{what} {batch_size} is the global batch, shared equally by the {n} training processes: "
                           f"it must be divisible by {n}"))
    return batch_size // n


def shard(rows: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of a global batch (every rank drew the same `rows`); all of it in one process."""
    n = world_size()
    if n == 1:
        return rows
    per = check_batch(len(rows))
    return rows[rank() * per:(rank() + 1) * per]


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `module` (its gradients averaged over ranks in backward); `module` itself
    in one process."""
    if world_size() == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    with errors():
        # a policy whose loss leaves some parameters out on some steps (a warm-up phase) needs DDP to look for them
        return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None,
                                       find_unused_parameters=bool(getattr(module, "varying_graph", False)))


def on_main(fn):
    """fn() on rank 0 only; every rank gets its result (or the MimeticError it raised)."""
    if world_size() == 1:
        return fn()
    out = [None, None]
    if is_main():
        try:
            out = [fn(), None]
        except MimeticError as e:
            out = [None, str(e)]
    box = [out]
    with errors():
        torch.distributed.broadcast_object_list(box, src=0)
    value, error = box[0]
    if error is not None:
        raise everywhere(MimeticError(error))
    return value


def gather(obj) -> list:
    """Every rank's `obj`, in rank order ([obj] in one process)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    with errors():
        torch.distributed.all_gather_object(out, obj)
    return out


def mean(value: float) -> float:
    """The mean of `value` over ranks (`value` itself in one process)."""
    if world_size() == 1:
        return value
    return sum(gather(value)) / world_size()


def barrier() -> None:
    if world_size() > 1:
        with errors():
            torch.distributed.barrier()


# ---------------------------------------------------------------------------------- --nproc
def machine_slots(device: torch.device) -> tuple[int, str]:
    """How many training processes this machine can hold for `device`: its GPUs on CUDA, else its CPU cores."""
    if device.type == "cuda":
        return torch.cuda.device_count(), "GPUs"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores, "CPU cores"


def launch(argv: list[str], nproc: int) -> int:
    """Run `python -m mimetic ARGV` as `nproc` ranks on this machine with torch's elastic launcher (torchrun's
    machinery, c10d rendezvous on localhost). Returns 0, or 2 with one line if a worker failed: a worker's own
    MimeticError line (exit status 2: rank 0 printed it), else which rank died and how (a rank that only lost
    the others is silent)."""
    import logging
    import signal
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed.elastic")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # its warnings as workers stop: we say what happened
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"mimetic-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    os.environ[LAUNCHED_ENV] = "1"  # inherited by the workers
    try:
        elastic_launch(config, sys.executable)("-m", "mimetic", *argv)
    except SignalException as e:  # Ctrl-C (each worker says "interrupted") or a kill of this launcher: workers stopped
        sig = signal.Signals(int(e.sigval))
        if sig != signal.SIGINT:
            print(f"mimetic: error: stopped by {sig.name}; the training processes were stopped", file=sys.stderr)
        return 128 + sig.value
    except ChildFailedError as e:
        failures = sorted(e.failures.items(), key=lambda kv: kv[1].timestamp)
        if any(f.exitcode == 2 for _, f in failures):  # a worker printed its MimeticError line: enough
            return 2
        # the rank that failed first, by its own fault: not one that lost the others (LOST_STATUS), and not one the
        # C++ runtime aborted (SIGABRT) as its peer vanished, when another failed otherwise
        own = [(r, f) for r, f in failures if f.exitcode != LOST_STATUS]
        failed_rank, failure = next(((r, f) for r, f in own if f.exitcode != -signal.SIGABRT), (own or failures)[0])
        code = failure.exitcode
        if code == LOST_STATUS:
            how = f"lost the others (one hung for {TIMEOUT_ENV}={timeout_s():g} s, or died)"
        else:
            how = f"was killed by {failure.signal_name()}" if code < 0 else f"exited with status {code}"
        print(f"mimetic: error: training process rank {failed_rank} {how}; the other processes were stopped "
              f"(continue with --resume from the last checkpoint)", file=sys.stderr)
        return 2
    finally:
        os.environ.pop(LAUNCHED_ENV, None)
    return 0
