"""Helpers shared by the format readers: array checks with errors that name the file and key, the rule
that decides what becomes observation.state and which cameras come along (`select`), and camera frames
(`to_frames`, `decode_image`)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mimetic.errors import MimeticError
from mimetic.features import image_key, is_image_key

PICKLE_SUFFIXES = (".pkl", ".pickle", ".npz", ".npy", ".pt", ".pth", ".joblib")


def parse_keys(value, what: str = "obs_keys") -> list[str] | None:
    """`"a,b,c"` or `["a", "b"]` -> list of names; None/"" -> None."""
    if value is None:
        return None
    if isinstance(value, str):
        keys = [k.strip() for k in value.split(",")]
    else:
        keys = [str(k).strip() for k in value]
    keys = [k for k in keys if k]
    if not keys:
        return None
    if len(set(keys)) != len(keys):
        raise MimeticError(f"{what}: {keys} names a key twice")
    return keys


def is_image(shape: Sequence[int], dtype) -> bool:
    """Per-step shape (without the time axis) of a camera: uint8 with 2+ dims (H, W[, C]), or 3 dims with a
    channel axis of 1 or 3 first or last ((H, W, C) / (C, H, W), any dtype). Everything else is a vector."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8 and len(shape) >= 2:
        return True
    return len(shape) == 3 and (shape[-1] in (1, 3) or shape[0] in (1, 3))


def check_numeric(arr: np.ndarray, where: str) -> np.ndarray:
    """The array as it is if numeric (bool/int/float), else a MimeticError naming `where`."""
    if arr.dtype.kind not in "biuf":
        raise MimeticError(f"{where}: expected numbers, found dtype {arr.dtype}")
    return arr


def check_finite(arr: np.ndarray, where: str) -> None:
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = np.argwhere(bad)[0]
            raise MimeticError(f"{where}: contains NaN or inf (first at step {int(idx[0])})")


def as_matrix(arr: np.ndarray, where: str, steps: int | None = None) -> np.ndarray:
    """(T, ...) numeric array -> (T, d) float32 with checks for dtype, length and finiteness."""
    arr = np.asarray(arr)
    check_numeric(arr, where)
    if arr.ndim == 0:
        raise MimeticError(f"{where}: expected one row per step, found a scalar")
    if steps is not None and len(arr) != steps:
        raise MimeticError(f"{where}: has {len(arr)} steps, expected {steps}")
    check_finite(arr, where)
    out = arr.reshape(len(arr), -1).astype(np.float32)
    check_finite(out, where)  # float64 values beyond float32's range become inf
    return out


def as_vector(arr: np.ndarray, where: str, steps: int | None = None) -> np.ndarray:
    """(T,) or (T, 1) numeric array -> (T,) with checks."""
    arr = np.asarray(arr)
    check_numeric(arr, where)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise MimeticError(f"{where}: expected shape (T,), found {arr.shape}")
    if steps is not None and len(arr) != steps:
        raise MimeticError(f"{where}: has {len(arr)} steps, expected {steps}")
    check_finite(arr, where)
    return arr


def concat_obs(parts: Iterable[np.ndarray]) -> np.ndarray:
    parts = list(parts)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


# ---------------------------------------------------------------------- cameras and the state vector
IMAGE_SUFFIXES = ("_image", "_img", "_rgb")


def camera_key(name: str) -> str:
    """The mimetic key of a source camera: LeRobot names (`observation.images.<cam>`) stay as they are;
    `observation.<x>` becomes `observation.images.<x>`; any other name loses its `_image`/`_img`/`_rgb`
    suffix (robomimic `agentview_image` -> `observation.images.agentview`, zarr `img` ->
    `observation.images.img`)."""
    if is_image_key(name):
        return name
    if name.startswith("observation."):
        return image_key(name[len("observation."):])
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return image_key(name[: -len(suffix)])
    return image_key(name)


