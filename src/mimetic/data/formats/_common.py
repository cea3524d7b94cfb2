"""Helpers shared by the format readers: array checks with errors that name the file and key."""

from __future__ import annotations

import warnings
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mimetic.errors import MimeticError

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
    """Per-step shape (without the time axis): images are uint8 with 2+ dims, or anything with 3+ dims."""
    dtype = np.dtype(dtype)
    return (dtype == np.uint8 and len(shape) >= 2) or len(shape) >= 3


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


def report_images(images: list[str], where: str, *, obs_keys_given: bool, skip_images: bool) -> list[str]:
    """The rule for image/video observations, which mimetic does not convert yet.

    If the source holds any and the user did not choose the observation keys, stop with an error
    listing them, unless skip_images is set: then warn and go on with the low-dimensional keys.
    Returns the list of skipped keys (for the meta dict).
    """
    if not images:
        return []
    if not obs_keys_given and not skip_images:
        raise MimeticError(
            f"{where}: image/video observations {images} are not supported yet; "
            "pass skip_images=True (--skip-images) to convert the low-dimensional keys only, "
            "or choose them with obs_keys (--obs-keys)"
        )
    if not obs_keys_given:
        warnings.warn(f"{where}: skipping image/video observations {images} (not supported yet)", stacklevel=3)
    return list(images)


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
