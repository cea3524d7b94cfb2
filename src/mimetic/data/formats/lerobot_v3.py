"""LeRobot datasets, codebase v3.0 (mimetic's own layout is one of them): read, and export for LeRobot.

Reading someone else's v3 dataset:
- observations: `observation.state` if the dataset has it, else every numeric `observation.*`
  feature in sorted order; `obs_keys` names the features to concatenate instead (in that order).
- actions: `action` (or `action_key`); rewards `next.reward`, successes `next.success` where
  present (zeros/False otherwise); `terminated` from mimetic's `mimetic/terminated` episode column,
  else the episode's last `next.done`.
- other numeric, bool and string features travel as Episode extras; image and video features are
  not converted yet (see `_common.report_images` for the rule).

Writing (`write`, used by `export_lerobot`) rewrites a mimetic dataset into a fresh folder with only
its committed rows, stats for every numeric feature, and multi-dimensional extras flattened, so
that LeRobot's `LeRobotDataset` / `datasets.Dataset.from_parquet(features=...)` accept it.
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
    parse_keys,
    report_images,
)
from mimetic.data.io import atomic_write_json, read_json
from mimetic.errors import MimeticError

NAME = "lerobot"
OPTIONS = ("obs_keys", "action_key", "skip_images")
INDEX = ("timestamp", "frame_index", "episode_index", "index", "task_index")
NEXT = ("next.reward", "next.done", "next.success")
VISUAL = ("image", "video", "audio")
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

    obs_keys: list[str]
    action_key: str
    extras: dict[str, dict] = field(default_factory=dict)  # key -> feature
    skipped: list[str] = field(default_factory=list)
    has: set[str] = field(default_factory=set)  # present optional columns (next.*, index columns)

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys([*self.obs_keys, self.action_key, *sorted(self.has), *self.extras]))


def read_info(path: Path) -> tuple[dict, dict]:
    where = path / "meta/info.json"
    info = read_json(where, "LeRobot info")
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
        raise MimeticError(f"{where}: expected a JSON object with a 'features' object")
    for k, ft in info["features"].items():
        if not isinstance(ft, dict) or "dtype" not in ft or not isinstance(ft.get("shape"), (list, tuple)):
            raise MimeticError(f"{where}: feature {k!r} needs 'dtype' and 'shape'")
    return info, info["features"]


def plan_columns(feats: dict, where: str, options: dict) -> Plan:
    obs_keys = parse_keys(options.get("obs_keys"))
    action_key = options.get("action_key") or "action"
    visual = sorted(k for k, f in feats.items() if f["dtype"] in VISUAL)
    numeric = {k for k, f in feats.items() if f["dtype"] not in VISUAL and f["dtype"] != "string"}
    if obs_keys:
        for k in obs_keys:
            if k not in feats:
                raise MimeticError(f"{where}: obs key {k!r} is not a feature (features: {sorted(feats)})")
            if k in visual:
                raise MimeticError(f"{where}: obs key {k!r} is an {feats[k]['dtype']} feature; images and videos are not supported yet")
            if k not in numeric:
                raise MimeticError(f"{where}: obs key {k!r} has dtype {feats[k]['dtype']!r}, expected numbers")
    elif "observation.state" in feats:
        obs_keys = ["observation.state"]
    else:
        obs_keys = sorted(k for k in numeric if k.startswith("observation."))
        if not obs_keys:
            raise MimeticError(f"{where}: no numeric observation feature (observation.state or observation.*); name them with obs_keys")
    if action_key not in feats:
        raise MimeticError(f"{where}: action feature {action_key!r} is missing (features: {sorted(feats)})")
    if action_key not in numeric:
        raise MimeticError(f"{where}: action feature {action_key!r} has dtype {feats[action_key]['dtype']!r}, expected numbers")
    skipped = report_images(visual, where, obs_keys_given=bool(parse_keys(options.get("obs_keys"))),
                            skip_images=bool(options.get("skip_images")))
    plan = Plan(obs_keys=obs_keys, action_key=action_key, skipped=skipped)
    plan.has = {k for k in (*INDEX, *NEXT) if k in feats and k not in obs_keys and k != action_key}
    for k, f in feats.items():
        if k in obs_keys or k == action_key or k in plan.has or k in visual:
            continue
        if f["dtype"] in EXTRA_DTYPES:
            plan.extras[k] = f
        else:
            plan.skipped.append(k)
    return plan


def table_arrays(tbl: pa.Table, feats: dict, plan: Plan, where: str) -> dict[str, np.ndarray]:
    """The planned columns of a frames table as numpy arrays (one row per frame)."""
    out: dict[str, np.ndarray] = {}
    for k in plan.columns:
        if k not in tbl.column_names:
            raise MimeticError(f"{where}: column {k!r} (a feature in meta/info.json) is missing")
        if feats[k]["dtype"] == "string":
            col = tbl.column(k)
            if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
                raise MimeticError(f"{where}: column {k!r} should hold strings, found {col.type}")
            out[k] = np.asarray(col.to_pylist(), dtype=object)
        else:
            out[k] = arrow_to_numpy(tbl.column(k), f"{where}: column {k!r}", feats[k]["shape"])
    return out


def make_episode(arrays: dict[str, np.ndarray], sl: slice, plan: Plan, where: str, tasks: list[str],
                 terminated: bool | None = None) -> Episode:
    a = {k: v[sl] for k, v in arrays.items()}
    T = len(a[plan.action_key])
    if T == 0:
        raise MimeticError(f"{where}: empty episode (0 frames)")
    if "frame_index" in a and not np.array_equal(a["frame_index"].reshape(T), np.arange(T)):
        raise MimeticError(f"{where}: frame_index is not 0..{T - 1} (frames missing, repeated or out of order)")
    obs = concat_obs(as_matrix(a[k], f"{where}: {k}", T) for k in plan.obs_keys)
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
    return {
        "format": fmt,
        "source": str(path),
        "fps": int(fps) if isinstance(fps, (int, float)) and fps > 0 else None,
        "robot_type": info.get("robot_type"),
        "obs_keys": list(plan.obs_keys),
        "action_key": plan.action_key,
        "extras": list(plan.extras),
        "skipped": list(plan.skipped),
        "env": (info.get("mimetic") or {}).get("env") if isinstance(info.get("mimetic"), dict) else None,
        "env_options": (info.get("mimetic") or {}).get("env_options") if isinstance(info.get("mimetic"), dict) else None,
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
    parts: dict[str, list] = {k: [] for k in need + files + ["mimetic/terminated"]}
    for p in ep_files:
        names = _schema_names(p)
        for k in need:
            if k not in names:
                raise MimeticError(f"{p}: column {k!r} is missing")
        cols = need + [k for k in files + ["mimetic/terminated"] if k in names]
        t = _read_parquet(p, cols)
        for k in need + files:
            parts[k].append(arrow_to_numpy(t.column(k), f"{p}: {k}").astype(np.int64)
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
    arrays = table_arrays(tbl, feats, plan, f"{path}/data")
    index = arrow_to_numpy(tbl.column("index"), f"{path}/data: index").astype(np.int64).reshape(-1)
    order = np.argsort(index, kind="stable")
    index = index[order]
    if len(index) > 1 and np.any(index[1:] == index[:-1]):
        raise MimeticError(f"{path}/data: the global frame index repeats")
    arrays = {k: v[order] for k, v in arrays.items()}

    episodes = []
    for e, lo, hi, term in zip(em["episode_index"], em["dataset_from_index"], em["dataset_to_index"], em["mimetic/terminated"]):
        where = f"{path}: episode {int(e)}"
        s, t = np.searchsorted(index, [lo, hi])
        if hi <= lo or t - s != hi - lo:
            raise MimeticError(f"{where}: meta/episodes says frames {int(lo)}..{int(hi) - 1} but data/ holds {int(t - s)} of them")
        if "episode_index" in arrays and np.any(arrays["episode_index"][s:t].reshape(-1) != e):
            raise MimeticError(f"{where}: episode_index column disagrees with meta/episodes frame ranges")
        episodes.append(make_episode(arrays, slice(int(s), int(t)), plan, where, tasks,
                                     terminated=None if term < 0 else bool(term)))
    return episodes, meta_dict(NAME, path, info, plan)


# ---------------------------------------------------------------------- export
def write(episodes: list[Episode], dst, *, fps: int, env: str | None = None, env_options: dict | None = None,
          robot_type: str | None = None):
    """Write episodes as a LeRobot v3.0 dataset at `dst` (which must not exist), atomically.

    On top of mimetic's own layout: multi-dimensional extras are flattened to vectors (LeRobot
    would expect Array2D columns), and stats.json covers every numeric feature, as LeRobot's does.
    """
    from mimetic.data.dataset import Dataset, feature_stats

    dst = Path(dst)
    if dst.exists():
        raise MimeticError(f"cannot export to {dst}: it already exists")
    eps = []
    for ep in episodes:
        extras = {k: (v.reshape(len(v), -1) if v.ndim > 2 else v) for k, v in ep.extras.items()}
        eps.append(Episode(observations=ep.observations, actions=ep.actions, rewards=ep.rewards,
                           successes=ep.successes, terminated=ep.terminated, task=ep.task, extras=extras))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    try:
        ds = Dataset.create(tmp / "ds", eps, env=env, env_options=env_options, fps=fps, robot_type=robot_type)
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
