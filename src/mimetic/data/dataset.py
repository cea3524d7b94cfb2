"""Demonstration datasets on disk, in the LeRobot v3.0 layout.

```
meta/info.json                               features (typed: state, environment state, cameras, action),
                                             totals, fps; "mimetic": the env it was collected in
meta/stats.json                              per-feature mean/std/min/max/count (+ quantiles)
meta/tasks.parquet                           task strings (pandas index "task") -> task_index
meta/episodes/chunk-000/file-000.parquet     one row per episode (ranges, lengths, per-episode stats,
                                             video file and timestamps per camera)
data/chunk-000/file-000.parquet              one row per frame (vectors; PNG images if stored as images)
videos/<key>/chunk-000/file-000.mp4          camera frames, several episodes per file (video storage)
```

Cameras are stored as LeRobot v3 stores them: by default as video, one MP4 per camera and file
(AV1, yuv420p, g=2, crf=30: LeRobot's defaults; `video_codec="h264"` also works), an episode being
the frames from `from_timestamp` to `to_timestamp` of its file; or, with `image_storage="png"`,
as lossless PNG bytes in the data files (LeRobot's `image` dtype). Frames are uint8 and decoded
exactly by frame index: all of them into memory when they fit in the frame cache setting, else on
demand through a bounded cache (`Dataset.load(root, lazy=..., frame_cache_mb=...)`, see
`mimetic.data.lazy`: datasets larger than memory).

Appending costs O(new episodes): each append writes new files (data, episodes metadata and one
video per camera, all under the next file index) and updates stats.json by combining the stored
statistics with the new episodes' ones; nothing already written is rewritten.

Crash safety: every file is written to a temporary name and renamed, and `meta/info.json`, written
last, is the commit point: readers use only the first `total_episodes` episodes and the first
`total_frames` frames it names, so a process killed during an append leaves the previous dataset
readable (files of the unfinished append are ignored, and the next append overwrites them).

Nothing outside `mimetic.data` reads these files: everyone else uses `Dataset`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mimetic.data.episode import Episode
from mimetic.data.io import atomic_write_json, atomic_write_parquet, read_json, read_parquet
from mimetic.errors import MimeticError
from mimetic.features import (ACTION, STATE, Feature, features_from_json, image_keys, is_image_key, observation_keys,
                              vector_keys)

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
IMAGE_STORAGES = ("video", "png")
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
STANDARD = ("action", "next.reward", "next.done", "next.success")
INDEX = ("timestamp", "frame_index", "episode_index", "index", "task_index")
PNG_ROW_GROUP_BYTES = 1 << 20  # data files with PNG frames: row groups of about 1 MiB of images (lazy reads)
IMAGE_STATS_FRAMES = 100  # frames per episode sampled for image statistics (LeRobot samples too)


def _path(template: str, k: int, **kw) -> str:
    return template.format(chunk_index=k // CHUNKS_SIZE, file_index=k % CHUNKS_SIZE, **kw)


def _feature(dtype: str, shape: list[int]) -> dict:
    return {"dtype": dtype, "shape": shape, "names": None}


def _extra_dtype(arr: np.ndarray) -> tuple[str, list[int]]:
    if arr.dtype.kind == "b":
        dtype = "bool"
    elif arr.dtype.kind in "iu":
        dtype = "int64"
    elif arr.dtype.kind == "f":
        dtype = "float32"
    elif arr.dtype.kind in "USO":
        dtype = "string"
    else:
        raise MimeticError(f"extra column of dtype {arr.dtype} cannot be stored")
    return dtype, list(arr.shape[1:]) or [1]


def feature_stats(x: np.ndarray) -> dict:
    """LeRobot-style statistics of one vector feature (frames along axis 0)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    out = {
        "mean": x.mean(0).tolist(),
        "std": x.std(0).tolist(),
        "min": x.min(0).tolist(),
        "max": x.max(0).tolist(),
        "count": [int(len(x))],
    }
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(x, q, axis=0).tolist()
    return out


