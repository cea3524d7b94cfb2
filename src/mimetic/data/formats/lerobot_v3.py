"""LeRobot datasets, codebase v3.0 (mimetic's own layout is one of them): read, and export for LeRobot.

Reading someone else's v3 dataset:
- observation.state: `observation.state` if the dataset has it (its `names` kept, LeRobot's list or
  {"motors": [...]} form), else every numeric `observation.*` feature concatenated in sorted order;
  `obs_keys` names the vector features to concatenate instead (in that order; names then are each
  key's own, else `<key>_<i>`). Without vector keys in `obs_keys`, `observation.environment_state`
  and the other numeric `observation.*` features are kept under their own names.
- cameras: every `video` and `image` feature (or those `obs_keys` names; none with `skip_images`),
  kept by its LeRobot name (`observation.images.<cam>`; `observation.<x>` becomes
  `observation.images.<x>`). Video features: the episode's frames are decoded from the MP4 that
  meta/episodes names (`videos/<key>/chunk_index`, `file_index`), starting at frame
  `from_timestamp * fps`; `to_timestamp - from_timestamp` must match the episode's rows. Image
  features: the HF `Image` cells ({"bytes", "path"}) of the data files, PNG or JPEG.
- actions: `action` (or `action_key`); rewards `next.reward`, successes `next.success` where
  present (zeros/False otherwise); `terminated` from mimetic's `mimetic/terminated` episode column,
  else the episode's last `next.done`.
- other numeric, bool and string features (not `observation.*`) travel as Episode extras; audio
  features are skipped.

Writing (`write`, used by `export_lerobot`) rewrites a mimetic dataset into a fresh folder with only
its committed rows, stats for every numeric feature, and multi-dimensional extras flattened, so
that LeRobot's `LeRobotDataset` / `datasets.Dataset.from_parquet(features=...)` accept it. Cameras
are written as MP4 videos (AV1, LeRobot's default) or PNG image columns, names of vectors kept.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mimetic.data.episode import Episode
from mimetic.data.formats._common import (
    arrow_to_numpy,
    as_matrix,
    as_vector,
    check_options,
    concat_obs,
    decode_images,
    parse_keys,
    select,
    state_names,
    video_frames,
)
from mimetic.data.io import atomic_write_json, read_json
from mimetic.errors import MimeticError
from mimetic.features import STATE, kind_of

NAME = "lerobot"
OPTIONS = ("obs_keys", "action_key", "skip_images")
INDEX = ("timestamp", "frame_index", "episode_index", "index", "task_index")
NEXT = ("next.reward", "next.done", "next.success")
VISUAL = ("image", "video", "audio")
VIDEO_COLUMNS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")  # per episode, videos/<key>/...
EXTRA_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float16", "float32", "float64", "string")


def _version(path: Path) -> str | None:
    try:
        info = json.loads((Path(path) / "meta/info.json").read_text())
    except (OSError, ValueError):
        return None
    v = info.get("codebase_version") if isinstance(info, dict) else None
    return v if isinstance(v, str) else None


def detect(path) -> bool:
    v = _version(Path(path))
    return v is not None and v.startswith("v3")


# ---------------------------------------------------------------------- shared with lerobot_v2
@dataclass
class Plan:
    """Which feature columns become what."""

    obs_keys: list[str]  # concatenated into observation.state, in this order
    action_key: str
    keep: list[str] = field(default_factory=list)  # vector observation features kept under their own names
    cameras: dict[str, str] = field(default_factory=dict)  # source key -> observation.images.<cam>
    videos: list[str] = field(default_factory=list)  # the cameras stored as MP4 (the others are image columns)
    extras: dict[str, dict] = field(default_factory=dict)  # key -> feature
    skipped: list[str] = field(default_factory=list)
    has: set[str] = field(default_factory=set)  # present optional columns (next.*, index columns)
    names: dict[str, list[str] | None] = field(default_factory=dict)  # per-dimension names of the vectors

    @property
    def columns(self) -> list[str]:
        images = [k for k in self.cameras if k not in self.videos]
        return list(dict.fromkeys([*self.obs_keys, *self.keep, self.action_key, *sorted(self.has), *self.extras, *images]))


def read_info(path: Path) -> tuple[dict, dict]:
    where = path / "meta/info.json"
    info = read_json(where, "LeRobot info")
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
        raise MimeticError(f"{where}: expected a JSON object with a 'features' object")
    for k, ft in info["features"].items():
        if not isinstance(ft, dict) or "dtype" not in ft or not isinstance(ft.get("shape"), (list, tuple)):
            raise MimeticError(f"{where}: feature {k!r} needs 'dtype' and 'shape'")
    return info, info["features"]


def _names(ft: dict) -> list | None:
    """A feature's per-dimension names: LeRobot stores a list, or {"motors": [...]}."""
    names = ft.get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    return names if isinstance(names, list) else None


