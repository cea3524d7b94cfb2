"""LeRobot datasets, codebase v2.0 / v2.1: one parquet file per episode.

```
meta/info.json        codebase_version "v2.1", features, fps, chunks_size,
                      data_path "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
meta/episodes.jsonl   {"episode_index": 0, "tasks": [...], "length": 123} per line
meta/tasks.jsonl      {"task_index": 0, "task": "..."} per line
data/chunk-000/episode_000000.parquet
videos/chunk-000/<video_key>/episode_000000.mp4   (info.json video_path; one MP4 per episode and camera)
```
Columns are chosen as for v3 (see `lerobot_v3`): `observation.state` (or `obs_keys`), other
observation vectors under their own names, `action`, `next.reward`, `next.success`, extras.
Cameras: video features are decoded from the episode's own MP4, which must hold exactly as many
frames as the episode's parquet has rows; image features are decoded from the parquet (PNG/JPEG).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mimetic.data.episode import Episode
from mimetic.data.formats._common import check_options, video_frames
from mimetic.data.formats.lerobot_v3 import (
    OPTIONS,
    _read_parquet,
    _schema_names,
    _version,
    make_episode,
    meta_dict,
    plan_columns,
    read_info,
    table_arrays,
)
from mimetic.errors import MimeticError

NAME = "lerobot-v2"
LEGACY_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
LEGACY_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"


def detect(path) -> bool:
    v = _version(Path(path))
    return v is not None and v.startswith("v2")


def _jsonl(path: Path, what: str) -> list[dict]:
    if not path.is_file():
        raise MimeticError(f"{what} {path} not found")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise MimeticError(f"{path}: line {n} is not valid JSON: {e}") from None
        if not isinstance(row, dict):
            raise MimeticError(f"{path}: line {n} is not a JSON object")
        rows.append(row)
    return rows


def read(path, **options) -> tuple[list[Episode], dict]:
    path = Path(path)
    options = check_options(NAME, options, OPTIONS)
    info, feats = read_info(path)
    version = info.get("codebase_version")
    if not (isinstance(version, str) and version.startswith("v2")):
        raise MimeticError(f"{path / 'meta/info.json'}: codebase_version is {version!r}, expected 'v2.0' or 'v2.1' (format 'lerobot-v2')")
    plan = plan_columns(feats, str(path), options)
    data_path = info.get("data_path") or LEGACY_DATA_PATH
    video_path = info.get("video_path") or LEGACY_VIDEO_PATH
    chunks_size = info.get("chunks_size") or 1000
    if not isinstance(chunks_size, int) or chunks_size <= 0:
        raise MimeticError(f"{path / 'meta/info.json'}: chunks_size must be a positive integer")

    tasks: list[str] = []
    if (path / "meta/tasks.jsonl").exists():
        rows = _jsonl(path / "meta/tasks.jsonl", "LeRobot tasks")
        for n, row in enumerate(rows, 1):
            if not isinstance(row.get("task_index"), int) or not isinstance(row.get("task"), str):
                raise MimeticError(f"{path / 'meta/tasks.jsonl'}: line {n} needs an integer 'task_index' and a string 'task'")
        tasks = [""] * (max(r["task_index"] for r in rows) + 1 if rows else 0)
        for r in rows:
            tasks[r["task_index"]] = r["task"]

    ep_rows = _jsonl(path / "meta/episodes.jsonl", "LeRobot episodes")
    for n, row in enumerate(ep_rows, 1):
        if not isinstance(row.get("episode_index"), int):
            raise MimeticError(f"{path / 'meta/episodes.jsonl'}: line {n} needs an integer 'episode_index'")
    ep_rows.sort(key=lambda r: r["episode_index"])
    n_ep = info.get("total_episodes")
    if isinstance(n_ep, int):
        ep_rows = [r for r in ep_rows if r["episode_index"] < n_ep]
    if not ep_rows:
        raise MimeticError(f"{path}: the dataset has no episodes")

    episodes = []
    for row in ep_rows:
        e = row["episode_index"]
        p = path / _format(path, "data_path", data_path, episode_chunk=e // chunks_size, episode_index=e)
        if not p.is_file():
            raise MimeticError(f"{p} not found (episode {e} in meta/episodes.jsonl)")
        names = _schema_names(p)
        for k in plan.columns:
            if k not in names:
                raise MimeticError(f"{p}: column {k!r} is missing")
        tbl = _read_parquet(p, plan.columns)
        arrays = table_arrays(tbl, feats, plan, str(p), path)
        if "frame_index" in arrays:
            order = np.argsort(arrays["frame_index"].reshape(-1), kind="stable")
            arrays = {k: v[order] for k, v in arrays.items()}
        if "episode_index" in arrays and np.any(arrays["episode_index"].reshape(-1) != e):
            raise MimeticError(f"{p}: episode_index column is not {e} on every row")
        length = row.get("length")
        if isinstance(length, int) and length != tbl.num_rows:
            raise MimeticError(f"{p}: holds {tbl.num_rows} frames but meta/episodes.jsonl says length {length}")
        videos = {}
        for k in plan.videos:
            mp4 = path / _format(path, "video_path", video_path, episode_chunk=e // chunks_size, episode_index=e, video_key=k)
            videos[k] = video_frames(mp4, 0, tbl.num_rows, f"{path}: episode {e}: {k} ({tbl.num_rows} rows in {p.name})",
                                     whole=True)
        episodes.append(make_episode(arrays, slice(None), plan, str(p), tasks, videos=videos))
    return episodes, meta_dict(NAME, path, info, plan)


def _format(path: Path, what: str, template: str, **fields) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as err:
        raise MimeticError(f"{path / 'meta/info.json'}: {what} {template!r} cannot be formatted: {err}") from None