def image_stats(frames: np.ndarray) -> dict:
    """Per-channel statistics of uint8 frames (T, H, W, 3) scaled to [0, 1], shaped (3, 1, 1) as LeRobot's;
    computed on at most IMAGE_STATS_FRAMES evenly spaced frames, `count` being the frames sampled."""
    step = max(1, len(frames) // IMAGE_STATS_FRAMES)
    x = frames[::step].astype(np.float32) / 255.0
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    shape = lambda v: np.asarray(v).reshape(-1, 1, 1).tolist()  # noqa: E731
    out = {"mean": shape(flat.mean(0)), "std": shape(flat.std(0)), "min": shape(flat.min(0)), "max": shape(flat.max(0)),
           "count": [int(len(x))]}
    return out


def combine_stats(a: dict | None, b: dict) -> dict:
    """Statistics of the union of two sets of frames from each set's statistics (exact for mean, std,
    min, max and count; quantiles are count-weighted means, as LeRobot aggregates them)."""
    if not a:
        return b
    na, nb = float(a["count"][0]), float(b["count"][0])
    n = na + nb
    out = {"count": [int(n)]}
    ma, mb = np.asarray(a["mean"], np.float64), np.asarray(b["mean"], np.float64)
    sa, sb = np.asarray(a["std"], np.float64), np.asarray(b["std"], np.float64)
    mean = (na * ma + nb * mb) / n
    var = (na * (sa ** 2 + ma ** 2) + nb * (sb ** 2 + mb ** 2)) / n - mean ** 2
    out["mean"], out["std"] = mean.tolist(), np.sqrt(np.maximum(var, 0.0)).tolist()
    out["min"] = np.minimum(np.asarray(a["min"]), np.asarray(b["min"])).tolist()
    out["max"] = np.maximum(np.asarray(a["max"]), np.asarray(b["max"])).tolist()
    for k in a:
        if k.startswith("q") and k in b:
            out[k] = ((na * np.asarray(a[k], np.float64) + nb * np.asarray(b[k], np.float64)) / n).tolist()
    return out


class _Columns:
    """Per-frame columns, kept as the parts each append added; a column is joined into one array when read,
    so appending never copies the frames already held (collecting N episodes stays O(N))."""

    def __init__(self, part: Mapping[str, np.ndarray] | None = None):
        self.cols: dict[str, list[np.ndarray]] = {}
        if part:
            self.add(part)

    def add(self, part: Mapping[str, np.ndarray]) -> None:
        for k, v in part.items():
            self.cols.setdefault(k, []).append(v)

    def __contains__(self, key: str) -> bool:
        return key in self.cols

    def __getitem__(self, key: str) -> np.ndarray:
        parts = self.cols[key]
        if len(parts) > 1:
            from mimetic.data.lazy import join

            parts[:] = [join(parts)]  # cameras of a lazy dataset stay lazy
        return parts[0]

    def __len__(self) -> int:
        return sum(len(p) for p in self.cols.get(ACTION, []))


def _image_json(storage: str, shape) -> dict:
    return {"dtype": "video" if storage == "video" else "image", "shape": [int(s) for s in shape],
            "names": ["height", "width", "channels"]}


class Dataset:
    """A demonstration dataset. `Dataset.load(dir)`, `Dataset.create(dir, ...)`, `ds.append(episodes)`.

    Observations are typed features (`features`): `frames(key)` gives every frame of one key (float32
    (N, d) vectors, uint8 (N, H, W, 3) images; in a lazy dataset a camera's frames are a `LazyFrames`,
    decoded when indexed); `observations` is the `observation.state` feature."""

    def __init__(self, root: Path, info: dict, columns: _Columns, tasks: list[str], ep_meta: dict[str, np.ndarray],
                 store=None):
        self.root = Path(root)
        self._store = store  # a lazy dataset's FrameStore (frame cache, open videos); None when frames are in memory
        self.info = info
        self._c = columns
        self.tasks = tasks
        self.episode_starts = ep_meta["dataset_from_index"].astype(np.int64)
        self.episode_ends = ep_meta["dataset_to_index"].astype(np.int64)
        self._ep_file = ep_meta["data/file_index"].astype(np.int64)
        self.episode_terminated = ep_meta.get("mimetic/terminated", np.zeros(len(self.episode_starts), bool)).astype(bool)
        self._stats: dict | None = None  # aggregated statistics of the committed frames (read lazily)

    # ------------------------------------------------------------------ features
    @property
    def features(self) -> dict[str, Feature]:
        """Observation features and the action, by key."""
        return features_from_json(self.info["features"], str(self.root / "meta/info.json"))

    @property
    def observation_keys(self) -> list[str]:
        return observation_keys(self.features)

    @property
    def vector_keys(self) -> list[str]:
        return vector_keys(self.features)

    @property
    def image_keys(self) -> list[str]:
        return image_keys(self.features)

    @property
    def image_storage(self) -> str | None:
        """How cameras are stored: "video", "png", or None when the dataset has none."""
        dtypes = {self.info["features"][k]["dtype"] for k in self.image_keys}
        return None if not dtypes else ("video" if "video" in dtypes else "png")

    @property
    def lazy(self) -> bool:
        """Whether camera frames are decoded on demand (through `frame_cache`) rather than held in memory."""
        return self._store is not None

    @property
    def frame_cache(self):
        """A lazy dataset's decoded-frame cache (`mimetic.data.lazy.FrameCache`: nbytes, peak_nbytes, max_bytes)."""
        return None if self._store is None else self._store.cache

    def frames(self, key: str) -> np.ndarray:
        """Every frame of observation feature `key` (or "action"), in dataset order (cameras of a lazy dataset:
        a `LazyFrames` that decodes the frames it is indexed with)."""
        if key not in self._c or (key != ACTION and key not in self.observation_keys):
            raise MimeticError(f"dataset {self.root} has no feature {key!r} (it has {self.observation_keys + [ACTION]})")
        return self._c[key]

    @property
    def observations(self) -> np.ndarray:
        """The `observation.state` feature, (N, d) float32."""
        if STATE not in self.observation_keys:
            raise MimeticError(f"dataset {self.root} has no {STATE!r} (it has only {self.observation_keys}): "
                               f"this method reads the state")
        return self._c[STATE]

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.info["features"][ACTION]["shape"][0])

    # ------------------------------------------------------------------ properties
    @property
    def num_episodes(self) -> int:
        return len(self.episode_starts)

    @property
    def num_frames(self) -> int:
        return len(self._c)

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def env_name(self) -> str | None:
        return self.info.get("mimetic", {}).get("env")

    @property
    def env_options(self) -> dict:
        return dict(self.info.get("mimetic", {}).get("env_options") or {})

    @property
    def extra_keys(self) -> list[str]:
        return sorted(_extra_keys(self.info["features"]))

    @property
    def actions(self) -> np.ndarray:
        return self._c[ACTION]

    @property
    def rewards(self) -> np.ndarray:
        return self._c["next.reward"]

    @property
    def dones(self) -> np.ndarray:
        return self._c["next.done"]

    @property
    def successes(self) -> np.ndarray:
        return self._c["next.success"]

    @property
    def episode_index(self) -> np.ndarray:
        return self._c["episode_index"]

    @property
    def task_index(self) -> np.ndarray:
        """Each frame's task: an index into `tasks` (LeRobot's task_index)."""
        return self._c["task_index"]

    @property
    def frame_index(self) -> np.ndarray:
        return self._c["frame_index"]

    def extra(self, key: str) -> np.ndarray:
        return self._c[key]

    def episode_lengths(self) -> np.ndarray:
        return self.episode_ends - self.episode_starts

    def episode_success(self) -> np.ndarray:
        """Per episode: success at any step."""
        succ = self.successes
        return np.array([succ[s:e].any() for s, e in zip(self.episode_starts, self.episode_ends)], dtype=bool)

    def episode(self, i: int) -> Episode:
        s, e = int(self.episode_starts[i]), int(self.episode_ends[i])
        task_index = self._c["task_index"]
        return Episode(
            observations={k: self._c[k][s:e] for k in self.observation_keys},
            actions=self.actions[s:e],
            rewards=self.rewards[s:e],
            successes=self.successes[s:e],
            terminated=bool(self.episode_terminated[i]),
            task=self.tasks[int(task_index[s])] if self.tasks else "",
            extras={k: self._c[k][s:e] for k in self.extra_keys},
        )

    def episodes(self) -> Iterator[Episode]:
        for i in range(self.num_episodes):
            yield self.episode(i)

    def stats(self) -> dict:
        return read_json(self.root / "meta/stats.json", "dataset stats")

    def __repr__(self) -> str:
        cams = f", cameras={[k.split('.')[-1] for k in self.image_keys]}" if self.image_keys else ""
        return (f"Dataset({str(self.root)!r}, episodes={self.num_episodes}, frames={self.num_frames}, "
                f"env={self.env_name!r}{cams})")

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(
        cls,
        root: str | Path,
        episodes: Iterable[Episode] = (),
        *,
        env: str | None = None,
        env_options: dict | None = None,
        fps: int = 10,
        robot_type: str | None = None,
        meta: dict | None = None,
        feature_names: Mapping[str, list[str]] | None = None,
        image_storage: str = "video",
        video_codec: str = "av1",
    ) -> "Dataset":
        """Write a new dataset at `root` (which must not exist or be empty), atomically.

        Cameras (`observation.images.*`) are stored as `image_storage` "video" (MP4, `video_codec` "av1"
        or "h264") or "png" (lossless, in the data files). `feature_names` gives per-dimension names of
        vector features (e.g. the env's `feature_names`)."""
        root = Path(root)
        episodes = list(episodes)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise MimeticError(f"cannot create dataset at {root}: it exists and is not empty")
        if not episodes:
            raise MimeticError(f"cannot create dataset at {root}: no episodes to write")
        if image_storage not in IMAGE_STORAGES:
            raise MimeticError(f"image storage must be one of {', '.join(IMAGE_STORAGES)}, got {image_storage!r}")
        first = episodes[0]
        first.validate(f"episode 0 to write to {root}")
        names = dict(feature_names or {})
        features: dict[str, dict] = {}
        for key in observation_keys(_features_of_episode(first)):
            arr = first.obs[key]
            if is_image_key(key):
                features[key] = _image_json(image_storage, arr.shape[1:])
                if image_storage == "video":
                    from mimetic.data.video import CODECS

                    if video_codec not in CODECS:
                        raise MimeticError(f"dataset {root}: video codec {video_codec!r} is not available here "
                                           f"(use one of {', '.join(CODECS)}, or image storage 'png')")
            else:
                n = names.get(key)
                features[key] = {"dtype": "float32", "shape": [arr.shape[1]],
                                 "names": list(n) if n is not None and len(n) == arr.shape[1] else None}
        features[ACTION] = _feature("float32", [first.actions.shape[1]])
        for key in ("next.reward",):
            features[key] = _feature("float32", [1])
        for key in ("next.done", "next.success"):
            features[key] = _feature("bool", [1])
        features.update({"timestamp": _feature("float32", [1]), "frame_index": _feature("int64", [1]),
                         "episode_index": _feature("int64", [1]), "index": _feature("int64", [1]),
                         "task_index": _feature("int64", [1])})
        for k, v in sorted(first.extras.items()):
            dtype, shape = _extra_dtype(v)
            features[k] = _feature(dtype, shape)
        has_video = any(f.get("dtype") == "video" for f in features.values())
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILES_SIZE_MB,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_MB,
            "fps": int(fps),
            "splits": {},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if has_video else None,
            "features": features,
            "mimetic": {"env": env, "env_options": env_options or {}, "video_codec": video_codec if has_video else None},
        }
        empty_meta = {k: np.zeros(0, np.int64) for k in ("dataset_from_index", "dataset_to_index", "data/file_index")}
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
        try:
            ds = cls(tmp, info, _Columns(), [], empty_meta)
            ds._stats = {}
            ds.append(episodes, meta=meta)
            try:
                if root.exists():
                    root.rmdir()  # empty, checked above
                tmp.rename(root)
            except OSError as e:  # another writer filled `root` meanwhile: its data stays, this copy goes
                raise MimeticError(f"cannot create dataset at {root}: another process wrote it meanwhile "
                                   f"({e.strerror or e})") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        ds.root = root
        return ds

    @classmethod
    def create_or_append(cls, root: str | Path, episodes: Iterable[Episode], **create_kwargs) -> "Dataset":
        root = Path(root)
        if (root / "meta/info.json").exists():
            ds = cls.load(root)
            ds.append(episodes, meta=create_kwargs.get("meta"))
            return ds
        return cls.create(root, episodes, **create_kwargs)

    # ------------------------------------------------------------------ appending
    def _check_episode(self, ep: Episode, where: str) -> None:
        ep.validate(where)
        feats = self.info["features"]
        keys = self.observation_keys
        if sorted(ep.obs) != sorted(keys):
            raise MimeticError(f"{where}: observation features {sorted(ep.obs)} differ from the dataset's {sorted(keys)} ({self.root})")
        for key in keys:
            want = tuple(feats[key]["shape"])
            got = ep.obs[key].shape[1:]
            if got != want:
                what = "frames" if is_image_key(key) else "values"
                raise MimeticError(f"{where}: {key} has {what} of shape {list(got)} but dataset {self.root} has {list(want)}")
        if ep.actions.shape[1] != self.act_dim:
            raise MimeticError(f"{where}: actions have {ep.actions.shape[1]} dims but dataset {self.root} has {self.act_dim}")
        if set(ep.extras) != set(self.extra_keys):
            raise MimeticError(f"{where}: extra columns {sorted(ep.extras)} differ from the dataset's {self.extra_keys}")

    def _committed_stats(self) -> dict:
        """Statistics of the committed frames: stats.json if it counts exactly them, else computed from the frames
        (after a crash between writing stats.json and committing, or for a dataset written by another tool)."""
        if self._stats is not None:
            return self._stats
        stats = None
        try:
            stats = self.stats()
        except MimeticError:
            pass
        keys = self.observation_keys + [ACTION, "next.reward"]
        if not (isinstance(stats, dict) and all(isinstance(stats.get(k), dict) and "count" in stats[k] for k in keys)
                and int(stats[ACTION]["count"][0]) == self.num_frames):
            stats = self._frames_stats({k: self._c[k] for k in keys}, self.episode_lengths())
        self._stats = stats
        return stats

    @staticmethod
    def _frames_stats(part: Mapping[str, np.ndarray], lengths: np.ndarray) -> dict:
        out = {}
        for key, arr in part.items():
            if is_image_key(key):
                ends = np.cumsum(lengths)
                per = [image_stats(arr[e - n:e]) for n, e in zip(lengths, ends)]
                agg = None
                for s in per:
                    agg = combine_stats(agg, s)
                out[key] = agg
            else:
                out[key] = feature_stats(arr)
        return out

    def append(self, episodes: Iterable[Episode], meta: dict | None = None) -> None:
        """Add episodes. All are validated before anything is written; the commit is atomic; the cost is
        that of the new episodes (new files under the next file index; nothing written before is rewritten).

        `meta` updates the "mimetic" section of info.json in the same commit (e.g. the next seed).
        """
        episodes = list(episodes)
        if not episodes:
            return
        for i, ep in enumerate(episodes):
            self._check_episode(ep, f"episode {i} to append to {self.root}")
        stats_before = self._committed_stats()
        n0, e0 = self.num_frames, self.num_episodes
        k = int(self._ep_file.max()) + 1 if e0 else 0  # the file index of everything this append writes
        tasks = list(self.tasks)
        task_idx = []
        for ep in episodes:
            if ep.task not in tasks:
                tasks.append(ep.task)
            task_idx.append(tasks.index(ep.task))
        lengths = np.array([len(ep) for ep in episodes], np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        part: dict[str, np.ndarray] = {key: np.concatenate([ep.obs[key] for ep in episodes]) for key in self.observation_keys}
        part[ACTION] = np.concatenate([ep.actions for ep in episodes])
        part["next.reward"] = np.concatenate([ep.rewards for ep in episodes])
        part["next.done"] = np.concatenate([np.arange(len(ep)) == len(ep) - 1 for ep in episodes])
        part["next.success"] = np.concatenate([ep.successes for ep in episodes])
        part["episode_index"] = np.concatenate([np.full(len(ep), e0 + i, np.int64) for i, ep in enumerate(episodes)])
        part["frame_index"] = np.concatenate([np.arange(len(ep), dtype=np.int64) for ep in episodes])
        part["task_index"] = np.concatenate([np.full(len(ep), t, np.int64) for ep, t in zip(episodes, task_idx)])
        for key in self.extra_keys:
            old = self._c.cols.get(key)
            vals = [ep.extras[key] for ep in episodes]
            dtype = old[0].dtype if old else None
            part[key] = np.concatenate([v.astype(dtype) if dtype is not None and dtype.kind not in "USO" else v for v in vals])
        starts = n0 + offsets
        ends = starts + lengths
        info = json.loads(json.dumps(self.info))

        # 1. videos: one file per camera holding the new episodes, frame i at time i / fps
        video_ts = {}
        for key in self.image_keys:
            if info["features"][key]["dtype"] != "video":
                continue
            from mimetic.data.video import decode_video, encode_video

            path = self.root / _path(VIDEO_PATH, k, video_key=key)
            block = encode_video(path, part[key], self.fps, codec=info["mimetic"].get("video_codec") or "av1")
            info["features"][key]["info"] = block
            if self._store is None:
                # an eager dataset holds what the file holds (the lossy codec's frames), not the frames it was given:
                # a policy trained right after collecting sees what one trained on the dataset loaded later sees
                part[key] = decode_video(path, expected_frames=len(part[key]))
            video_ts[key] = (offsets / self.fps, (offsets + lengths) / self.fps)
        # 2. the new frames, 3. their episodes, 4. tasks, 5. stats
        index = n0 + np.arange(int(lengths.sum()), dtype=np.int64)
        table = self._frames_table(part, index)
        png = [key for key in self.image_keys if info["features"][key]["dtype"] == "image"]
        # PNG frames: row groups of about PNG_ROW_GROUP_BYTES, the unit a lazy dataset reads a frame from
        rows = max(16, int(PNG_ROW_GROUP_BYTES * len(index) / max(1, sum(table.column(key).nbytes for key in png))))
        atomic_write_parquet(self.root / _path(DATA_PATH, k), table, row_group_size=rows if png else None)
        new_stats = [self._frames_stats({key: part[key][o:o + n] for key in self.observation_keys + [ACTION, "next.reward"]},
                                        np.array([n])) for o, n in zip(offsets, lengths)]
        atomic_write_parquet(self.root / _path(EPISODES_PATH, k),
                             self._episodes_table(e0, starts, ends, k, episodes, task_idx, tasks, new_stats, video_ts))
        if tasks != self.tasks or not (self.root / "meta/tasks.parquet").exists():
            atomic_write_parquet(self.root / "meta/tasks.parquet", _tasks_table(tasks))
        stats = dict(stats_before)
        for s in new_stats:
            stats = {key: combine_stats(stats.get(key), s[key]) for key in s}
        atomic_write_json(self.root / "meta/stats.json", stats)
        # 6. commit
        info["total_episodes"] = e0 + len(episodes)
        info["total_frames"] = n0 + int(lengths.sum())
        info["total_tasks"] = len(tasks)
        info["splits"] = {"train": f"0:{info['total_episodes']}"}
        info.setdefault("mimetic", {}).update(meta or {})
        atomic_write_json(self.root / "meta/info.json", info)
        # only now does this object change
        self.info, self.tasks, self._stats = info, tasks, stats
        if self._store is not None:  # a lazy dataset reads the new frames back from the files just written
            part.update(self._lazy_part(k, n0, int(lengths.sum())))
        self._c.add(part)
        self.episode_starts = np.concatenate([self.episode_starts, starts])
        self.episode_ends = np.concatenate([self.episode_ends, ends])
        self._ep_file = np.concatenate([self._ep_file, np.full(len(episodes), k, np.int64)])
        self.episode_terminated = np.concatenate([self.episode_terminated, [ep.terminated for ep in episodes]]).astype(bool)

    def _lazy_part(self, k: int, n0: int, n: int) -> dict:
        """The cameras of frames n0..n0+n, all written by one append under file index k, as LazyFrames."""
        from mimetic.data.lazy import PngFrames, VideoFrames

        out = {}
        for key in self.image_keys:
            shape = tuple(self.info["features"][key]["shape"])
            if self.info["features"][key]["dtype"] == "video":
                path = self.root / _path(VIDEO_PATH, k, video_key=key)  # where append wrote them
                out[key] = VideoFrames(self._store, key, shape, [(0, n, path, 0)])
            else:
                path = self.root / _path(DATA_PATH, k)
                out[key] = PngFrames(self._store, key, shape, [path], np.zeros(n, np.int32), np.arange(n))
        return out

    def _frames_table(self, part: Mapping[str, np.ndarray], index: np.ndarray) -> pa.Table:
        cols: dict[str, pa.Array] = {}
        for key in self.observation_keys + [ACTION]:
            v = part[key]
            if is_image_key(key):
                if self.info["features"][key]["dtype"] == "image":
                    from mimetic.data.video import encode_png

                    cols[key] = pa.array([{"bytes": encode_png(f), "path": None} for f in v],
                                         pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
                continue
            cols[key] = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
        cols["next.reward"] = pa.array(part["next.reward"])
        cols["next.done"] = pa.array(part["next.done"])
        cols["next.success"] = pa.array(part["next.success"])
        cols["timestamp"] = pa.array((part["frame_index"] / self.fps).astype(np.float32))
        cols["frame_index"] = pa.array(part["frame_index"])
        cols["episode_index"] = pa.array(part["episode_index"])
        cols["index"] = pa.array(index)
        cols["task_index"] = pa.array(part["task_index"])
        for k in self.extra_keys:
            v = part[k]
            if v.dtype.kind in "USO":
                cols[k] = pa.array(v.astype(str).tolist(), pa.string())
            elif v.ndim > 1:
                cols[k] = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), int(np.prod(v.shape[1:])))
            else:
                cols[k] = pa.array(v)
        return pa.table(cols)

    def _episodes_table(self, e0: int, starts, ends, k: int, episodes, task_idx, tasks, stats, video_ts) -> pa.Table:
        n = len(starts)
        cols: dict[str, list] = {
            "episode_index": list(range(e0, e0 + n)),
            "tasks": [[tasks[t]] for t in task_idx],
            "length": (ends - starts).tolist(),
            "data/chunk_index": [k // CHUNKS_SIZE] * n,
            "data/file_index": [k % CHUNKS_SIZE] * n,
            "dataset_from_index": starts.tolist(),
            "dataset_to_index": ends.tolist(),
        }
        for key, (t0, t1) in video_ts.items():
            cols[f"videos/{key}/chunk_index"] = [k // CHUNKS_SIZE] * n
            cols[f"videos/{key}/file_index"] = [k % CHUNKS_SIZE] * n
            cols[f"videos/{key}/from_timestamp"] = [float(x) for x in t0]
            cols[f"videos/{key}/to_timestamp"] = [float(x) for x in t1]
        cols["meta/episodes/chunk_index"] = [k // CHUNKS_SIZE] * n
        cols["meta/episodes/file_index"] = [k % CHUNKS_SIZE] * n
        cols["mimetic/terminated"] = [ep.terminated for ep in episodes]
        for key in stats[0]:
            for stat in ("mean", "std", "min", "max", "count"):
                cols[f"stats/{key}/{stat}"] = [s[key][stat] for s in stats]
        return pa.table(cols)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, root: str | Path, *, lazy: bool | None = None, frame_cache_mb: float | None = None) -> "Dataset":
        """Load and validate a dataset; raise MimeticError naming the file and field on any problem.

        Camera frames: `lazy=False` decodes every one into memory; `lazy=True` decodes them when indexed,
        through a cache of at most `frame_cache_mb` MB (default $MIMETIC_FRAME_CACHE_MB, else 1024);
        `lazy=None` is lazy only when the decoded frames would not fit in that setting
        (`mimetic.data.lazy`). Vector columns are held in memory either way."""
        root = Path(root)
        if not root.exists():
            raise MimeticError(f"dataset {root} not found")
        if not (root / "meta/info.json").exists():
            hint = " (a LeRobot v2.1, robomimic, zarr or imitation dataset? use `mimetic convert`)" if root.is_dir() else ""
            raise MimeticError(f"{root} is not a mimetic/LeRobot v3 dataset: meta/info.json is missing{hint}")
        info = read_json(root / "meta/info.json", "dataset info")
        where = root / "meta/info.json"
        if not isinstance(info, dict):
            raise MimeticError(f"{where}: expected a JSON object")
        if info.get("codebase_version") != CODEBASE_VERSION:
            raise MimeticError(f"{where}: codebase_version is {info.get('codebase_version')!r}, expected {CODEBASE_VERSION!r} (use `mimetic convert` for other versions)")
        feats = info.get("features")
        if not isinstance(feats, dict):
            raise MimeticError(f"{where}: 'features' is missing")
        if ACTION not in feats or not isinstance(feats[ACTION].get("shape"), list) or len(feats[ACTION]["shape"]) != 1:
            raise MimeticError(f"{where}: feature 'action' is missing or not a 1-d vector")
        typed = features_from_json(feats, str(where))
        obs_keys = observation_keys(typed)
        if not obs_keys:
            raise MimeticError(f"{where}: no observation feature (observation.state, observation.images.<camera>, ...)")
        for key in obs_keys:
            if not is_image_key(key) and len(feats[key]["shape"]) != 1:
                raise MimeticError(f"{where}: feature {key!r} is not a 1-d vector")
        for key in ("total_episodes", "total_frames", "fps"):
            if not isinstance(info.get(key), int) or info[key] < 0:
                raise MimeticError(f"{where}: {key!r} must be a non-negative integer")
        info.setdefault("mimetic", {"env": None, "env_options": {}})
        n_ep, n_fr, fps = info["total_episodes"], info["total_frames"], info["fps"]
        from mimetic.data.lazy import FrameStore, frame_cache_bytes

        cache_bytes = frame_cache_bytes(frame_cache_mb)
        cams = [k for k in obs_keys if is_image_key(k)]
        decoded = n_fr * sum(int(np.prod(typed[k].shape)) for k in cams)
        store = FrameStore(cache_bytes) if cams and (decoded > cache_bytes if lazy is None else lazy) else None
        png_keys = [k for k in cams if feats[k].get("dtype") != "video"]
        skip = set(png_keys) if store is not None else set()  # a lazy dataset reads PNG bytes when indexed
        png_file: list[np.ndarray] = []  # per data file: (its rows, their dataset frame index)

        tasks: list[str] = []
        if (root / "meta/tasks.parquet").exists():
            t = read_parquet(root / "meta/tasks.parquet")
            if "task" in t.column_names and "task_index" in t.column_names:
                order = np.argsort(t.column("task_index").to_numpy())
                names = t.column("task").to_pylist()
                tasks = [names[i] for i in order]

        meta, ep_cols = _read_episodes(root, n_ep, [k for k in obs_keys if feats[k].get("dtype") == "video"])

        # frames
        data_files = sorted(set(meta["data/file_index"].tolist()))
        tables = []
        for fi in data_files:
            p = root / _path(info.get("data_path", DATA_PATH), fi)
            t = read_parquet(p, skip=skip)
            for k in (ACTION, "index", "episode_index", "frame_index"):
                if k not in t.column_names:
                    raise MimeticError(f"{p}: column {k!r} is missing")
            keep = pc.less(t.column("index"), n_fr)
            if skip:
                rows = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
                png_file.append(np.stack([rows, t.column("index").to_numpy()[rows]]))
            tables.append(t.filter(keep))
        if not tables:
            frames_tbl = None
        else:
            try:
                frames_tbl = pa.concat_tables(tables, promote_options="default")
            except pa.ArrowInvalid as e:
                raise MimeticError(f"{root}/data: data files disagree in their columns: {e}") from None
            frames_tbl = frames_tbl.sort_by("index")
        nrows = 0 if frames_tbl is None else frames_tbl.num_rows
        if nrows != n_fr:
            raise MimeticError(f"{root}/data: found {nrows} frames but meta/info.json counts {n_fr}")

        def vec(key: str, dim: int, dtype) -> np.ndarray:
            if frames_tbl is None:
                return np.zeros((0, dim), dtype)
            if key not in frames_tbl.column_names:
                raise MimeticError(f"{root}/data: column {key!r} is missing")
            col = frames_tbl.column(key).combine_chunks()
            if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
                flat = col.flatten().to_numpy(zero_copy_only=False)
                if len(flat) != dim * nrows:
                    raise MimeticError(f"{root}/data: column {key!r} does not have {dim} values per frame as info.json says")
                return flat.reshape(nrows, dim).astype(dtype)
            arr = col.to_numpy(zero_copy_only=False)
            if dim != 1:
                raise MimeticError(f"{root}/data: column {key!r} is a scalar but info.json says shape [{dim}]")
            return arr.reshape(nrows, 1).astype(dtype)

        def scalar(key: str, dtype, default) -> np.ndarray:
            if frames_tbl is None or key not in frames_tbl.column_names:
                return np.full(nrows, default, dtype)
            return vec(key, 1, dtype)[:, 0]

        columns: dict[str, np.ndarray] = {}
        for key in obs_keys + [ACTION]:
            if not is_image_key(key):
                arr = vec(key, int(feats[key]["shape"][0]), np.float32)
                bad = ~np.isfinite(arr)
                if bad.any():
                    r = int(np.argwhere(bad)[0][0])
                    raise MimeticError(f"{root}: {key} contains NaN or inf (frame {r}, episode {int(scalar('episode_index', np.int64, 0)[r])})")
                columns[key] = arr
            elif feats[key].get("dtype") == "video":
                read = _lazy_video_frames if store is not None else _read_video_frames
                columns[key] = read(root, info, key, typed[key].shape, meta, ep_cols, store)
            elif store is not None:
                columns[key] = _lazy_png_frames(root, info, key, typed[key].shape, data_files, png_file, n_fr, store)
            else:
                columns[key] = _read_png_frames(root, key, typed[key].shape, frames_tbl)
        columns["next.reward"] = scalar("next.reward", np.float32, 0.0)
        columns["next.done"] = scalar("next.done", bool, False)
        columns["next.success"] = scalar("next.success", bool, False)
        columns["episode_index"] = scalar("episode_index", np.int64, 0)
        columns["frame_index"] = scalar("frame_index", np.int64, 0)
        columns["task_index"] = scalar("task_index", np.int64, 0)
        for k in _extra_keys(feats):
            if frames_tbl is None or k not in frames_tbl.column_names:
                raise MimeticError(f"{root}/data: column {k!r} (named in info.json features) is missing")
            dtype = feats[k].get("dtype")
            if dtype == "string":
                columns[k] = np.asarray(frames_tbl.column(k).to_pylist(), dtype=object)
            else:
                shape = feats[k].get("shape", [1])
                arr = vec(k, int(np.prod(shape)), {"bool": bool, "int64": np.int64}.get(dtype, np.float32))
                columns[k] = arr[:, 0] if shape == [1] else arr.reshape((nrows, *shape))
        starts, ends = meta["dataset_from_index"], meta["dataset_to_index"]
        if n_ep and (starts[0] != 0 or ends[-1] != n_fr or np.any(starts[1:] != ends[:-1]) or np.any(ends <= starts)):
            raise MimeticError(f"{root}/meta/episodes: episode frame ranges do not tile frames 0..{n_fr}")
        expect_ep = np.repeat(np.arange(n_ep), ends - starts)
        if not np.array_equal(columns["episode_index"], expect_ep):
            raise MimeticError(f"{root}/data: episode_index column disagrees with meta/episodes ranges")
        return cls(root, info, _Columns(columns), tasks, meta, store)


def _extra_keys(feats: Mapping[str, dict]) -> list[str]:
    from mimetic.features import kind_of

    return [k for k in feats if kind_of(k) is None and k not in STANDARD and k not in INDEX
            and feats[k].get("dtype") not in ("image", "video")]


def _features_of_episode(ep: Episode) -> dict[str, Feature]:
    from mimetic.features import image_feature, kind_of, state_feature

    return {k: image_feature(*v.shape[1:]) if is_image_key(k) else state_feature(v.shape[1], kind=kind_of(k) or "state")
            for k, v in ep.obs.items()}


def _read_episodes(root: Path, n_ep: int, video_keys: list[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The committed episodes' ranges and files from meta/episodes (files of an unfinished append are ignored)."""
    ep_files = sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
    if n_ep and not ep_files:
        raise MimeticError(f"{root}: meta/episodes/ holds no episode files but info.json counts {n_ep} episodes")
    ep_tables = [read_parquet(p) for p in ep_files]
    need = ["episode_index", "dataset_from_index", "dataset_to_index", "data/chunk_index", "data/file_index"]
    video_cols = [f"videos/{key}/{c}" for key in video_keys for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    meta: dict[str, np.ndarray] = {}
    for k in need + video_cols:
        parts = []
        for p, t in zip(ep_files, ep_tables):
            if k not in t.column_names:
                raise MimeticError(f"{p}: column {k!r} is missing")
            parts.append(t.column(k).to_numpy())
        meta[k] = np.concatenate(parts) if parts else np.zeros(0)
    term = [t.column("mimetic/terminated").to_numpy(zero_copy_only=False) if "mimetic/terminated" in t.column_names
            else np.zeros(t.num_rows, bool) for t in ep_tables]
    meta["mimetic/terminated"] = np.concatenate(term).astype(bool) if term else np.zeros(0, bool)
    for k in need:
        meta[k] = meta[k].astype(np.int64)
    order = np.argsort(meta["episode_index"], kind="stable")
    meta = {k: v[order] for k, v in meta.items()}
    keep = meta["episode_index"] < n_ep
    meta = {k: v[keep] for k, v in meta.items()}
    if len(meta["episode_index"]) != n_ep or not np.array_equal(meta["episode_index"], np.arange(n_ep)):
        raise MimeticError(f"{root}/meta/episodes: expected episodes 0..{n_ep - 1}, found {len(meta['episode_index'])}")
    meta["data/file_index"] = meta["data/chunk_index"] * CHUNKS_SIZE + meta["data/file_index"]
    ep_cols = {k: meta.pop(k) for k in video_cols}
    return meta, ep_cols


def _video_files(root: Path, info: dict, key: str, shape, meta, ep_cols, read):
    """Camera `key`'s MP4 files: for each, `read(path, first dataset frame, last)` -> (frames or None, frame count,
    frame shape); the size and every episode's frame range are checked against what it returns. Yields
    (path, frames, [(episode, dataset frames g0..g1, first frame in the file)])."""
    fps = info["fps"]
    starts, ends = meta["dataset_from_index"], meta["dataset_to_index"]
    files = ep_cols[f"videos/{key}/chunk_index"].astype(np.int64) * CHUNKS_SIZE + ep_cols[f"videos/{key}/file_index"].astype(np.int64)
    t0 = ep_cols[f"videos/{key}/from_timestamp"].astype(np.float64)
    t1 = ep_cols[f"videos/{key}/to_timestamp"].astype(np.float64)
    template = info.get("video_path") or VIDEO_PATH
    for fi in sorted(set(files.tolist())):
        path = root / _path(template, fi, video_key=key)
        eps = np.flatnonzero(files == fi)
        frames, total, got = read(path, int(starts[eps[0]]), int(ends[eps[-1]]) - 1)
        if got != tuple(shape):
            raise MimeticError(f"{path}: frames are {list(got)} but info.json says {key} is {list(shape)}")
        rows = []
        for e in eps:
            lo = int(round(t0[e] * fps))
            n = int(ends[e] - starts[e])
            if abs((t1[e] - t0[e]) * fps - n) > 0.5 or (total and lo + n > total):
                raise MimeticError(f"{path}: episode {e} has {n} rows in data/ but the video holds frames "
                                   f"{lo}..{min(lo + n, total) - 1} of {total} for it "
                                   f"(timestamps {t0[e]:.3f}..{t1[e]:.3f} s at {fps} fps)")
            rows.append((int(e), int(starts[e]), int(ends[e]), lo))
        yield path, frames, rows


def _read_video_frames(root: Path, info: dict, key: str, shape, meta, ep_cols, store=None) -> np.ndarray:
    """Every committed frame of camera `key`, decoded from its MP4 files (each file decoded once)."""
    from mimetic.data.video import decode_video

    def read(path, g0, g1):
        frames = decode_video(path)
        return frames, len(frames), frames.shape[1:]

    ends = meta["dataset_to_index"]
    out = np.zeros((int(ends[-1]) if len(ends) else 0, *shape), np.uint8)
    for _, frames, rows in _video_files(root, info, key, shape, meta, ep_cols, read):
        for _, g0, g1, lo in rows:
            out[g0:g1] = frames[lo:lo + g1 - g0]
    return out


def _lazy_video_frames(root: Path, info: dict, key: str, shape, meta, ep_cols, store):
    """Camera `key` as VideoFrames: each file's header checked (found, readable, not truncated, frame size,
    frames enough for its episodes), nothing decoded."""
    from mimetic.data.lazy import VideoFrames
    from mimetic.data.video import RandomAccess

    def read(path, g0, g1):
        try:
            reader = RandomAccess(path)
        except MimeticError as e:
            raise MimeticError(f"{e} ({key}, dataset frames {g0}..{g1})") from None
        total, got = reader.frames, reader.shape
        reader.close()
        return None, total, got

    segments: list[tuple[int, int, Path, int]] = []
    for path, _, rows in _video_files(root, info, key, shape, meta, ep_cols, read):
        for _, g0, g1, lo in rows:
            last = segments[-1] if segments else None
            if last and last[2] == path and last[1] == g0 and last[3] + g0 - last[0] == lo:
                segments[-1] = (last[0], g1, path, last[3])  # continues the previous episode's frames
            else:
                segments.append((g0, g1, path, lo))
    return VideoFrames(store, key, shape, segments)


def _lazy_png_frames(root: Path, info: dict, key: str, shape, data_files, png_file, n_fr: int, store):
    """Camera `key` stored as PNG bytes, as PngFrames: frame g is a row of one data file."""
    from mimetic.data.lazy import PngFrames

    import pyarrow.parquet as pq

    file, row = np.full(n_fr, -1, np.int32), np.zeros(n_fr, np.int64)
    paths = []
    for j, (fi, (rows, index)) in enumerate(zip(data_files, png_file)):
        p = root / _path(info.get("data_path", DATA_PATH), fi)
        if key not in pq.read_schema(p).names:
            raise MimeticError(f"{root}/data: column {key!r} is missing")
        paths.append(p)
        file[index], row[index] = j, rows
    return PngFrames(store, key, shape, paths, file, row)


def _read_png_frames(root: Path, key: str, shape, frames_tbl) -> np.ndarray:
    """Every committed frame of camera `key` stored as PNG bytes in the data files (LeRobot's image dtype)."""
    from mimetic.data.video import decode_png

    if frames_tbl is None:
        return np.zeros((0, *shape), np.uint8)
    if key not in frames_tbl.column_names:
        raise MimeticError(f"{root}/data: column {key!r} is missing")
    out = np.zeros((frames_tbl.num_rows, *shape), np.uint8)
    for i, cell in enumerate(frames_tbl.column(key).to_pylist()):
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if not data:
            raise MimeticError(f"{root}/data: {key} has no image bytes at frame {i}")
        img = decode_png(data)
        if img.shape != tuple(shape):
            raise MimeticError(f"{root}/data: {key} frame {i} is {list(img.shape)} but info.json says {list(shape)}")
        out[i] = img
    return out


def _tasks_table(tasks: list[str]) -> pa.Table:
    """tasks.parquet as pandas writes it: index 'task', column 'task_index' (what LeRobot reads)."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
