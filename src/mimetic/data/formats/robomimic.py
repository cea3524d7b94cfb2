"""robomimic HDF5 files (`data/demo_N/{obs/<key>, actions, rewards, dones}`, `mask/<filter>`).

- demos are read in numeric order of N (`int(key[5:])`); `filter_key` keeps the demos that
  `mask/<filter_key>` names;
- observation.state: the low-dimensional `obs/<key>` arrays concatenated in sorted key order, or
  in the order `obs_keys` gives; multi-dimensional low-dim keys are flattened per step; the state's
  per-dimension names come from the keys (`robot0_eef_pos_0`..`_2`, `object` for a 1-d key);
- rewards from `rewards` (zeros if absent); `terminated` is the last `dones` flag; robomimic has
  no success signal, so successes are False;
- cameras: image observations (uint8 (T, H, W[, C]), or (T, H, W, C) / (T, C, H, W) arrays with
  C = 1 or 3) become `observation.images.<key without _image>` (`agentview_image` ->
  `observation.images.agentview`, `robot0_eye_in_hand_image` -> `observation.images.robot0_eye_in_hand`),
  converted by `_common.to_frames` (float frames in [0, 1] -> uint8, grey -> RGB, channels last);
  all of them unless `obs_keys` names some (then those) or `skip_images` is set (then none);
- fps: `env_args.env_kwargs.control_freq` when the file says it (robosuite), else unknown.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mimetic.data.episode import Episode
from mimetic.data.formats._common import as_matrix, as_vector, check_options, concat_obs, is_image, parse_keys
from mimetic.data.formats._common import select, state_names, to_frames
from mimetic.errors import MimeticError
from mimetic.features import STATE

NAME = "robomimic"
OPTIONS = ("obs_keys", "filter_key", "skip_images")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def detect(path) -> bool:
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    # HDF5 files may also start with a user block of 512, 1024, ... bytes; robomimic's never do.
    return head == HDF5_MAGIC


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise MimeticError("reading robomimic HDF5 files needs h5py: pip install h5py") from None
    return h5py


def _demo_number(key: str, where: str) -> int:
    if not key.startswith("demo_"):
        raise MimeticError(f"{where}/{key}: expected groups named demo_<N> under data/")
    try:
        return int(key[5:])
    except ValueError:
        raise MimeticError(f"{where}/{key}: expected groups named demo_<N> under data/") from None


def _array(f, key: str, where: str) -> np.ndarray:
    h5py = _h5py()
    node = f.get(key)
    if node is None:
        raise MimeticError(f"{where}: {key} is missing")
    if not isinstance(node, h5py.Dataset):
        raise MimeticError(f"{where}: {key} is a group, expected an array")
    return node[()]


def read(path, **options) -> tuple[list[Episode], dict]:
    path = Path(path)
    options = check_options(NAME, options, OPTIONS)
    h5py = _h5py()
    obs_keys = parse_keys(options.get("obs_keys"))
    filter_key = options.get("filter_key")
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise MimeticError(f"{path} is not a readable HDF5 file: {e}") from None
    with f:
        data = f.get("data")
        if not isinstance(data, h5py.Group):
            raise MimeticError(f"{path}: group 'data' is missing (not a robomimic file?)")
        demos = sorted(data.keys(), key=lambda k: _demo_number(k, f"{path}:data"))
        if filter_key:
            mask = f.get(f"mask/{filter_key}")
            if mask is None:
                have = sorted(f["mask"].keys()) if isinstance(f.get("mask"), h5py.Group) else []
                raise MimeticError(f"{path}: mask/{filter_key} is missing (filters in the file: {have})")
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(mask[()]).reshape(-1)]
            unknown = sorted(set(names) - set(demos))
            if unknown:
                raise MimeticError(f"{path}: mask/{filter_key} names demos that data/ lacks: {unknown[:5]}")
            chosen = set(names)
            demos = [d for d in demos if d in chosen]
        if not demos:
            raise MimeticError(f"{path}: no demos to convert" + (f" in mask/{filter_key}" if filter_key else ""))

        env_args: dict = {}
        raw = data.attrs.get("env_args")
        if raw is not None:
            try:
                env_args = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
            except ValueError:
                raise MimeticError(f"{path}: data attribute env_args is not valid JSON") from None
            if not isinstance(env_args, dict):
                env_args = {}

        # which observation keys: decided on the first demo, required in every demo
        first = data[demos[0]]
        where0 = f"{path}:data/{demos[0]}"
        obs_group = first.get("obs")
        if not isinstance(obs_group, h5py.Group):
            raise MimeticError(f"{where0}/obs is missing")
        shapes = {k: (v.shape[1:], v.dtype) for k, v in obs_group.items() if isinstance(v, h5py.Dataset)}
        images = sorted(k for k, (s, d) in shapes.items() if is_image(s, d))
        for k in obs_keys or []:
            if k not in shapes:
                raise MimeticError(f"{where0}/obs/{k} is missing (obs keys: {sorted(shapes)})")
        sel = select([k for k in shapes if k not in images], images, options, str(path),
                     default_state=sorted(k for k in shapes if k not in images))
        keys = sel.state
        names = state_names([(k, int(np.prod(shapes[k][0])), None) for k in keys]) if keys else None

        episodes = []
        for d in demos:
            where = f"{path}:data/{d}"
            g = data[d]
            if not isinstance(g, h5py.Group):
                raise MimeticError(f"{where}: expected a group")
            act = as_matrix(_array(g, "actions", where), f"{where}/actions")
            T = len(act)
            if T == 0:
                raise MimeticError(f"{where}/actions: empty demo (0 steps)")
            obs = {STATE: concat_obs(as_matrix(_array(g, f"obs/{k}", where), f"{where}/obs/{k}", T) for k in keys)} if keys else {}
            for k, dst in sel.cameras.items():
                obs[dst] = to_frames(_array(g, f"obs/{k}", where), f"{where}/obs/{k}", T)
            rew = as_vector(_array(g, "rewards", where), f"{where}/rewards", T).astype(np.float32) if "rewards" in g else np.zeros(T, np.float32)
            dones = as_vector(_array(g, "dones", where), f"{where}/dones", T) if "dones" in g else None
            n = g.attrs.get("num_samples")
            if n is not None and int(n) != T:
                raise MimeticError(f"{where}: attribute num_samples is {int(n)} but actions has {T} steps")
            episodes.append(Episode(observations=obs, actions=act, rewards=rew, successes=np.zeros(T, bool),
                                    terminated=bool(dones[-1]) if dones is not None else False))

    fps = (env_args.get("env_kwargs") or {}).get("control_freq") if isinstance(env_args.get("env_kwargs"), dict) else None
    meta = {
        "format": NAME,
        "source": str(path),
        "fps": int(fps) if isinstance(fps, (int, float)) and fps > 0 else None,
        "obs_keys": list(keys),
        "filter_key": filter_key,
        "demos": demos,
        "cameras": dict(sel.cameras),
        "skipped": list(sel.skipped),
        "feature_names": {STATE: names} if keys else {},
        "source_env": env_args.get("env_name"),
        "env": None,
        "env_options": None,
    }
    return episodes, meta