def plan_columns(feats: dict, where: str, options: dict) -> Plan:
    obs_keys = parse_keys(options.get("obs_keys")) or []
    action_key = options.get("action_key") or "action"
    visual = sorted(k for k, f in feats.items() if f["dtype"] in VISUAL)
    cams = [k for k in visual if feats[k]["dtype"] in ("image", "video")]
    numeric = {k for k, f in feats.items() if f["dtype"] not in VISUAL and f["dtype"] != "string"}
    for k in obs_keys:
        if k not in feats:
            raise MimeticError(f"{where}: obs key {k!r} is not a feature (features: {sorted(feats)})")
        if k not in numeric and k not in cams:
            raise MimeticError(f"{where}: obs key {k!r} has dtype {feats[k]['dtype']!r}, expected numbers, image or video")
    vectors = sorted(k for k in numeric if kind_of(k) in ("state", "environment_state"))
    default_state, keep = (["observation.state"], [k for k in vectors if k != "observation.state"]) \
        if "observation.state" in vectors else (vectors, [])
    sel = select(sorted(numeric), cams, options, where, default_state=default_state)
    if any(k not in cams for k in obs_keys):  # the state was chosen: other observation vectors stay behind
        keep = []
    if action_key not in feats:
        raise MimeticError(f"{where}: action feature {action_key!r} is missing (features: {sorted(feats)})")
    if action_key not in numeric:
        raise MimeticError(f"{where}: action feature {action_key!r} has dtype {feats[action_key]['dtype']!r}, expected numbers")
    plan = Plan(obs_keys=sel.state, action_key=action_key, keep=keep, cameras=sel.cameras,
                videos=[k for k in sel.cameras if feats[k]["dtype"] == "video"], skipped=list(sel.skipped))
    plan.has = {k for k in (*INDEX, *NEXT) if k in feats and k not in plan.obs_keys and k != action_key}
    for k, f in feats.items():
        if k in plan.obs_keys or k in keep or k == action_key or k in plan.has or k in cams:
            continue
        if f["dtype"] in EXTRA_DTYPES and kind_of(k) is None:
            plan.extras[k] = f
        else:
            plan.skipped.append(k)
    dims = {k: int(np.prod(feats[k]["shape"])) for k in plan.obs_keys + keep}
    if plan.obs_keys:
        plan.names[STATE] = state_names([(k, dims[k], _names(feats[k])) for k in plan.obs_keys], fill=False)
    for k in keep:
        plan.names[k] = state_names([(k, dims[k], _names(feats[k]))], fill=False)
    return plan


def table_arrays(tbl: pa.Table, feats: dict, plan: Plan, where: str, root: Path) -> dict[str, np.ndarray]:
    """The planned columns of a frames table as numpy arrays (one row per frame; images decoded)."""
    out: dict[str, np.ndarray] = {}
    for k in plan.columns:
        if k not in tbl.column_names:
            raise MimeticError(f"{where}: column {k!r} (a feature in meta/info.json) is missing")
        if feats[k]["dtype"] == "string":
            col = tbl.column(k)
            if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
                raise MimeticError(f"{where}: column {k!r} should hold strings, found {col.type}")
            out[k] = np.asarray(col.to_pylist(), dtype=object)
        elif feats[k]["dtype"] == "image":
            out[k] = decode_images(tbl.column(k).to_pylist(), f"{where}: column {k!r}", root)
        else:
            out[k] = arrow_to_numpy(tbl.column(k), f"{where}: column {k!r}", feats[k]["shape"])
    return out


