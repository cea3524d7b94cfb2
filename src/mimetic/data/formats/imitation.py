"""`imitation` (HumanCompatibleAI) trajectories saved with Hugging Face `datasets` (Arrow).

`imitation.data.serialize.save` calls `datasets.Dataset.save_to_disk`: a folder with
`state.json`, `dataset_info.json` and `data-XXXXX-of-YYYYY.arrow` (Arrow IPC stream), one row per
trajectory with `obs` (T+1 observations), `acts` (T), `infos` (T jsonpickle strings), `terminal`
(bool) and, for trajectories with rewards, `rews` (T). Read here with pyarrow alone.

- observations: obs[:T]; obs[T] (the observation after the last action) becomes
  `Episode.final_observation` (mimetic datasets do not store it);
- discrete actions/observations (one integer per step) become one float column;
- successes from `infos[t]["is_success"]` (or `"success"`) where every info of the trajectory
  is plain JSON holding it; else False. Infos are parsed with `json`, never unpickled;
- `.pkl` / `.npz` saves (older imitation versions) are pickles and are refused.
Dict observations are not supported yet.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from mimetic.data.episode import Episode
from mimetic.data.formats._common import arrow_to_numpy, as_matrix, as_vector, check_finite, check_options
from mimetic.errors import MimeticError

NAME = "imitation"
OPTIONS: tuple[str, ...] = ()


def _arrow_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    state = path / "state.json"
    if state.is_file():
        try:
            files = [path / f["filename"] for f in json.loads(state.read_text())["_data_files"]]
        except (ValueError, KeyError, TypeError):
            raise MimeticError(f"{state}: expected a datasets state.json with '_data_files'") from None
        return files
    return sorted(path.glob("data-*.arrow"))


def detect(path) -> bool:
    path = Path(path)
    if path.is_file():
        return path.suffix == ".arrow"
    if (path / "dataset_dict.json").is_file():
        return True  # read() explains that a split folder is needed
    return (path / "state.json").is_file() and (path / "dataset_info.json").is_file() and bool(_arrow_files(path))


def _read_arrow(p: Path) -> pa.Table:
    if not p.is_file():
        raise MimeticError(f"{p} not found")
    errors = []
    for opener in (pa.ipc.open_stream, pa.ipc.open_file):
        try:
            with pa.memory_map(str(p)) as src:
                return opener(src).read_all()
        except (pa.ArrowInvalid, OSError) as e:
            errors.append(str(e))
    raise MimeticError(f"{p} is not an Arrow IPC file: {errors[-1]}")


def _success(infos: list, T: int) -> np.ndarray:
    """infos[t]["is_success"] (or "success") where every info is plain JSON holding it; else False."""
    out = np.zeros(T, bool)
    if infos is None or len(infos) != T:
        return out
    for t, s in enumerate(infos):
        try:
            d = json.loads(s) if isinstance(s, str) else None
        except ValueError:
            return np.zeros(T, bool)
        if not isinstance(d, dict):
            return np.zeros(T, bool)
        v = d.get("is_success", d.get("success"))
        if not isinstance(v, (bool, int, float)):
            return np.zeros(T, bool)
        out[t] = bool(v)
    return out


def _row_array(col: pa.ChunkedArray, i: int, where: str) -> np.ndarray:
    scalar = col[i]
    if not scalar.is_valid:
        raise MimeticError(f"{where}: is missing (null)")
    values = scalar.values
    if values is None:
        raise MimeticError(f"{where}: expected a list per trajectory, found {col.type}")
    return arrow_to_numpy(values, where)


def read(path, **options) -> tuple[list[Episode], dict]:
    path = Path(path)
    check_options(NAME, options, OPTIONS)
    if path.is_dir() and (path / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise MimeticError(f"{path} is a datasets DatasetDict; convert one split folder, e.g. {path / (splits[0] if splits else 'train')}")
    files = _arrow_files(path)
    if not files:
        raise MimeticError(f"{path}: no Arrow data files (data-*.arrow) found")
    tables = [_read_arrow(p) for p in files]
    episodes = []
    n_traj = 0
    for p, tbl in zip(files, tables):
        for k in ("obs", "acts"):
            if k not in tbl.column_names:
                raise MimeticError(f"{p}: column {k!r} is missing (columns: {tbl.column_names})")
        if pa.types.is_struct(tbl.column("obs").type) or (
            hasattr(tbl.column("obs").type, "value_type") and pa.types.is_struct(tbl.column("obs").type.value_type)
        ):
            raise MimeticError(f"{p}: column 'obs' holds dict observations, which are not supported yet")
        term = arrow_to_numpy(tbl.column("terminal"), f"{p}: column 'terminal'") if "terminal" in tbl.column_names else None
        for i in range(tbl.num_rows):
            where = f"{p}: trajectory {i}"
            obs = _row_array(tbl.column("obs"), i, f"{where} obs")
            acts = _row_array(tbl.column("acts"), i, f"{where} acts")
            T = len(acts)
            if T == 0:
                raise MimeticError(f"{where}: empty trajectory (0 actions)")
            if len(obs) != T + 1:
                raise MimeticError(f"{where}: obs has {len(obs)} rows, expected len(acts) + 1 = {T + 1}")
            obs = as_matrix(obs, f"{where} obs")
            act = as_matrix(acts, f"{where} acts")
            rew = np.zeros(T, np.float32)
            if "rews" in tbl.column_names:
                r = _row_array(tbl.column("rews"), i, f"{where} rews")
                rew = as_vector(r, f"{where} rews", T).astype(np.float32)
                check_finite(rew, f"{where} rews")
            infos = None
            if "infos" in tbl.column_names and tbl.column("infos")[i].is_valid:
                infos = tbl.column("infos")[i].as_py()
            episodes.append(Episode(observations=obs[:T], actions=act, rewards=rew, successes=_success(infos, T),
                                    terminated=bool(term[i]) if term is not None else False,
                                    final_observation=obs[T]))
            n_traj += 1
    meta = {"format": NAME, "source": str(path), "fps": None, "skipped": [], "env": None, "env_options": None}
    return episodes, meta
