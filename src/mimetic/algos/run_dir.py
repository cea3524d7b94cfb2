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

Sinks: `log_to("tensorboard,wandb")` (the CLI's `--log-to`) makes every RunDir also send the numeric
entries of each metrics row, keyed by its "step", to TensorBoard (event files in RUN/tensorboard/) and/or
Weights & Biases (project "mimetic", run name = the run folder's name, offline unless WANDB_MODE says
otherwise; files in RUN/wandb/). metrics.jsonl stays the source of truth: a resumed run purges the
TensorBoard events logged after its checkpoint, a fresh run drops the old RUN/tensorboard/. The packages
are imported only when asked for; a missing one is a one-line error when `log_to` is called (before
training). `log_video(run_dir, tag, frames, fps, step)` sends an evaluation video to the same sinks.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import math
import os
import shutil
from pathlib import Path

from mimetic.data.io import atomic_write_bytes, atomic_write_json, read_json
from mimetic.errors import MimeticError

METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"  # RUN/tensorboard/: event files (--log-to tensorboard)
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
        self._purge_step: int | None = None  # where the sinks restart (set by start)

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
        _close_sinks(self.path)  # a run started again in this process opens its sinks afresh
        if resume and self.has_checkpoint():
            state = self.load_checkpoint()
            truncate_metrics(self.metrics, int(state["step"]))
            self._purge_step = int(state["step"]) + 1  # TensorBoard drops the events logged after the checkpoint
            return state
        self.metrics.unlink(missing_ok=True)
        shutil.rmtree(self.path / TENSORBOARD, ignore_errors=True)
        self._purge_step = None
        return None

    def append_metrics(self, row: dict) -> None:
        """Append a row to metrics.jsonl, then send its numbers to the sinks chosen by `log_to` (if any)."""
        append_metrics(self.metrics, row)
        self.send_to_sinks(row)

    def send_to_sinks(self, row: dict) -> None:
        """Send the numeric entries of a metrics row (with its "step") to the sinks chosen by `log_to`, without
        writing metrics.jsonl (for a loop that commits its rows itself, as DAgger rewrites its log)."""
        scalars = numeric_entries(row)
        for sink in _sinks_for(self.path, self._purge_step):
            sink.scalars(scalars, int(row["step"]))

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


# ---------------------------------------------------------------------------------- sinks
SINKS: dict[str, str] = {"tensorboard": "tensorboard", "wandb": "wandb"}  # --log-to name -> package (= extra)
_log_to: tuple[str, ...] = ()
_open: dict[Path, list] = {}  # run folder -> its open sinks (one run's at a time)


def parse_log_to(spec) -> tuple[str, ...]:
    """`tensorboard`, `wandb`, `tensorboard,wandb` (or a list; None or "" for none) as a tuple of sink names."""
    if not spec:
        return ()
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [str(n).strip().lower() for n in names if str(n).strip()]
    for n in names:
        if n not in SINKS:
            raise MimeticError(f"--log-to: unknown sink {n!r}: use tensorboard, wandb or tensorboard,wandb")
    return tuple(dict.fromkeys(names))


def _import_sink(name: str):
    try:
        if name == "tensorboard":
            import tensorboard  # noqa: F401, PLC0415 - optional; torch.utils.tensorboard needs it

            return tensorboard
        import wandb  # noqa: PLC0415 - optional

        return wandb
    except ImportError:
        raise MimeticError(f"--log-to {name} needs the {SINKS[name]} package: pip install 'mimetic[{SINKS[name]}]'") from None


def log_to(spec) -> tuple[str, ...]:
    """Send every RunDir's metrics rows to these sinks too (see the module doc); checks now that their packages
    import. `log_to(None)` stops (and closes the open sinks)."""
    global _log_to
    names = parse_log_to(spec)
    for n in names:
        _import_sink(n)
    close_sinks()
    _log_to = names
    return names


def numeric_entries(row: dict) -> dict[str, float]:
    """The entries of a metrics row that are numbers (bools as 0/1), "step" left out."""
    return {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))}


def _gif(frames, fps: float) -> bytes:
    """An animated GIF of uint8 (T, H, W, 3) frames (what TensorBoard shows as a video)."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
    return buf.getvalue()


class _TensorBoard:
    def __init__(self, run: Path, purge_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run / TENSORBOARD), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()  # metrics.jsonl and the event files agree whenever the run is read

    def video(self, tag: str, frames, fps: float, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        t, h, w, c = frames.shape
        image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=_gif(frames, fps))
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, run: Path):
        import wandb

        mode = os.environ.get("WANDB_MODE") or "offline"
        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "mimetic", name=run.resolve().name,
                              dir=str(run), mode=mode, reinit="create_new",
                              settings=wandb.Settings(silent=True, console="off", save_code=False, disable_git=True))

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def video(self, tag: str, frames, fps: float, step: int) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:  # wandb copies the file into the run's media/
            path = Path(tmp) / "video.gif"
            path.write_bytes(_gif(frames, fps))
            self.run.log({tag: self.wandb.Video(str(path), format="gif")}, step=step)

    def close(self) -> None:
        self.run.finish()


def _sinks_for(path: Path, purge_step: int | None = None) -> list:
    """The open sinks of run folder `path` (opened now if needed; the sinks of another run are closed first)."""
    if not _log_to:
        return []
    key = path.resolve()
    if key not in _open:
        close_sinks()
        path.mkdir(parents=True, exist_ok=True)
        _open[key] = [_TensorBoard(path, purge_step) if n == "tensorboard" else _WandB(path) for n in _log_to]
    return _open[key]


def _close_sinks(path: Path) -> None:
    for sink in _open.pop(path.resolve(), []):
        sink.close()


def close_sinks() -> None:
    """Flush and close every open sink (at exit, or before another run opens its own)."""
    for key in list(_open):
        _close_sinks(key)


atexit.register(close_sinks)


def log_video(run_dir: str | Path, tag: str, frames, fps: float, step: int) -> bool:
    """Send a video (uint8 frames (T, H, W, 3)) to the sinks chosen by `log_to`, keyed by `step` (TensorBoard: an
    animated image; W&B: a wandb.Video). Returns whether any sink took it (False without --log-to)."""
    import numpy as np

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise MimeticError(f"log_video {tag!r}: frames must be uint8 (T, H, W, 3) with T > 0, got {frames.dtype} {frames.shape}")
    if not math.isfinite(fps) or fps <= 0:
        raise MimeticError(f"log_video {tag!r}: fps must be positive, got {fps}")
    sinks = _sinks_for(Path(run_dir))
    for sink in sinks:
        sink.video(tag, frames, fps, int(step))
    return bool(sinks)