def make_episode(arrays: dict[str, np.ndarray], sl: slice, plan: Plan, where: str, tasks: list[str],
                 terminated: bool | None = None, videos: dict[str, np.ndarray] | None = None) -> Episode:
    """One episode from its rows of the planned columns; `videos` holds the frames of its video cameras."""
    a = {k: v[sl] for k, v in arrays.items()}
    T = len(a[plan.action_key])
    if T == 0:
        raise MimeticError(f"{where}: empty episode (0 frames)")
    if "frame_index" in a and not np.array_equal(a["frame_index"].reshape(T), np.arange(T)):
        raise MimeticError(f"{where}: frame_index is not 0..{T - 1} (frames missing, repeated or out of order)")
    obs = {STATE: concat_obs(as_matrix(a[k], f"{where}: {k}", T) for k in plan.obs_keys)} if plan.obs_keys else {}
    obs.update({k: as_matrix(a[k], f"{where}: {k}", T) for k in plan.keep})
    for src, dst in plan.cameras.items():
        obs[dst] = (videos or {})[src] if src in plan.videos else a[src]
    act = as_matrix(a[plan.action_key], f"{where}: {plan.action_key}", T)
    rew = as_vector(a["next.reward"], f"{where}: next.reward", T).astype(np.float32) if "next.reward" in a else np.zeros(T, np.float32)
    suc = as_vector(a["next.success"], f"{where}: next.success", T).astype(bool) if "next.success" in a else np.zeros(T, bool)
    if terminated is None:
        terminated = bool(as_vector(a["next.done"], f"{where}: next.done", T)[-1]) if "next.done" in a else False
    task = ""
    if tasks and "task_index" in a:
        ti = int(np.asarray(a["task_index"]).reshape(T)[0])
        if not 0 <= ti < len(tasks):
            raise MimeticError(f"{where}: task_index {ti} is not in the task list (0..{len(tasks) - 1})")
        task = tasks[ti]
    extras = {k: a[k] for k in plan.extras}
    return Episode(observations=obs, actions=act, rewards=rew, successes=suc, terminated=terminated,
                   task=task, extras=extras)


def meta_dict(fmt: str, path: Path, info: dict, plan: Plan) -> dict:
    fps = info.get("fps")
    mimetic = info.get("mimetic") if isinstance(info.get("mimetic"), dict) else {}
    return {
        "format": fmt,
        "source": str(path),
        "fps": int(fps) if isinstance(fps, (int, float)) and fps > 0 else None,
        "robot_type": info.get("robot_type"),
        "obs_keys": list(plan.obs_keys),
        "kept": list(plan.keep),
        "cameras": dict(plan.cameras),
        "action_key": plan.action_key,
        "extras": list(plan.extras),
        "skipped": list(plan.skipped),
        "feature_names": {k: v for k, v in plan.names.items() if v is not None},
        "env": mimetic.get("env"),
        "env_options": mimetic.get("env_options"),
    }


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise MimeticError(f"{path} not found") from None
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError, KeyError) as e:
        raise MimeticError(f"{path} is not a readable parquet file with columns {columns}: {e}") from None


def _schema_names(path: Path) -> list[str]:
    try:
        return pq.read_schema(path).names
    except FileNotFoundError:
        raise MimeticError(f"{path} not found") from None
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise MimeticError(f"{path} is not a readable parquet file: {e}") from None


def _tasks_v3(path: Path) -> list[str]:
    p = path / "meta/tasks.parquet"
    if not p.exists():
        return []
    t = _read_parquet(p)
    name_col = "task" if "task" in t.column_names else None
    if name_col is None and t.schema.metadata and b"pandas" in t.schema.metadata:
        idx = json.loads(t.schema.metadata[b"pandas"]).get("index_columns") or []
        name_col = next((c for c in idx if isinstance(c, str) and c in t.column_names), None)
    if name_col is None or "task_index" not in t.column_names:
        raise MimeticError(f"{p}: expected columns 'task' (or a pandas index of task strings) and 'task_index'")
    names = t.column(name_col).to_pylist()
    idx = arrow_to_numpy(t.column("task_index"), f"{p}: task_index").astype(np.int64)
    tasks = [""] * (int(idx.max()) + 1 if len(idx) else 0)
    for i, n in zip(idx, names):
        tasks[int(i)] = str(n)
    return tasks


