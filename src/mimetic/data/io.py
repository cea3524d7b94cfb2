"""Small file helpers: atomic writes, JSON, parquet with clear errors."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mimetic.errors import MimeticError


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone gives 0600


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, fsync, rename: readers see the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def atomic_write_parquet(path: Path, table: pa.Table, row_group_size: int | None = None) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy", row_group_size=row_group_size)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def read_json(path: Path, what: str = "file"):
    path = Path(path)
    if not path.is_file():
        raise MimeticError(f"{what} {path} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MimeticError(f"{what} {path} is not valid JSON: {e}") from None


def read_parquet(path: Path, skip=()) -> pa.Table:
    """The table at `path`, without the columns named in `skip`."""
    try:
        if skip:
            names = pq.read_schema(path).names
            return pq.read_table(path, columns=[c for c in names if c not in skip])
        return pq.read_table(path)
    except FileNotFoundError:
        raise MimeticError(f"{path} not found") from None
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise MimeticError(f"{path} is not a readable parquet file: {e}") from None
