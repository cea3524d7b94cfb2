"""Camera frames fetched on demand: datasets larger than memory.

`Dataset.load(root, lazy=..., frame_cache_mb=...)` either decodes every camera frame into memory
(eager) or gives, for each camera, an array-like (`LazyFrames`: `len`, `shape`, `dtype`, and
indexing by integer, slice or integer array of any shape) that decodes only the frames asked for:
from the MP4 files (seek to the keyframe at or before a frame, decode forward; AV1 with g=2, LeRobot's
default, makes that at most two frames) or from the PNG bytes in the data files (one parquet row
group read per miss). Vector columns (state, action: small) stay in memory either way.

Decoded frames go through one bounded LRU cache per dataset (`FrameCache`, keyed by file and frame),
whose size is the setting: the frames it holds never exceed `frame_cache_mb` megabytes (its `nbytes`
and `peak_nbytes` count the frame data exactly; FFmpeg's decoders, one per open file with at most
`MAX_OPEN_VIDEOS` open, the batch being built and the next one being decoded in the background,
`WindowSampler.prefetch`, come on top). Training's random windows hit the
cache in proportion to cache size / dataset size; what it mostly saves is the neighbouring frames of
an observation history and in-order validation passes.

The default (`lazy=None`) is eager when the decoded frames of every camera fit in the cache setting
(small datasets, `inspect`, `convert`: as fast as before) and lazy otherwise, so the setting bounds
the decoded-frame memory either way. The setting: `frame_cache_mb` argument, else the environment
variable MIMETIC_FRAME_CACHE_MB, else DEFAULT_FRAME_CACHE_MB; `mimetic train --frame-cache-mb MB`.

Worker processes: a forked one (a torch DataLoader's) opens its own files on first read (open files
share offsets with the parent); a pickled lazy dataset (a spawned one) carries its setting, not its
open files or cached frames.

Reading never writes: files are opened read-only. A file missing, truncated or corrupt when a frame is
fetched is one MimeticError naming the file, the frame of that file and the dataset frame.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from mimetic.errors import MimeticError

DEFAULT_FRAME_CACHE_MB = 1024.0
FRAME_CACHE_ENV = "MIMETIC_FRAME_CACHE_MB"
MAX_OPEN_VIDEOS = 8  # open MP4 decoders kept per dataset (each holds a few reference frames)
_INHERITED: list = []  # in a forked process: the parent's open videos, set aside (see FrameStore.video)


def frame_cache_bytes(mb: float | None = None) -> int:
    """The decoded-frame budget in bytes: `mb`, else $MIMETIC_FRAME_CACHE_MB, else DEFAULT_FRAME_CACHE_MB."""
    where = "frame cache size"
    if mb is None:
        env = os.environ.get(FRAME_CACHE_ENV, "").strip()
        if env:
            where = f"{FRAME_CACHE_ENV}={env!r}"
            try:
                mb = float(env)
            except ValueError:
                raise MimeticError(f"{where}: expected a number of megabytes") from None
        else:
            mb = DEFAULT_FRAME_CACHE_MB
    if isinstance(mb, bool) or not isinstance(mb, (int, float)) or not np.isfinite(mb) or mb < 0:
        raise MimeticError(f"{where}: expected a non-negative number of megabytes, got {mb!r}")
    return int(mb * 2 ** 20)


class FrameCache:
    """Least-recently-used decoded frames (any values with `nbytes`), at most `max_bytes` of them."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._d: OrderedDict = OrderedDict()
        self.nbytes = self.peak_nbytes = self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key):
        value = self._d.get(key)
        if value is None:
            self.misses += 1
            return None
        self._d.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key, value) -> None:
        n = int(value.nbytes)
        old = self._d.pop(key, None)
        if old is not None:
            self.nbytes -= int(old.nbytes)
        if n > self.max_bytes:
            return
        while self._d and self.nbytes + n > self.max_bytes:
            _, dropped = self._d.popitem(last=False)
            self.nbytes -= int(dropped.nbytes)
        self._d[key] = value
        self.nbytes += n
        self.peak_nbytes = max(self.peak_nbytes, self.nbytes)

    def clear(self) -> None:
        self._d.clear()
        self.nbytes = 0


