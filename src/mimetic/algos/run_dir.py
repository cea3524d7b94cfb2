"""The run directory every training loop writes (supervised trainer, adversarial, DAgger, IRL).

```
RUN/config.json, RUN/model.safetensors   the policy to deploy (`save_policy`; `mimetic eval RUN`)
RUN/train.json                           what was trained on and how (`write_info`; read back by --resume)
RUN/metrics.jsonl                        one JSON object per logged row, each with an integer "step"
RUN/checkpoint/                          the training state (`save_checkpoint` / `load_checkpoint`)
```

The checkpoint has a single commit point. `save_state(path, state)` writes the tensors of a nested
state dict to `<path>.<digest>.safetensors` (named after its content, so the previous state's
tensors are never overwritten) and only then `<path>.json`, the skeleton that names that tensor
file. Each write is atomic (temporary name, fsync, rename), so a kill at any moment leaves the JSON
naming either the old tensors (still there) or the new ones: never a mix. Tensor files the JSON no
longer names are removed after the commit. Nothing is unpickled on load.

A loop uses it as:

```
run = RunDir(path, "gail run")
state = run.start(resume)        # refuses to overwrite a run without --resume; on resume returns the
                                 # committed state (None if none) and drops metric rows logged after it
run.write_info({...})
... run.append_metrics({"step": s, ...}) ...
run.save_checkpoint({"step": s, ...})   # tensors anywhere inside (state dicts, RNG states)
```

A kill loses at most the work since the last checkpoint; resuming continues from it and the metrics
file never holds a step twice. torch is imported only by the functions that need it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mimetic.data.io import atomic_write_bytes, atomic_write_json, read_json
from mimetic.errors import MimeticError

METRICS = "metrics.jsonl"
INFO = "train.json"
CHECKPOINT = "checkpoint"
STATE = "state"  # RUN/checkpoint/state.json (commit point) + state.<digest>.safetensors


# ---------------------------------------------------------------------------------- state I/O
def _flatten(obj, prefix: str, tensors: dict):
    """Replace tensors in a nested structure by references into `tensors` (for safetensors + JSON)."""
    import torch

    if isinstance(obj, torch.Tensor):
        key = prefix or "t"
        tensors[key] = obj.detach().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _unflatten(obj, tensors: dict):
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(path: Path, state: dict) -> None:
    """Write a nested dict holding tensors as <path>.<digest>.safetensors, then <path>.json (the commit point)."""
    from safetensors.torch import save

    path = Path(path)
    tensors: dict = {}
    skeleton = _flatten(state, "", tensors)
    data = save(tensors)
    name = f"{path.name}.{hashlib.sha256(data).hexdigest()[:16]}.safetensors"
    atomic_write_bytes(path.parent / name, data)
    atomic_write_json(path.with_suffix(".json"), {"tensors": name, "state": skeleton})  # the commit point
    for old in [*path.parent.glob(f"{path.name}.*.safetensors"), path.with_suffix(".safetensors")]:
        if old.name != name:
            old.unlink(missing_ok=True)


def load_state(path: Path) -> dict:
    """The state committed by `save_state(path, ...)`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    saved = read_json(path.with_suffix(".json"), "training state")
    if isinstance(saved, dict) and "tensors" in saved:
        skeleton, tensor_file = saved["state"], path.parent / saved["tensors"]
    else:  # written before the commit point named its tensor file
        skeleton, tensor_file = saved, path.with_suffix(".safetensors")
    try:
        tensors = load_file(str(tensor_file))
    except (SafetensorError, OSError, ValueError) as e:
        raise MimeticError(f"training state {tensor_file}: cannot load it: {str(e).strip().splitlines()[0]}") from None
    return _unflatten(skeleton, tensors)


def has_state(path: Path) -> bool:
    return Path(path).with_suffix(".json").is_file()


# ---------------------------------------------------------------------------------- metrics
def append_metrics(path: Path, row: dict) -> None:
    """Append one row (a JSON object with an integer "step") to a metrics.jsonl file."""
    if "step" not in row:
        raise ValueError(f"a metrics row needs a 'step': {row}")
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def _rows(path: Path) -> list[tuple[str, dict]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if isinstance(row, dict):
            out.append((line, row))
    return out


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only the rows logged at or before `step` (the resumed checkpoint's), atomically."""
    if not path.exists():
        return
    rows = [line for line, row in _rows(path) if row.get("step", 0) <= step]
    atomic_write_bytes(path, ("\n".join(rows) + "\n").encode() if rows else b"")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of RUN/metrics.jsonl (a line cut by a kill is skipped); [] if there is none."""
    path = Path(run_dir) / METRICS
    return [row for _, row in _rows(path)] if path.exists() else []


# ---------------------------------------------------------------------------------- the run
class RunDir:
    """One training run's folder: the checks, metrics, checkpoint and train.json of the convention above."""

    def __init__(self, path: str | Path, what: str = "training run", method: str | None = None):
        self.path, self.what, self.method = Path(path), what, method  # method: what train.json's "method" will say
        self.metrics = self.path / METRICS
        self.state_path = self.path / CHECKPOINT / STATE

    def has_checkpoint(self) -> bool:
        return has_state(self.state_path)

    def check_new(self) -> None:
        """Refuse to start a fresh run over a committed one, or over another method's run (which may keep
        no checkpoint: a maxent-irl or DAgger run)."""
        try:
            existing = json.loads((self.path / INFO).read_text()).get("method")
        except (OSError, ValueError, AttributeError):
            existing = None
        if existing is not None and self.method is not None and existing != self.method:
            raise MimeticError(f"{self.path} holds a {existing} run, not {self.method}: choose another --out")
        if self.has_checkpoint():
            what = f"{existing} run" if existing else self.what
            raise MimeticError(f"{self.path} already holds a {what}: pass --resume to continue it, or choose another --out")

    def start(self, resume: bool) -> dict | None:
        """Open the run. Fresh: refuse a committed run, drop old metrics, return None. Resume: return the
        committed state (None if the run was killed before its first checkpoint: it starts over) and drop
        the metric rows logged after it."""
        if not resume:
            self.check_new()
        self.path.mkdir(parents=True, exist_ok=True)
        if resume and self.has_checkpoint():
            state = self.load_checkpoint()
            truncate_metrics(self.metrics, int(state["step"]))
            return state
        self.metrics.unlink(missing_ok=True)
        return None

    def append_metrics(self, row: dict) -> None:
        append_metrics(self.metrics, row)

    def read_metrics(self) -> list[dict]:
        return read_metrics(self.path)

    def save_checkpoint(self, state: dict) -> None:
        """Commit the training state (a nested dict with tensors and an integer "step")."""
        save_state(self.state_path, state)

    def load_checkpoint(self) -> dict:
        return load_state(self.state_path)

    def write_info(self, info: dict) -> None:
        atomic_write_json(self.path / INFO, info)

    def read_info(self) -> dict:
        return read_json(self.path / INFO, self.what)