@dataclass
class Selection:
    """What the source keys become: `state` concatenated into observation.state (in order), `cameras`
    source key -> `observation.images.<cam>`, `skipped` the source cameras left out."""

    state: list[str]
    cameras: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def select(vectors: Sequence[str], images: Sequence[str], options: dict, where: str, *,
           default_state: Sequence[str]) -> Selection:
    """The rule every reader follows (keys named in `obs_keys` must exist; the caller checks that).

    `obs_keys` names source keys: the vector keys among them are concatenated into observation.state
    in that order (none named: `default_state`); the camera keys among them are the cameras kept
    (none named: every camera). `skip_images` keeps no camera.
    """
    obs_keys = parse_keys(options.get("obs_keys")) or []
    named_images = [k for k in obs_keys if k in images]
    state = [k for k in obs_keys if k not in images] or list(default_state)
    if options.get("skip_images"):
        if named_images:
            raise MimeticError(f"{where}: obs_keys names the camera(s) {named_images} but skip_images drops every camera")
        return Selection(state=state, skipped=list(images))
    chosen = named_images or sorted(images)
    cameras: dict[str, str] = {}
    for k in chosen:
        dst = camera_key(k)
        other = next((s for s, d in cameras.items() if d == dst), None)
        if other is not None:
            raise MimeticError(f"{where}: cameras {other!r} and {k!r} would both become {dst!r}; keep one with obs_keys")
        cameras[k] = dst
    if not state and not cameras:
        raise MimeticError(f"{where}: no observation to convert (no state keys and no cameras); name them with obs_keys")
    return Selection(state=state, cameras=cameras, skipped=[k for k in images if k not in cameras])


def state_names(parts: Sequence[tuple[str, int, Sequence[str] | None]], fill: bool = True) -> list[str] | None:
    """Per-dimension names of the state concatenated from `parts` (source key, dims, its names or None):
    a key's own names where it has them (as many as its dims), else `<key>_<i>` (`<key>` for one dim).
    With fill=False a state made of one key without names keeps None."""
    if not fill and len(parts) == 1 and not _names_fit(parts[0][2], parts[0][1]):
        return None
    out: list[str] = []
    for key, dim, names in parts:
        if _names_fit(names, dim):
            out += [str(n) for n in names]
        else:
            out += [key] if dim == 1 else [f"{key}_{i}" for i in range(dim)]
    return out


def _names_fit(names, dim: int) -> bool:
    return isinstance(names, (list, tuple)) and len(names) == dim and all(isinstance(n, str) for n in names)


def to_frames(arr: np.ndarray, where: str, steps: int | None = None) -> np.ndarray:
    """A camera array (T, ...) -> uint8 (T, H, W, 3), or a one-line MimeticError naming `where`.

    The rule: channels last (H, W, C) unless only the first axis can be channels ((C, H, W) is
    transposed); C = 1 or a plain (H, W) is grey, repeated into 3 channels; uint8 is kept as it is;
    floats must lie in [0, 1] and become round(255 x). Other dtypes, channel counts and ranges are refused.
    """
    arr = np.asarray(arr)
    if steps is not None and len(arr) != steps:
        raise MimeticError(f"{where}: has {len(arr)} frames, expected {steps}")
    shape = arr.shape[1:]
    if arr.ndim == 3:
        arr = arr[..., None]
    elif arr.ndim == 4 and shape[-1] not in (1, 3) and shape[0] in (1, 3):
        arr = np.moveaxis(arr, 1, -1)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise MimeticError(f"{where}: frames of shape {list(shape)} are not images (H, W, 3), (H, W, 1), (H, W) or (3, H, W)")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr.size and (arr.min() < 0 or arr.max() > 1)):
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            raise MimeticError(f"{where}: float frames must hold values in [0, 1] (found {lo:g}..{hi:g}, or NaN); "
                               "a depth map? leave it out with obs_keys or skip_images")
        arr = np.rint(arr * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise MimeticError(f"{where}: frames are {arr.dtype}; expected uint8, or floats in [0, 1]")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr)


