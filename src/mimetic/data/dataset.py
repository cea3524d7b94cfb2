"""Demonstration datasets on disk, in the LeRobot v3.0 layout.

```
meta/info.json                         features, totals, fps; "mimetic": the env it was collected in
meta/stats.json                        per-feature mean/std/min/max/count/quantiles
meta/tasks.parquet                     task strings (pandas index "task") -> task_index
meta/episodes/chunk-000/file-000.parquet   one row per episode (ranges, lengths, per-episode stats)
data/chunk-000/file-000.parquet        one row per frame
```

Crash safety: every file is written to a temporary name and renamed, and `meta/info.json`, written
last, is the commit point: readers use only the first `total_episodes` episodes and the first
`total_frames` frames it names. A process killed during an append therefore leaves the previous
dataset readable, and the next append rewrites the files from the committed rows only.

Nothing outside `mimetic.data` reads these files: everyone else uses `Dataset`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mimetic.data.episode import Episode
from mimetic.data.io import atomic_write_json, atomic_write_parquet, read_json, read_parquet
from mimetic.errors import MimeticError

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_MB = 100
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
STANDARD = ("observation.state", "action", "next.reward", "next.done", "next.success")
INDEX = ("timestamp", "frame_index", "episode_index", "index", "task_index")


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
    """LeRobot-style statistics of one feature (frames along axis 0)."""
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


@dataclass
class _Frames:
    """All committed frames, column by column."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    successes: np.ndarray
    episode_index: np.ndarray
    frame_index: np.ndarray
    task_index: np.ndarray
    extras: dict[str, np.ndarray]


