"""diffusion_policy ReplayBuffer stores (zarr, usually the zarr-2 on-disk format).

```
data/<key>          first dimension = total steps (state (N, 5), action (N, 2), img (N, 96, 96, 3) ...)
meta/episode_ends   cumulative exclusive ends: episode i spans [ends[i-1], ends[i])
```
A folder (`x.zarr`) or a zip of one (`x.zarr.zip`). observation.state: `data/state`, or the
vector arrays `obs_keys` names, concatenated in that order (each flattened per step, e.g. keypoint
(N, 9, 2) -> 18 numbers), with per-dimension names from the keys (`state_0`.., `keypoint_0`..);
actions `data/action` (or `action_key`); rewards `data/reward` where present.

Cameras: image arrays (uint8 with 2+ dims per step, or (H, W, C) / (C, H, W) with C = 1 or 3 of
any dtype) become `observation.images.<key>`, the key losing an `_image`/`_img`/`_rgb` suffix
(`img` -> `observation.images.img`, `camera0_rgb` -> `observation.images.camera0`). Frames are made
uint8 (H, W, 3) by `_common.to_frames`: channels-first arrays are transposed, floats in [0, 1]
become round(255 x), grey becomes RGB; anything else is an error naming the array. All cameras
are converted unless `obs_keys` names some (then those) or `skip_images` is set (then none).
The store has no fps and no success flags.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from mimetic.data.episode import Episode
from mimetic.data.formats._common import as_matrix, as_vector, check_options, concat_obs, is_image, parse_keys
from mimetic.data.formats._common import select, state_names, to_frames
from mimetic.errors import MimeticError
from mimetic.features import STATE

NAME = "zarr"
OPTIONS = ("obs_keys", "action_key", "skip_images")


def detect(path) -> bool:
    path = Path(path)
    if path.is_dir():
        has_root = (path / ".zgroup").is_file() or (path / "zarr.json").is_file()
        return has_root and (path / "data").is_dir() and (path / "meta").is_dir()
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
        return bool({"meta/episode_ends/.zarray", "meta/episode_ends/zarr.json"} & names)
    return False


def _open(path: Path):
    try:
        import zarr
    except ImportError:  # pragma: no cover - zarr is a dependency
        raise MimeticError("reading zarr replay buffers needs zarr: pip install zarr") from None
    try:
        if path.is_file():
            store = zarr.storage.ZipStore(path, mode="r")
            return zarr.open_group(store, mode="r")
        return zarr.open_group(str(path), mode="r")
    except Exception as e:  # zarr raises many types for a store it cannot read
        raise MimeticError(f"{path} is not a readable zarr store: {type(e).__name__}: {e}") from None


def _get(group, key: str, where: str):
    import zarr

    try:
        node = group[key]
    except KeyError:
        node = None
    if node is None:
        raise MimeticError(f"{where}: {key} is missing")
    if not isinstance(node, zarr.Array):
        raise MimeticError(f"{where}: {key} is a group, expected an array")
    return node


def read(path, **options) -> tuple[list[Episode], dict]:
    path = Path(path)
    options = check_options(NAME, options, OPTIONS)
    obs_keys_opt = parse_keys(options.get("obs_keys"))
    action_key = options.get("action_key") or "action"
    root = _open(path)
    import zarr

    where = str(path)
    try:
        data = root["data"]
    except KeyError:
        raise MimeticError(f"{where}: group data/ is missing (not a diffusion_policy replay buffer?)") from None
    if not isinstance(data, zarr.Group):
        raise MimeticError(f"{where}: data is an array, expected a group")
    arrays = {k: v for k, v in data.arrays()}
    ends = np.asarray(_get(root, "meta/episode_ends", where)[...])
    if ends.dtype.kind not in "iu" or ends.ndim != 1:
        raise MimeticError(f"{where}: meta/episode_ends must be a 1-d integer array, found {ends.dtype} {ends.shape}")
    ends = ends.astype(np.int64)
    if len(ends) == 0:
        raise MimeticError(f"{where}: meta/episode_ends is empty (no episodes)")
    starts = np.concatenate([[0], ends[:-1]])
    if np.any(ends <= starts):
        raise MimeticError(f"{where}: meta/episode_ends must be strictly increasing and positive, found {ends[:10].tolist()}")
    n = int(ends[-1])

    images = sorted(k for k, a in arrays.items() if is_image(a.shape[1:], a.dtype))
    for k in obs_keys_opt or []:
        if k not in arrays:
            raise MimeticError(f"{where}: data/{k} is missing (arrays: {sorted(arrays)})")
    sel = select([k for k in arrays if k not in images], images, options, where,
                 default_state=["state"] if "state" in arrays else [])
    keys = sel.state
    if not keys:
        raise MimeticError(f"{where}: data/state is missing; name the observation arrays with obs_keys (arrays: {sorted(arrays)})")
    if action_key not in arrays:
        raise MimeticError(f"{where}: data/{action_key} is missing (arrays: {sorted(arrays)})")

    def load(k: str) -> np.ndarray:
        a = arrays[k]
        if a.shape[0] != n:
            raise MimeticError(f"{where}: data/{k} has {a.shape[0]} steps but meta/episode_ends ends at {n}")
        try:
            return np.asarray(a[...])
        except Exception as e:
            raise MimeticError(f"{where}: data/{k} cannot be read: {type(e).__name__}: {e}") from None

    parts = [as_matrix(load(k), f"{where}: data/{k}") for k in keys]
    obs = {STATE: concat_obs(parts)}
    obs.update({dst: to_frames(load(k), f"{where}: data/{k}") for k, dst in sel.cameras.items()})
    act = as_matrix(load(action_key), f"{where}: data/{action_key}")
    rew = as_vector(load("reward"), f"{where}: data/reward").astype(np.float32) if "reward" in arrays else np.zeros(n, np.float32)
    episodes = [
        Episode(observations={k: v[s:e] for k, v in obs.items()}, actions=act[s:e], rewards=rew[s:e],
                successes=np.zeros(e - s, bool))
        for s, e in zip(starts.tolist(), ends.tolist())
    ]
    meta = {
        "format": NAME,
        "source": str(path),
        "fps": None,
        "obs_keys": list(keys),
        "action_key": action_key,
        "cameras": dict(sel.cameras),
        "skipped": list(sel.skipped),
        "feature_names": {STATE: state_names([(k, p.shape[1], None) for k, p in zip(keys, parts)])},
        "env": None,
        "env_options": None,
    }
    return episodes, meta