# ---------------------------------------------------------------------- v3 reader
def read(path, **options) -> tuple[list[Episode], dict]:
    path = Path(path)
    options = check_options(NAME, options, OPTIONS)
    info, feats = read_info(path)
    version = info.get("codebase_version")
    if not (isinstance(version, str) and version.startswith("v3")):
        raise MimeticError(f"{path / 'meta/info.json'}: codebase_version is {version!r}, expected 'v3.0' (format 'lerobot')")
    plan = plan_columns(feats, str(path), options)
    tasks = _tasks_v3(path)

    # episodes metadata: which frames (global index range) each episode owns
    ep_files = sorted((path / "meta/episodes").glob("*/*.parquet"))
    if not ep_files:
        raise MimeticError(f"{path}/meta/episodes: no episode parquet files")
    need = ["episode_index", "dataset_from_index", "dataset_to_index"]
    files = ["data/chunk_index", "data/file_index"]
    video_cols = [f"videos/{k}/{c}" for k in plan.videos for c in VIDEO_COLUMNS]
    parts: dict[str, list] = {k: [] for k in need + files + video_cols + ["mimetic/terminated"]}
    for p in ep_files:
        names = _schema_names(p)
        for k in need + video_cols:
            if k not in names:
                raise MimeticError(f"{p}: column {k!r} is missing")
        cols = need + video_cols + [k for k in files + ["mimetic/terminated"] if k in names]
        t = _read_parquet(p, cols)
        for k in need + files + video_cols:
            parts[k].append(arrow_to_numpy(t.column(k), f"{p}: {k}").astype(np.float64 if k.endswith("timestamp") else np.int64)
                            if k in cols else np.full(t.num_rows, -1, np.int64))
        parts["mimetic/terminated"].append(
            arrow_to_numpy(t.column("mimetic/terminated"), f"{p}: mimetic/terminated").astype(np.int8)
            if "mimetic/terminated" in cols else np.full(t.num_rows, -1, np.int8))
    em = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.argsort(em["episode_index"], kind="stable")
    em = {k: v[order] for k, v in em.items()}
    n_ep = info.get("total_episodes")
    if isinstance(n_ep, int):  # rows past the committed count are leftovers of an interrupted write
        keep = em["episode_index"] < n_ep
        em = {k: v[keep] for k, v in em.items()}
    if len(np.unique(em["episode_index"])) != len(em["episode_index"]):
        raise MimeticError(f"{path}/meta/episodes: an episode_index appears twice")
    if not len(em["episode_index"]):
        raise MimeticError(f"{path}: the dataset has no episodes")

    # frames: the files the episodes point at (others may be leftovers of an interrupted write),
    # or every data/*/*.parquet (as LeRobot reads them) where the episodes do not say
    data_path = info.get("data_path")
    if isinstance(data_path, str) and np.all(em["data/file_index"] >= 0) and np.all(em["data/chunk_index"] >= 0):
        try:
            data_files = sorted({path / data_path.format(chunk_index=int(c), file_index=int(f))
                                 for c, f in zip(em["data/chunk_index"], em["data/file_index"])})
        except (KeyError, IndexError, ValueError) as err:
            raise MimeticError(f"{path / 'meta/info.json'}: data_path {data_path!r} cannot be formatted: {err}") from None
    else:
        data_files = sorted((path / "data").glob("*/*.parquet"))
    if not data_files:
        raise MimeticError(f"{path}/data: no parquet files")
    tables = []
    for p in data_files:
        names = _schema_names(p)
        for k in plan.columns + ["index"]:
            if k not in names:
                raise MimeticError(f"{p}: column {k!r} is missing")
        tables.append(_read_parquet(p, list(dict.fromkeys(plan.columns + ["index"]))))
    try:
        tbl = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise MimeticError(f"{path}/data: data files disagree in their columns: {e}") from None
    arrays = table_arrays(tbl, feats, plan, f"{path}/data", path)
    index = arrow_to_numpy(tbl.column("index"), f"{path}/data: index").astype(np.int64).reshape(-1)
    order = np.argsort(index, kind="stable")
    index = index[order]
    if len(index) > 1 and np.any(index[1:] == index[:-1]):
        raise MimeticError(f"{path}/data: the global frame index repeats")
    arrays = {k: v[order] for k, v in arrays.items()}

    episodes = []
    for i, (e, lo, hi, term) in enumerate(zip(em["episode_index"], em["dataset_from_index"], em["dataset_to_index"],
                                              em["mimetic/terminated"])):
        where = f"{path}: episode {int(e)}"
        s, t = np.searchsorted(index, [lo, hi])
        if hi <= lo or t - s != hi - lo:
            raise MimeticError(f"{where}: meta/episodes says frames {int(lo)}..{int(hi) - 1} but data/ holds {int(t - s)} of them")
        if "episode_index" in arrays and np.any(arrays["episode_index"][s:t].reshape(-1) != e):
            raise MimeticError(f"{where}: episode_index column disagrees with meta/episodes frame ranges")
        row = {k: em[k][i] for k in video_cols}
        videos = {k: _episode_video(path, info, k, row, int(hi - lo), where) for k in plan.videos}
        episodes.append(make_episode(arrays, slice(int(s), int(t)), plan, where, tasks,
                                     terminated=None if term < 0 else bool(term), videos=videos))
    return episodes, meta_dict(NAME, path, info, plan)


