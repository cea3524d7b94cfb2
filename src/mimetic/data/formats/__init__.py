"""Import and export of demonstration datasets in the formats people already have.

```
convert(src, dst)                 any supported source -> a new mimetic dataset (LeRobot v3 layout)
export_lerobot(src_dataset, dst)  a mimetic dataset -> a LeRobot v3.0 folder LeRobot's loader accepts
read(src) -> (episodes, meta)     the episodes in memory, without writing anything
detect_format(src) -> name
```

Formats (module, name for `fmt`):

| name         | source                                                     | module       |
|--------------|------------------------------------------------------------|--------------|
| `lerobot`    | LeRobot v3.0 folder (mimetic datasets included)            | lerobot_v3   |
| `lerobot-v2` | LeRobot v2.0 / v2.1 folder (one parquet per episode)       | lerobot_v2   |
| `robomimic`  | robomimic HDF5 file                                        | robomimic    |
| `zarr`       | diffusion_policy ReplayBuffer (zarr 2 folder or .zarr.zip) | replay_zarr  |
| `imitation`  | `imitation` trajectories saved with HF datasets (Arrow)    | imitation    |

Reader options (None, or False for a flag, means "not given"; an option a format does not use is an error):
`obs_keys` ("a,b,c" or a list: observation keys concatenated in that order), `action_key`,
`filter_key` (robomimic `mask/<filter>`), `skip_images` (drop image/video observations with a
warning instead of stopping with an error). Convert options: `fps` (else the source's, else 10),
`env`, `env_options`, `robot_type` (stored in the new dataset's info.json).

Image and video observations are not converted yet: when a source has them and `obs_keys` was
not given, conversion stops with an error naming them unless `skip_images=True`.
Pickled files (.pkl, .npz, ...) are never loaded.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from mimetic.data.episode import Episode
from mimetic.data.formats import imitation, lerobot_v2, lerobot_v3, replay_zarr, robomimic
from mimetic.data.formats._common import PICKLE_SUFFIXES
from mimetic.errors import MimeticError

FORMATS: dict[str, ModuleType] = {
    lerobot_v3.NAME: lerobot_v3,
    lerobot_v2.NAME: lerobot_v2,
    robomimic.NAME: robomimic,
    replay_zarr.NAME: replay_zarr,
    imitation.NAME: imitation,
}
ALIASES = {"lerobot-v3": "lerobot", "mimetic": "lerobot", "lerobot-v2.1": "lerobot-v2", "lerobot-v2.0": "lerobot-v2",
           "hdf5": "robomimic", "diffusion_policy": "zarr", "diffusion-policy": "zarr"}
CONVERT_OPTIONS = ("fps", "env", "env_options", "robot_type")
DEFAULT_FPS = 10

__all__ = ["FORMATS", "convert", "detect_format", "export_lerobot", "read"]


def _refuse_pickle(src: Path) -> None:
    suffixes = [s.lower() for s in src.suffixes]
    if suffixes and suffixes[-1] in PICKLE_SUFFIXES:
        raise MimeticError(
            f"{src}: refusing to load a pickled file ({suffixes[-1]}): pickles can run arbitrary code. "
            "Re-save it in a safe format first (imitation: imitation.data.serialize.save writes HF datasets Arrow)"
        )


def detect_format(src) -> str:
    """The format name of `src`, or a MimeticError saying what was expected."""
    src = Path(src)
    if not src.exists():
        raise MimeticError(f"{src} not found")
    _refuse_pickle(src)
    for name, mod in FORMATS.items():
        if mod.detect(src):
            return name
    raise MimeticError(
        f"{src}: unrecognised dataset format; expected a LeRobot v3/v2 folder (meta/info.json), a robomimic "
        "HDF5 file, a diffusion_policy zarr store (data/, meta/episode_ends) or an imitation HF-datasets folder "
        f"(state.json + data-*.arrow); name it with fmt= ({sorted(FORMATS)})"
    )


def _module(src: Path, fmt: str | None) -> ModuleType:
    if fmt is None:
        return FORMATS[detect_format(src)]
    name = ALIASES.get(fmt.lower(), fmt.lower())
    if name not in FORMATS:
        raise MimeticError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}")
    if not src.exists():
        raise MimeticError(f"{src} not found")
    _refuse_pickle(src)
    return FORMATS[name]


def read(src, *, fmt: str | None = None, **options) -> tuple[list[Episode], dict]:
    """Read all episodes of `src` (auto-detected unless `fmt` is given) and validate them."""
    src = Path(src)
    mod = _module(src, fmt)
    episodes, meta = mod.read(src, **options)
    if not episodes:
        raise MimeticError(f"{src}: no episodes")
    d, a = episodes[0].observations.shape[1], episodes[0].actions.shape[1]
    for i, ep in enumerate(episodes):
        ep.validate(f"{src}: episode {i}")
        if ep.observations.shape[1] != d or ep.actions.shape[1] != a:
            raise MimeticError(f"{src}: episode {i} has {ep.observations.shape[1]} observation / {ep.actions.shape[1]} action "
                               f"dims but episode 0 has {d} / {a}")
    return episodes, meta


def convert(src, dst, *, fmt: str | None = None, **options):
    """Convert `src` into a new mimetic dataset at `dst` and return it (a `mimetic.data.Dataset`).

    `dst` must not exist; it is written atomically, so an error leaves nothing behind.
    """
    from mimetic.data.dataset import Dataset

    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise MimeticError(f"cannot convert into {dst}: it already exists")
    conv = {k: options.pop(k) for k in CONVERT_OPTIONS if k in options}
    episodes, meta = read(src, fmt=fmt, **options)
    fps = conv.get("fps") or meta.get("fps") or DEFAULT_FPS
    if not isinstance(fps, int) or isinstance(fps, bool) or fps <= 0:
        raise MimeticError(f"fps must be a positive integer, got {fps!r}")
    env = conv.get("env") or meta.get("env")
    env_options = conv.get("env_options") or meta.get("env_options") or {}
    robot_type = conv.get("robot_type") or meta.get("robot_type")
    return Dataset.create(dst, episodes, env=env, env_options=env_options, fps=fps, robot_type=robot_type)


def export_lerobot(src, dst):
    """Write the mimetic dataset at `src` as a LeRobot v3.0 dataset at `dst` (which must not exist).

    A rewrite rather than a copy: only committed rows travel (an interrupted append can leave
    uncommitted rows in mimetic's data files, which LeRobot would read), stats cover every numeric
    feature, multi-dimensional extras become flat vectors. Returns the new `Dataset`.
    """
    from mimetic.data.dataset import Dataset

    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise MimeticError(f"cannot export to {dst}: it already exists")
    ds = Dataset.load(src)
    return lerobot_v3.write(list(ds.episodes()), dst, fps=ds.fps, env=ds.env_name, env_options=ds.env_options,
                            robot_type=ds.info.get("robot_type"))