class FrameStore:
    """What a lazy dataset's cameras share: the frame cache, the open video files, and a lock (a batch may be
    decoded in a background thread, `WindowSampler.prefetch`, while validation reads)."""

    def __init__(self, max_bytes: int):
        self.cache = FrameCache(max_bytes)
        self._videos: OrderedDict = OrderedDict()
        self._pid = os.getpid()
        self.lock = threading.RLock()

    def video(self, path: Path):
        from mimetic.data.video import RandomAccess

        if self._pid != os.getpid():  # a forked process (a DataLoader worker): the parent's open files share its
            # file offsets, so this process opens its own; the parent's are kept, never freed here (freeing
            # FFmpeg's contexts waits on threads that only the parent has: it hangs)
            _INHERITED.append(self._videos)
            self._videos, self._pid = OrderedDict(), os.getpid()
        reader = self._videos.get(path)
        if reader is None:
            reader = RandomAccess(path)
            self._videos[path] = reader
            while len(self._videos) > MAX_OPEN_VIDEOS:
                self._videos.popitem(last=False)[1].close()
        self._videos.move_to_end(path)
        return reader

    def __getstate__(self):  # pickled (a spawned worker): the setting, not the open files or the cached frames
        return {"max_bytes": self.cache.max_bytes}

    def __setstate__(self, state):
        self.__init__(state["max_bytes"])

    def forget(self, path: Path) -> None:
        reader = self._videos.pop(path, None)
        if reader is not None:
            reader.close()

    def close(self) -> None:
        for path in list(self._videos):
            self.forget(path)


class LazyFrames:
    """uint8 frames (N, H, W, 3) decoded when indexed. Indexing works along the first axis only."""

    dtype = np.dtype(np.uint8)

    def __init__(self, n: int, frame_shape):
        self._n, self.frame_shape = int(n), tuple(int(s) for s in frame_shape)

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple:
        return (self._n, *self.frame_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.frame_shape)

    def __getitem__(self, idx) -> np.ndarray:
        n = len(self)
        if isinstance(idx, tuple):  # frames first, then numpy indexing within them
            first, rest = (idx[0] if idx else slice(None)), idx[1:]
            if not isinstance(first, (int, np.integer, slice)):
                raise IndexError("lazy frames take an integer array alone, or an integer or slice before other indices")
            out = self[first]
            return out[rest] if isinstance(first, (int, np.integer)) else out[(slice(None), *rest)]
        if isinstance(idx, (int, np.integer)):
            i = int(idx) + (n if int(idx) < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"frame {int(idx)} is out of range for {n} frames")
            return self._take(np.array([i], np.int64))[0]
        if isinstance(idx, slice):
            arr = np.arange(n)[idx]
        else:
            arr = np.asarray(idx)
            if arr.dtype == bool:
                if arr.shape != (n,):
                    raise IndexError(f"a boolean index must have shape ({n},), got {arr.shape}")
                arr = np.flatnonzero(arr)
            elif arr.size and arr.dtype.kind not in "iu":
                raise IndexError(f"frames are indexed by integers, slices or integer arrays, got {arr.dtype}")
        arr = arr.astype(np.int64)
        arr = np.where(arr < 0, arr + n, arr)
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise IndexError(f"frame indices {int(arr.min())}..{int(arr.max())} are out of range for {n} frames")
        if not arr.size:
            return np.zeros((*arr.shape, *self.frame_shape), np.uint8)
        unique, inverse = np.unique(arr.reshape(-1), return_inverse=True)
        return self._take(unique)[inverse.reshape(-1)].reshape(*arr.shape, *self.frame_shape)

    def __array__(self, dtype=None, copy=None):  # every frame: np.asarray(frames) decodes the whole camera
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def astype(self, dtype) -> np.ndarray:
        return np.asarray(self, dtype)

    def _take(self, idx: np.ndarray) -> np.ndarray:
        """The frames at sorted unique in-range indices."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype=uint8)"


class VideoFrames(LazyFrames):
    """A camera stored as MP4: segments (dataset frames g0..g1 = frames f0.. of one file)."""

    def __init__(self, store: FrameStore, key: str, frame_shape, segments: list[tuple[int, int, Path, int]]):
        segments = sorted(segments)
        super().__init__(segments[-1][1] if segments else 0, frame_shape)
        self.store, self.key = store, key
        self._g0 = np.array([s[0] for s in segments], np.int64)
        self._g1 = np.array([s[1] for s in segments], np.int64)
        self._path = [Path(s[2]) for s in segments]
        self._f0 = np.array([s[3] for s in segments], np.int64)

    def _take(self, idx: np.ndarray) -> np.ndarray:
        with self.store.lock:
            return self._take_locked(idx)

    def _take_locked(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *self.frame_shape), np.uint8)
        seg = np.searchsorted(self._g0, idx, side="right") - 1
        cache = self.store.cache
        for s in np.unique(seg).tolist():
            pos = np.flatnonzero(seg == s)
            path, shift = self._path[s], int(self._f0[s] - self._g0[s])
            want: dict[int, list[int]] = {}
            for p in pos.tolist():
                f = int(idx[p]) + shift
                hit = cache.get((path, f))
                if hit is None:
                    want.setdefault(f, []).append(p)
                else:
                    out[p] = hit
            if not want:
                continue

            def keep(f: int, image: np.ndarray) -> None:
                image = np.array(image, np.uint8, copy=True)  # its own memory: the cache counts what it holds
                for p in want.get(f, ()):
                    out[p] = image
                cache.put((path, f), image)

            try:
                reader = self.store.video(path)
                if reader.shape != self.frame_shape:
                    raise MimeticError(f"video {path}: frames are {list(reader.shape)} but {self.key} is "
                                       f"{list(self.frame_shape)}")
                reader.read(sorted(want), keep)
            except MimeticError as e:
                self.store.forget(path)
                f = getattr(e, "frame", min(want))
                raise MimeticError(f"{e} (reading frame {f} of that file: {self.key} frame {f - shift} of the "
                                   f"dataset)") from None
        return out


class _Blob:
    """A row group's PNG bytes, sized for the cache."""

    def __init__(self, cells: list):
        self.cells = cells
        self.nbytes = sum(len(c) for c in cells if c)


