"""Import and export of demonstration datasets in the formats people already have.

```
convert(src, dst)                 any supported source -> a new mimetic dataset (LeRobot v3 layout)
export_lerobot(src_dataset, dst)  a mimetic dataset -> a LeRobot v3.0 folder LeRobot's loader accepts
read(src) -> (episodes, meta)     the episodes in memory, without writing anything
detect_format(src) -> name
```

Formats (module, name for `fmt`):

| name         | source                                                     | cameras                                   | module       |
|--------------|------------------------------------------------------------|-------------------------------------------|--------------|
| `lerobot`    | LeRobot v3.0 folder (mimetic datasets included)            | video features (MP4 per key and file), image features (parquet) | lerobot_v3 |
| `lerobot-v2` | LeRobot v2.0 / v2.1 folder (one parquet per episode)       | video features (MP4 per key and episode), image features | lerobot_v2 |
| `robomimic`  | robomimic HDF5 file                                        | `obs/<name>_image` arrays                 | robomimic    |
| `zarr`       | diffusion_policy ReplayBuffer (zarr 2 folder or .zarr.zip) | `data/<key>` image arrays (`img`)         | replay_zarr  |
| `imitation`  | `imitation` trajectories saved with HF datasets (Arrow)    | none (the format has no cameras)          | imitation    |

Reader options (None, or False for a flag, means "not given"; an option a format does not use is an error):
`obs_keys` ("a,b,c" or a list of source keys), `action_key`, `filter_key` (robomimic
`mask/<filter>`), `skip_images` (convert no camera). Convert options: `fps` (else the source's,
else 10), `env`, `env_options`, `robot_type` (stored in the new dataset's info.json),
`image_storage` ("video", the default, or "png") and `video_codec` ("av1", the default, or "h264"),
passed to `Dataset.create`.

What the observations become (every format but imitation, which has no cameras):

| source                                    | mimetic key                              |
|-------------------------------------------|------------------------------------------|
| the state keys (see each module), or the vector keys `obs_keys` names, concatenated in order | `observation.state` (names per dimension: the source's, else `<key>_<i>`) |
| LeRobot `observation.environment_state` and other `observation.*` vectors, when `obs_keys` names no vector key | kept under their own names |
| LeRobot `observation.images.<cam>` (video or image feature) | the same key |
| LeRobot `observation.<x>` image/video feature (e.g. pusht's `observation.image`) | `observation.images.<x>` |
| robomimic `obs/<name>_image` (uint8 (T, H, W, C)) | `observation.images.<name>` |
| zarr `data/<name>` image array (`img`, `camera0_rgb`) | `observation.images.<name less _image/_img/_rgb>` |

Cameras: every camera of the source by default; the camera keys `obs_keys` names, if it names
any, select the ones kept; `skip_images` keeps none (and the state keys still follow `obs_keys`).
Frames become uint8 (H, W, 3) (`_common.to_frames`: channels-first arrays are transposed, grey is
repeated into RGB, floats in [0, 1] become round(255 x); anything else is an error naming the key).
Videos are decoded by frame index (LeRobot v3: the episode's frames from `from_timestamp` in its
file; v2.1: one MP4 per episode holding exactly its frames); image columns and arrays are exact.
Storing cameras as video re-encodes them (lossy, crf 30); `image_storage="png"` keeps the decoded
frames exactly. A missing or corrupt MP4, a video
whose frame count disagrees with the parquet rows, or a camera whose frame shape changes between
episodes stops the conversion with one line naming the file or key; `dst` is then not created.
Video storage needs even frame sides: odd-sized cameras need `image_storage="png"`.
Pickled files (.pkl, .npz, ...) are never loaded.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from mimetic.data.episode import Episode
from mimetic.data.formats import imitation, lerobot_v2, lerobot_v3, replay_zarr, robomimic
from mimetic.data.formats._common import PICKLE_SUFFIXES
from mimetic.errors import MimeticError
from mimetic.features import is_image_key

FORMATS: dict[str, ModuleType] = {
    lerobot_v3.NAME: lerobot_v3,
    lerobot_v2.NAME: lerobot_v2,
    robomimic.NAME: robomimic,
    replay_zarr.NAME: replay_zarr,
    imitation.NAME: imitation,
}
ALIASES = {"lerobot-v3": "lerobot", "mimetic": "lerobot", "lerobot-v2.1": "lerobot-v2", "lerobot-v2.0": "lerobot-v2",
           "hdf5": "robomimic", "diffusion_policy": "zarr", "diffusion-policy": "zarr"}
CONVERT_OPTIONS = ("fps", "env", "env_options", "robot_type", "image_storage", "video_codec")
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
    first = episodes[0]
    shapes = {k: v.shape[1:] for k, v in first.obs.items()}
    for i, ep in enumerate(episodes):
        ep.validate(f"{src}: episode {i}")
        if sorted(ep.obs) != sorted(shapes):
            raise MimeticError(f"{src}: episode {i} has observations {sorted(ep.obs)} but episode 0 has {sorted(shapes)}")
        for k, v in ep.obs.items():
            if v.shape[1:] != shapes[k]:
                what = "frames" if is_image_key(k) else "vectors"
                raise MimeticError(f"{src}: {k} holds {what} of shape {list(v.shape[1:])} in episode {i} but "
                                   f"{list(shapes[k])} in episode 0 (mixed shapes within one key)")
        if ep.actions.shape[1] != first.actions.shape[1]:
            raise MimeticError(f"{src}: episode {i} has {ep.actions.shape[1]} action dims but episode 0 has {first.actions.shape[1]}")
    return episodes, meta


def _check_video_sizes(episodes: list[Episode], image_storage: str, video_codec: str) -> None:
    """Odd or tiny frames cannot be encoded as video: say so before anything is written."""
    from mimetic.data.video import _ENCODERS, MIN_SIDE

    if image_storage != "video":
        return
    for k, v in episodes[0].obs.items():
        if not is_image_key(k):
            continue
        h, w = v.shape[1:3]
        smallest = MIN_SIDE.get(_ENCODERS.get(video_codec, ""), 2)
        if h % 2 or w % 2 or min(h, w) < smallest:
            raise MimeticError(f"{k}: frames of {w}x{h} cannot be stored as {video_codec} video (it needs even sides of at "
                               f"least {smallest}); use image_storage='png' (--image-storage png)")


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
    storage = _storage(conv)
    _check_video_sizes(episodes, **storage)
    return Dataset.create(dst, episodes, env=env, env_options=env_options, fps=fps, robot_type=robot_type,
                          feature_names=meta.get("feature_names"), **storage)


def _storage(options: dict) -> dict:
    """image_storage / video_codec with their defaults (video, av1: LeRobot's)."""
    return {"image_storage": options.get("image_storage") or "video", "video_codec": options.get("video_codec") or "av1"}


def export_lerobot(src, dst, *, image_storage: str | None = None, video_codec: str | None = None):
    """Write the mimetic dataset at `src` as a LeRobot v3.0 dataset at `dst` (which must not exist).

    A rewrite rather than a copy: only committed rows travel (an interrupted append can leave
    uncommitted rows in mimetic's data files, which LeRobot would read), stats cover every numeric
    feature, multi-dimensional extras become flat vectors. Cameras travel as MP4 videos (AV1 by
    default, as LeRobot stores them) or, with image_storage="png", as PNG image columns; the
    per-dimension names of vector features travel too. Returns the new `Dataset`.
    """
    from mimetic.data.dataset import Dataset

    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise MimeticError(f"cannot export to {dst}: it already exists")
    ds = Dataset.load(src)
    episodes = list(ds.episodes())
    storage = _storage({"image_storage": image_storage, "video_codec": video_codec})
    _check_video_sizes(episodes, **storage)
    names = {k: list(f.names) for k, f in ds.features.items() if f.names is not None}
    return lerobot_v3.write(episodes, dst, fps=ds.fps, env=ds.env_name, env_options=ds.env_options,
                            robot_type=ds.info.get("robot_type"), feature_names=names, **storage)