def decode_image(cell, where: str, root: Path | None = None) -> np.ndarray:
    """One image cell of a parquet file (Hugging Face `Image`: {"bytes": ..., "path": ...}, or raw bytes)
    -> uint8 (H, W, 3). PNG and JPEG are read (grey and RGBA become RGB); a cell with a path but no
    bytes is read from that file (relative to `root`)."""
    from PIL import Image, UnidentifiedImageError

    data, path = (cell.get("bytes"), cell.get("path")) if isinstance(cell, dict) else (cell, None)
    if not data and path:
        p = Path(path) if root is None or Path(path).is_absolute() else root / path
        if not p.is_file():
            raise MimeticError(f"{where}: image file {p} not found")
        data = p.read_bytes()
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise MimeticError(f"{where}: holds no image bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise MimeticError(f"{where}: the {len(data)} bytes are not a readable image: {' '.join(str(e).split())}") from None


def decode_images(cells: Sequence, where: str, root: Path | None = None) -> np.ndarray:
    """A column of image cells -> uint8 (N, H, W, 3); every image must have the first one's shape."""
    first = None
    out = None
    for i, cell in enumerate(cells):
        img = decode_image(cell, f"{where} row {i}", root)
        if out is None:
            first, out = img.shape, np.empty((len(cells), *img.shape), np.uint8)
        elif img.shape != first:
            raise MimeticError(f"{where} row {i}: image is {list(img.shape)} but row 0 is {list(first)} (mixed image shapes)")
        out[i] = img
    return out if out is not None else np.zeros((0, 1, 1, 3), np.uint8)

def check_options(fmt: str, options: dict, allowed: Iterable[str]) -> dict:
    """Drop options not given (None, or False for flags); reject others this format does not understand."""
    options = {k: v for k, v in options.items() if v is not None and v is not False}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise MimeticError(f"option(s) {unknown} do not apply to format {fmt!r} (it accepts {sorted(allowed)})")
    return options


# ---------------------------------------------------------------------- arrow columns
def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def arrow_to_numpy(col, where: str, shape: Sequence[int] | None = None) -> np.ndarray:
    """An Arrow column of scalars or (nested) lists of numbers -> numpy (N, *per-row shape).

    Nested lists must be rectangular; `shape` (the per-row shape a schema promises) is checked
    where given. Strings, structs and nulls raise MimeticError naming `where`.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    n = len(col)
    if col.null_count:
        raise MimeticError(f"{where}: has {col.null_count} missing (null) values")
    dims: list[int] = []
    arr = col
    while _is_list(arr.type):
        if isinstance(arr, pa.FixedSizeListArray):
            width = arr.type.list_size
            arr = arr.flatten()
        else:
            lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
            width = int(lengths[0]) if len(lengths) else 0
            if len(lengths) and np.any(lengths != width):
                raise MimeticError(f"{where}: rows have different lengths ({int(lengths.min())} to {int(lengths.max())}); expected a fixed shape")
            arr = arr.flatten()
        if arr.null_count:
            raise MimeticError(f"{where}: has {arr.null_count} missing (null) values")
        dims.append(width)
    t = arr.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        raise MimeticError(f"{where}: expected numbers, found Arrow type {col.type}")
    flat = arr.to_numpy(zero_copy_only=False)
    out = flat.reshape((n, *dims))
    if shape is not None:
        shape = [int(s) for s in shape]
        per_row = int(np.prod(out.shape[1:]))
        if per_row != int(np.prod(shape)):
            raise MimeticError(f"{where}: rows have shape {list(out.shape[1:]) or [1]}, expected {shape}")
        out = out.reshape(n) if shape == [1] else out.reshape((n, *shape))
    return out


def video_frames(path: Path, first: int, n: int, where: str, *, whole: bool = False) -> np.ndarray:
    """Frames first..first+n-1 of the MP4 at `path` (with `whole`, the file must hold exactly those n);
    a missing, corrupt or short file is a one-line MimeticError that names it and `where`."""
    from mimetic.data.video import decode_frames, decode_video

    try:
        if whole:
            return decode_video(path, expected_frames=n)
        return decode_frames(path, np.arange(first, first + n))
    except MimeticError as e:
        raise MimeticError(f"{where}: {e}") from None