def _episode_video(path: Path, info: dict, key: str, row: dict, n: int, where: str) -> np.ndarray:
    """The n frames of video feature `key` that one episode owns: its file and from_timestamp in meta/episodes."""
    template, fps = info.get("video_path"), info.get("fps")
    if not isinstance(template, str) or not isinstance(fps, (int, float)) or fps <= 0:
        raise MimeticError(f"{path / 'meta/info.json'}: video feature {key!r} needs a 'video_path' template and a positive 'fps'")
    chunk, file, t0, t1 = (row[f"videos/{key}/{c}"] for c in VIDEO_COLUMNS)
    try:
        mp4 = path / template.format(video_key=key, chunk_index=int(chunk), file_index=int(file))
    except (KeyError, IndexError, ValueError) as err:
        raise MimeticError(f"{path / 'meta/info.json'}: video_path {template!r} cannot be formatted: {err}") from None
    if abs((t1 - t0) * fps - n) > 0.5:
        raise MimeticError(f"{where}: {key} in meta/episodes spans {t0:.3f}..{t1:.3f} s of {mp4} ({(t1 - t0) * fps:.1f} frames "
                           f"at {fps} fps) but data/ holds {n} rows for the episode")
    return video_frames(mp4, int(round(t0 * fps)), n, f"{where}: {key}")


# ---------------------------------------------------------------------- export
def write(episodes: list[Episode], dst, *, fps: int, env: str | None = None, env_options: dict | None = None,
          robot_type: str | None = None, feature_names: dict | None = None, image_storage: str = "video",
          video_codec: str = "av1"):
    """Write episodes as a LeRobot v3.0 dataset at `dst` (which must not exist), atomically.

    On top of mimetic's own layout: multi-dimensional extras are flattened to vectors (LeRobot
    would expect Array2D columns), and stats.json covers every numeric feature, as LeRobot's does.
    Cameras travel as MP4 videos (`image_storage="video"`, LeRobot's default) or PNG image columns.
    """
    from mimetic.data.dataset import Dataset, feature_stats

    dst = Path(dst)
    if dst.exists():
        raise MimeticError(f"cannot export to {dst}: it already exists")
    eps = [ep.replace(extras={k: (v.reshape(len(v), -1) if v.ndim > 2 else v) for k, v in ep.extras.items()})
           for ep in episodes]
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    try:
        ds = Dataset.create(tmp / "ds", eps, env=env, env_options=env_options, fps=fps, robot_type=robot_type,
                            feature_names=feature_names, image_storage=image_storage, video_codec=video_codec)
        stats = ds.stats()
        task_ids: dict[str, int] = {}  # task_index as Dataset.append assigns it: order of first appearance
        task_index = np.concatenate([np.full(len(ep), task_ids.setdefault(ep.task, len(task_ids))) for ep in eps])
        cols = {"timestamp": (ds.frame_index / ds.fps).astype(np.float32), "frame_index": ds.frame_index,
                "episode_index": ds.episode_index, "index": np.arange(ds.num_frames), "task_index": task_index,
                "next.done": ds.dones, "next.success": ds.successes}
        for k in ds.extra_keys:
            v = ds.extra(k)
            if v.dtype.kind in "biuf":
                cols[k] = v
        for k, v in cols.items():
            stats.setdefault(k, feature_stats(np.asarray(v).reshape(len(v), -1)))
        atomic_write_json(ds.root / "meta/stats.json", stats)
        (tmp / "ds").rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Dataset.load(dst)
