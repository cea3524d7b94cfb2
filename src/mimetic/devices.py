"""Where networks run: `--device auto|cpu|cuda|mps`, mixed precision, and moving batches.

- `resolve_device("auto")` is CUDA if this torch sees a GPU, else MPS (Apple), else the CPU; asking for a
  device this machine does not have is one `MimeticError` line naming it and what is available (the CLI
  exits with status 2). `cuda:1` selects a GPU by index.
- `autocast(device)`: bf16 autocast on CUDA (weights and the optimizer stay float32, so no loss
  scaling is needed), a no-op elsewhere unless `enabled=True` asks for it (bf16 autocast on the CPU is a
  real code path: tests run it).
- `to_device(batch, device)`: a batch dict (nested dicts / lists too) on `device`. Tensors keep their
  dtype: camera frames travel as uint8 (4x fewer bytes than float32) and become float on the device, in
  the policy's encoder. For CUDA, CPU tensors are copied into pinned (page-locked) memory and sent with
  `non_blocking=True`, so the copy overlaps the previous step's kernels.
- `module_device(module)`: the device of a module's first parameter or buffer (CPU if it has none).

Nothing here imports the CLI's layers: policies, data and algorithms all use it (the bottom layer).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from mimetic.errors import MimeticError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
AUTOCAST_DTYPE = torch.bfloat16


def cuda_available() -> bool:
    return torch.cuda.is_available()


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The device kinds this process can use, e.g. ['cuda', 'cpu'] (cpu always last)."""
    out = []
    if cuda_available():
        out.append("cuda" if torch.cuda.device_count() == 1 else f"cuda (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    if mps_available():
        out.append("mps")
    return out + ["cpu"]


def _why_no_cuda() -> str:
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """`auto|cpu|cuda|cuda:N|mps` (or a torch.device) -> the torch.device to run on; one-line error if unavailable."""
    if isinstance(name, torch.device):
        name = str(name)
    spec = (name or "auto").strip().lower()
    kind, _, index = spec.partition(":")
    where = f"--device {name}"
    if kind == "auto" and not index:
        if cuda_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if kind not in DEVICE_CHOICES[1:] or (index and (kind != "cuda" or not index.isdigit())):
        raise MimeticError(f"{where}: unknown device; expected one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    if kind == "cuda":
        if not cuda_available():
            raise MimeticError(f"{where}: CUDA is not available ({_why_no_cuda()}); available: "
                               f"{', '.join(available_devices())}")
        if index and int(index) >= torch.cuda.device_count():
            raise MimeticError(f"{where}: there is no GPU {index}; this machine has {torch.cuda.device_count()} "
                               f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return torch.device(spec)
    if kind == "mps" and not mps_available():
        raise MimeticError(f"{where}: Apple MPS is not available on this machine; available: "
                           f"{', '.join(available_devices())}")
    return torch.device(kind)


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of the module's first parameter or buffer; the CPU for a module holding no tensors."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def autocast(device: str | torch.device, enabled: bool | None = None, dtype: torch.dtype = AUTOCAST_DTYPE):
    """Mixed-precision context for the forward pass (and the loss) on `device`.

    enabled=None: on for CUDA (bf16; float32 on GPUs without bf16), off elsewhere. enabled=True forces it where torch supports it (CPU bf16,
    used by the tests; MPS); enabled=False is a no-op everywhere. Run `backward()` outside the context.
    """
    device = torch.device(device)
    on = device.type == "cuda" if enabled is None else enabled
    if not on or device.type == "meta":
        return contextlib.nullcontext()
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return contextlib.nullcontext()  # pre-Ampere GPUs: float32 (fp16 would need loss scaling; their bf16 is emulated)
    return torch.autocast(device_type=device.type, dtype=dtype)


def autocast_dtype(device: str | torch.device, enabled: bool | None = None) -> torch.dtype | None:
    """The dtype `autocast(device, enabled)` computes matrix products in (None: no autocast)."""
    ctx = autocast(device, enabled)
    return getattr(ctx, "fast_dtype", None)


def to_device(batch: Any, device: str | torch.device, *, pin: bool | None = None) -> Any:
    """`batch` (a tensor, or dicts / lists / tuples of them) with every tensor on `device`, dtypes unchanged.

    pin=None: pinned memory and non-blocking copies when the target is CUDA and the tensor is on the CPU
    (the copy then overlaps queued GPU work); elsewhere a plain `.to`. Tensors already there are not copied.
    """
    device = torch.device(device)
    if pin is None:
        pin = device.type == "cuda"

    def move(x):
        if isinstance(x, torch.Tensor):
            if x.device == device:
                return x
            if pin and x.device.type == "cpu":
                if not x.is_pinned():
                    x = x.pin_memory()
                return x.to(device, non_blocking=True)
            return x.to(device)
        if isinstance(x, dict):
            return {k: move(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(move(v) for v in x)
        return x

    return move(batch)


def device_summary(device: str | torch.device) -> dict:
    """What a run ran on, for logs and benchmark tables: {"device": "cuda:0", "name": "NVIDIA H100 ...", ...}."""
    device = torch.device(device)
    out = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        out.update(device=f"cuda:{index}", name=torch.cuda.get_device_name(index), cuda=torch.version.cuda,
                   bf16=torch.cuda.is_bf16_supported())
    elif device.type == "cpu":
        out.update(threads=torch.get_num_threads())
    return out


def rng_state(device: str | torch.device) -> dict[str, torch.Tensor]:
    """The global generators a training step on `device` draws from (dropout, diffusion noise): the CPU's, and the
    GPU's on CUDA. Saved in checkpoints so `--resume` continues exactly; `set_rng_state` restores it."""
    device = torch.device(device)
    out = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda_rng"] = torch.cuda.get_rng_state(device)
    return out


def set_rng_state(state: dict, device: str | torch.device) -> None:
    device = torch.device(device)
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"].cpu())
    if "cuda_rng" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)


# glibc's malloc parameters (mallopt): M_TRIM_THRESHOLD and M_MMAP_MAX
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_allocator_tuned = False


def keep_cpu_allocations() -> bool:
    """Let glibc keep freed memory for reuse instead of mapping and unmapping it for every large tensor.

    Image batches make activations larger than glibc's mmap threshold (32 MiB at most), and glibc then
    maps fresh zeroed pages for each of them on every step and unmaps them after: a visual BC step at
    batch 256 on one core spent most of its time in page faults (2.35 s per step against 0.94 s with the
    allocator kept; benchmarks/results/visual_cost.md). The effect is that of the environment settings
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<huge>, applied from inside the process: freed memory stays
    with the process for the next step. Returns whether it was applied (glibc only; a no-op elsewhere).
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    _allocator_tuned = ok
    return ok