class PngFrames(LazyFrames):
    """A camera stored as PNG bytes in the data files: frame g is row `row[g]` of file `paths[file[g]]`."""

    def __init__(self, store: FrameStore, key: str, frame_shape, paths: list[Path], file: np.ndarray,
                 row: np.ndarray):
        super().__init__(len(file), frame_shape)
        self.store, self.key = store, key
        self._paths, self._file, self._row = [Path(p) for p in paths], np.asarray(file), np.asarray(row, np.int64)
        self._groups: dict[int, np.ndarray] = {}  # file -> first row of each row group, and the total

    def _bounds(self, fi: int) -> np.ndarray:
        if fi not in self._groups:
            import pyarrow.parquet as pq

            path = self._paths[fi]
            try:
                md = pq.ParquetFile(path).metadata
            except (OSError, ValueError) as e:  # pyarrow's errors derive from these
                raise MimeticError(f"{path} is not a readable parquet file: {' '.join(str(e).split())}") from None
            sizes = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
            self._groups[fi] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return self._groups[fi]

    def _cells(self, fi: int, g: int) -> list:
        import pyarrow.parquet as pq

        path = self._paths[fi]
        blob = self.store.cache.get((path, self.key, "row group", g))
        if blob is None:
            try:
                col = pq.ParquetFile(path).read_row_group(g, columns=[self.key]).column(self.key).to_pylist()
            except (OSError, ValueError, KeyError) as e:
                raise MimeticError(f"{path}: cannot read {self.key} from row group {g}: {' '.join(str(e).split())}") from None
            blob = _Blob([c.get("bytes") if isinstance(c, dict) else c for c in col])
            self.store.cache.put((path, self.key, "row group", g), blob)
        return blob.cells

    def _take(self, idx: np.ndarray) -> np.ndarray:
        with self.store.lock:
            return self._take_locked(idx)

    def _take_locked(self, idx: np.ndarray) -> np.ndarray:
        from mimetic.data.video import decode_png

        out = np.empty((len(idx), *self.frame_shape), np.uint8)
        cache = self.store.cache
        files, rows = self._file[idx], self._row[idx]
        for p in range(len(idx)):
            path, row = self._paths[int(files[p])], int(rows[p])
            hit = cache.get((path, self.key, row))
            if hit is not None:
                out[p] = hit
                continue
            try:
                bounds = self._bounds(int(files[p]))
                g = int(np.searchsorted(bounds, row, side="right") - 1)
                if not 0 <= g < len(bounds) - 1:
                    raise MimeticError(f"{path} has {int(bounds[-1])} rows, not a row {row}")
                data = self._cells(int(files[p]), g)[row - int(bounds[g])]
                if not data:
                    raise MimeticError(f"{path}: {self.key} has no image bytes")
                image = decode_png(data)
                if image.shape != self.frame_shape:
                    raise MimeticError(f"{path}: {self.key} is {list(image.shape)} but info.json says "
                                       f"{list(self.frame_shape)}")
            except MimeticError as e:
                raise MimeticError(f"{e} (row {row} of {path.name}: {self.key} frame {int(idx[p])} of the dataset)") from None
            out[p] = image
            cache.put((path, self.key, row), image)
        return out


class ChainedFrames(LazyFrames):
    """Frames joined end to end from parts (arrays or LazyFrames): a lazy dataset after appends."""

    def __init__(self, parts):
        flat = []
        for p in parts:
            flat.extend(p.parts if isinstance(p, ChainedFrames) else [p])
        super().__init__(sum(len(p) for p in flat), flat[0].shape[1:])
        self.parts = flat
        self._starts = np.cumsum([0] + [len(p) for p in flat])

    def _take(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *self.frame_shape), np.uint8)
        part = np.searchsorted(self._starts, idx, side="right") - 1
        for k in np.unique(part).tolist():
            m = part == k
            out[m] = self.parts[k][idx[m] - self._starts[k]]
        return out


def join(parts) -> np.ndarray | LazyFrames:
    """Parts of one column joined: one array when every part is one, else ChainedFrames."""
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    return ChainedFrames(parts)