class Dataset:
    """A demonstration dataset. `Dataset.load(dir)`, `Dataset.create(dir, ...)`, `ds.append(episodes)`."""

    def __init__(self, root: Path, info: dict, frames: _Frames, tasks: list[str], ep_meta: dict[str, np.ndarray]):
        self.root = Path(root)
        self.info = info
        self._f = frames
        self.tasks = tasks
        self.episode_starts = ep_meta["dataset_from_index"].astype(np.int64)
        self.episode_ends = ep_meta["dataset_to_index"].astype(np.int64)
        self._ep_file = ep_meta["data/file_index"].astype(np.int64)
        self.episode_terminated = ep_meta.get("mimetic/terminated", np.zeros(len(self.episode_starts), bool)).astype(bool)

    # ------------------------------------------------------------------ properties
    @property
    def obs_dim(self) -> int:
        return int(self.info["features"]["observation.state"]["shape"][0])

    @property
    def act_dim(self) -> int:
        return int(self.info["features"]["action"]["shape"][0])

    @property
    def num_episodes(self) -> int:
        return len(self.episode_starts)

    @property
    def num_frames(self) -> int:
        return len(self._f.actions)

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
        return sorted(self._f.extras)

    @property
    def observations(self) -> np.ndarray:
        return self._f.observations

    @property
    def actions(self) -> np.ndarray:
        return self._f.actions

    @property
    def rewards(self) -> np.ndarray:
        return self._f.rewards

    @property
    def dones(self) -> np.ndarray:
        return self._f.dones

    @property
    def successes(self) -> np.ndarray:
        return self._f.successes

    @property
    def episode_index(self) -> np.ndarray:
        return self._f.episode_index

    @property
    def frame_index(self) -> np.ndarray:
        return self._f.frame_index

    def extra(self, key: str) -> np.ndarray:
        return self._f.extras[key]

    def episode_lengths(self) -> np.ndarray:
        return self.episode_ends - self.episode_starts

    def episode_success(self) -> np.ndarray:
        """Per episode: success at any step."""
        return np.array([self._f.successes[s:e].any() for s, e in zip(self.episode_starts, self.episode_ends)], dtype=bool)

    def episode(self, i: int) -> Episode:
        s, e = int(self.episode_starts[i]), int(self.episode_ends[i])
        f = self._f
        return Episode(
            observations=f.observations[s:e],
            actions=f.actions[s:e],
            rewards=f.rewards[s:e],
            successes=f.successes[s:e],
            terminated=bool(self.episode_terminated[i]),
            task=self.tasks[int(f.task_index[s])] if self.tasks else "",
            extras={k: v[s:e] for k, v in f.extras.items()},
        )

    def episodes(self) -> Iterator[Episode]:
        for i in range(self.num_episodes):
            yield self.episode(i)

    def stats(self) -> dict:
        return read_json(self.root / "meta/stats.json", "dataset stats")

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, episodes={self.num_episodes}, frames={self.num_frames}, env={self.env_name!r})"

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
    ) -> "Dataset":
        """Write a new dataset at `root` (which must not exist or be empty), atomically."""
        root = Path(root)
        episodes = list(episodes)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise MimeticError(f"cannot create dataset at {root}: it exists and is not empty")
        if not episodes:
            raise MimeticError(f"cannot create dataset at {root}: no episodes to write")
        first = episodes[0]
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILES_SIZE_MB,
            "video_files_size_in_mb": 200,
            "fps": int(fps),
            "splits": {},
            "data_path": DATA_PATH,
            "video_path": None,
            "features": {
                "observation.state": _feature("float32", [first.observations.shape[1]]),
                "action": _feature("float32", [first.actions.shape[1]]),
                "next.reward": _feature("float32", [1]),
                "next.done": _feature("bool", [1]),
                "next.success": _feature("bool", [1]),
                "timestamp": _feature("float32", [1]),
                "frame_index": _feature("int64", [1]),
                "episode_index": _feature("int64", [1]),
                "index": _feature("int64", [1]),
                "task_index": _feature("int64", [1]),
            },
            "mimetic": {"env": env, "env_options": env_options or {}},
        }
        for k, v in sorted(first.extras.items()):
            dtype, shape = _extra_dtype(v)
            info["features"][k] = _feature(dtype, shape)
        empty = _Frames(
            observations=np.zeros((0, first.observations.shape[1]), np.float32),
            actions=np.zeros((0, first.actions.shape[1]), np.float32),
            rewards=np.zeros(0, np.float32),
            dones=np.zeros(0, bool),
            successes=np.zeros(0, bool),
            episode_index=np.zeros(0, np.int64),
            frame_index=np.zeros(0, np.int64),
            task_index=np.zeros(0, np.int64),
            extras={k: np.zeros((0,) + v.shape[1:], v.dtype) for k, v in first.extras.items()},
        )
        empty_meta = {k: np.zeros(0, np.int64) for k in ("dataset_from_index", "dataset_to_index", "data/file_index")}
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
        try:
            ds = cls(tmp, info, empty, [], empty_meta)
            ds.append(episodes, meta=meta)
            if root.exists():
                root.rmdir()  # empty, checked above
            tmp.rename(root)
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
        if ep.observations.shape[1] != self.obs_dim:
            raise MimeticError(f"{where}: observations have {ep.observations.shape[1]} dims but dataset {self.root} has {self.obs_dim}")
        if ep.actions.shape[1] != self.act_dim:
            raise MimeticError(f"{where}: actions have {ep.actions.shape[1]} dims but dataset {self.root} has {self.act_dim}")
        if set(ep.extras) != set(self._f.extras):
            raise MimeticError(f"{where}: extra columns {sorted(ep.extras)} differ from the dataset's {sorted(self._f.extras)}")

    def append(self, episodes: Iterable[Episode], meta: dict | None = None) -> None:
        """Add episodes. All are validated before anything is written; the commit is atomic.

        `meta` updates the "mimetic" section of info.json in the same commit (e.g. the next seed).
        """
        episodes = list(episodes)
        if not episodes:
            return
        for i, ep in enumerate(episodes):
            self._check_episode(ep, f"episode {i} to append to {self.root}")
        f = self._f
        n0, e0 = self.num_frames, self.num_episodes
        tasks = list(self.tasks)
        new_task_idx = []
        for ep in episodes:
            if ep.task not in tasks:
                tasks.append(ep.task)
            new_task_idx.append(tasks.index(ep.task))
        lengths = np.array([len(ep) for ep in episodes], np.int64)

        def cat(old, new):
            return np.concatenate([old] + new) if new else old

        frames = _Frames(
            observations=cat(f.observations, [ep.observations for ep in episodes]),
            actions=cat(f.actions, [ep.actions for ep in episodes]),
            rewards=cat(f.rewards, [ep.rewards for ep in episodes]),
            dones=cat(f.dones, [np.arange(len(ep)) == len(ep) - 1 for ep in episodes]),
            successes=cat(f.successes, [ep.successes for ep in episodes]),
            episode_index=cat(f.episode_index, [np.full(len(ep), e0 + i, np.int64) for i, ep in enumerate(episodes)]),
            frame_index=cat(f.frame_index, [np.arange(len(ep), dtype=np.int64) for ep in episodes]),
            task_index=cat(f.task_index, [np.full(len(ep), t, np.int64) for ep, t in zip(episodes, new_task_idx)]),
            extras={k: cat(v, [ep.extras[k].astype(v.dtype) if v.dtype.kind not in "USO" else ep.extras[k] for ep in episodes]) for k, v in f.extras.items()},
        )
        # Which data file the new episodes go into: the last one unless it is full.
        last_file = int(self._ep_file[-1]) if e0 else 0
        if e0:
            last_rows = (self._ep_file == last_file)
            bytes_est = int(self.episode_lengths()[last_rows].sum()) * 4 * (self.obs_dim + self.act_dim + 4)
            if bytes_est > DATA_FILES_SIZE_MB * 1024 * 1024:
                last_file += 1
        starts = np.concatenate([self.episode_starts, n0 + np.concatenate([[0], np.cumsum(lengths)[:-1]])])
        ends = np.concatenate([self.episode_ends, n0 + np.cumsum(lengths)])
        ep_file = np.concatenate([self._ep_file, np.full(len(episodes), last_file, np.int64)])
        terminated = np.concatenate([self.episode_terminated, [ep.terminated for ep in episodes]]).astype(bool)

        # 1. data file holding the new episodes (rewritten from committed rows + new rows)
        rows = np.flatnonzero(np.repeat(ep_file == last_file, ends - starts))
        atomic_write_parquet(self.root / DATA_PATH.format(chunk_index=last_file // CHUNKS_SIZE, file_index=last_file % CHUNKS_SIZE), self._frames_table(frames, rows))
        # 2. tasks, episodes metadata, stats
        atomic_write_parquet(self.root / "meta/tasks.parquet", _tasks_table(tasks))
        atomic_write_parquet(self.root / EPISODES_PATH, self._episodes_table(frames, starts, ends, ep_file, terminated, tasks))
        stats = {"observation.state": feature_stats(frames.observations), "action": feature_stats(frames.actions),
                 "next.reward": feature_stats(frames.rewards)}
        atomic_write_json(self.root / "meta/stats.json", stats)
        # 3. commit
        info = json.loads(json.dumps(self.info))
        info["total_episodes"] = int(len(starts))
        info["total_frames"] = int(len(frames.actions))
        info["total_tasks"] = len(tasks)
        info["splits"] = {"train": f"0:{len(starts)}"}
        info.setdefault("mimetic", {}).update(meta or {})
        atomic_write_json(self.root / "meta/info.json", info)
        # only now does this object change
        self.info, self._f, self.tasks = info, frames, tasks
        self.episode_starts, self.episode_ends, self._ep_file = starts, ends, ep_file
        self.episode_terminated = terminated

    def _frames_table(self, f: _Frames, rows: np.ndarray) -> pa.Table:
        d, a = f.observations.shape[1], f.actions.shape[1]
        cols = {
            "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(f.observations[rows].reshape(-1)), d),
            "action": pa.FixedSizeListArray.from_arrays(pa.array(f.actions[rows].reshape(-1)), a),
            "next.reward": pa.array(f.rewards[rows]),
            "next.done": pa.array(f.dones[rows]),
            "next.success": pa.array(f.successes[rows]),
            "timestamp": pa.array((f.frame_index[rows] / self.fps).astype(np.float32)),
            "frame_index": pa.array(f.frame_index[rows]),
            "episode_index": pa.array(f.episode_index[rows]),
            "index": pa.array(rows.astype(np.int64)),
            "task_index": pa.array(f.task_index[rows]),
        }
        for k, v in f.extras.items():
            v = v[rows]
            if v.dtype.kind in "USO":
                cols[k] = pa.array(v.astype(str).tolist(), pa.string())
            elif v.ndim > 1:
                cols[k] = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), int(np.prod(v.shape[1:])))
            else:
                cols[k] = pa.array(v)
        return pa.table(cols)

    def _episodes_table(self, f: _Frames, starts, ends, ep_file, terminated, tasks) -> pa.Table:
        n = len(starts)
        cols: dict[str, list] = {
            "episode_index": list(range(n)),
            "tasks": [[tasks[int(f.task_index[s])]] for s in starts],
            "length": (ends - starts).tolist(),
            "data/chunk_index": (ep_file // CHUNKS_SIZE).tolist(),
            "data/file_index": (ep_file % CHUNKS_SIZE).tolist(),
            "dataset_from_index": starts.tolist(),
            "dataset_to_index": ends.tolist(),
            "meta/episodes/chunk_index": [0] * n,
            "meta/episodes/file_index": [0] * n,
            "mimetic/terminated": terminated.tolist(),
        }
        for key, arr in (("observation.state", f.observations), ("action", f.actions), ("next.reward", f.rewards[:, None])):
            per = [arr[s:e].astype(np.float64) for s, e in zip(starts, ends)]
            cols[f"stats/{key}/mean"] = [x.mean(0).tolist() for x in per]
            cols[f"stats/{key}/std"] = [x.std(0).tolist() for x in per]
            cols[f"stats/{key}/min"] = [x.min(0).tolist() for x in per]
            cols[f"stats/{key}/max"] = [x.max(0).tolist() for x in per]
            cols[f"stats/{key}/count"] = [[len(x)] for x in per]
        return pa.table(cols)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, root: str | Path) -> "Dataset":
        """Load and validate a dataset; raise MimeticError naming the file and field on any problem."""
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
        for key in STANDARD[:2]:
            if key not in feats or not isinstance(feats[key].get("shape"), list) or len(feats[key]["shape"]) != 1:
                raise MimeticError(f"{where}: feature {key!r} is missing or not a 1-d vector")
        for key in ("total_episodes", "total_frames", "fps"):
            if not isinstance(info.get(key), int) or info[key] < 0:
                raise MimeticError(f"{where}: {key!r} must be a non-negative integer")
        info.setdefault("mimetic", {"env": None, "env_options": {}})
        n_ep, n_fr = info["total_episodes"], info["total_frames"]
        d, a = feats["observation.state"]["shape"][0], feats["action"]["shape"][0]
        extra_keys = [k for k in feats if k not in STANDARD and k not in INDEX and feats[k].get("dtype") not in ("image", "video")]

        tasks: list[str] = []
        if (root / "meta/tasks.parquet").exists():
            t = read_parquet(root / "meta/tasks.parquet")
            if "task" in t.column_names and "task_index" in t.column_names:
                order = np.argsort(t.column("task_index").to_numpy())
                names = t.column("task").to_pylist()
                tasks = [names[i] for i in order]

        ep_files = sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
        if n_ep and not ep_files:
            raise MimeticError(f"{root}: meta/episodes/ holds no episode files but info.json counts {n_ep} episodes")
        ep_tables = [read_parquet(p) for p in ep_files]
        need = ("episode_index", "dataset_from_index", "dataset_to_index", "data/chunk_index", "data/file_index")
        meta: dict[str, np.ndarray] = {}
        for k in need:
            parts = []
            for p, t in zip(ep_files, ep_tables):
                if k not in t.column_names:
                    raise MimeticError(f"{p}: column {k!r} is missing")
                parts.append(t.column(k).to_numpy())
            meta[k] = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        term = [t.column("mimetic/terminated").to_numpy(zero_copy_only=False) if "mimetic/terminated" in t.column_names
                else np.zeros(t.num_rows, bool) for t in ep_tables]
        meta["mimetic/terminated"] = np.concatenate(term).astype(bool) if term else np.zeros(0, bool)
        order = np.argsort(meta["episode_index"], kind="stable")
        meta = {k: v[order] for k, v in meta.items()}
        keep = meta["episode_index"] < n_ep
        meta = {k: v[keep] for k, v in meta.items()}
        if len(meta["episode_index"]) != n_ep or not np.array_equal(meta["episode_index"], np.arange(n_ep)):
            raise MimeticError(f"{root}/meta/episodes: expected episodes 0..{n_ep - 1}, found {len(meta['episode_index'])}")
        meta["data/file_index"] = meta["data/chunk_index"] * CHUNKS_SIZE + meta["data/file_index"]

        # frames
        data_files = sorted(set(meta["data/file_index"].tolist()))
        tables = []
        for fi in data_files:
            p = root / info.get("data_path", DATA_PATH).format(chunk_index=fi // CHUNKS_SIZE, file_index=fi % CHUNKS_SIZE)
            t = read_parquet(p)
            for k in STANDARD[:2] + ("index", "episode_index", "frame_index"):
                if k not in t.column_names:
                    raise MimeticError(f"{p}: column {k!r} is missing")
            t = t.filter(pc.less(t.column("index"), n_fr))
            tables.append((p, t))
        if not tables:
            frames_tbl = None
        else:
            try:
                frames_tbl = pa.concat_tables([t for _, t in tables], promote_options="default")
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

        obs = vec("observation.state", d, np.float32)
        act = vec("action", a, np.float32)
        for key, arr in (("observation.state", obs), ("action", act)):
            bad = ~np.isfinite(arr)
            if bad.any():
                r = int(np.argwhere(bad)[0][0])
                raise MimeticError(f"{root}: {key} contains NaN or inf (frame {r}, episode {int(scalar('episode_index', np.int64, 0)[r])})")
        extras = {}
        for k in extra_keys:
            if frames_tbl is None or k not in frames_tbl.column_names:
                raise MimeticError(f"{root}/data: column {k!r} (named in info.json features) is missing")
            dtype = feats[k].get("dtype")
            if dtype == "string":
                extras[k] = np.asarray(frames_tbl.column(k).to_pylist(), dtype=object)
            else:
                shape = feats[k].get("shape", [1])
                arr = vec(k, int(np.prod(shape)), {"bool": bool, "int64": np.int64}.get(dtype, np.float32))
                extras[k] = arr[:, 0] if shape == [1] else arr.reshape((nrows, *shape))
        frames = _Frames(
            observations=obs,
            actions=act,
            rewards=scalar("next.reward", np.float32, 0.0),
            dones=scalar("next.done", bool, False),
            successes=scalar("next.success", bool, False),
            episode_index=scalar("episode_index", np.int64, 0),
            frame_index=scalar("frame_index", np.int64, 0),
            task_index=scalar("task_index", np.int64, 0),
            extras=extras,
        )
        starts, ends = meta["dataset_from_index"], meta["dataset_to_index"]
        if n_ep and (starts[0] != 0 or ends[-1] != n_fr or np.any(starts[1:] != ends[:-1]) or np.any(ends <= starts)):
            raise MimeticError(f"{root}/meta/episodes: episode frame ranges do not tile frames 0..{n_fr}")
        expect_ep = np.repeat(np.arange(n_ep), ends - starts)
        if not np.array_equal(frames.episode_index, expect_ep):
            raise MimeticError(f"{root}/data: episode_index column disagrees with meta/episodes ranges")
        return cls(root, info, frames, tasks, meta)


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
