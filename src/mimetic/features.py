"""Typed observation features: what every layer calls an observation.

An observation is a dict of named features, named as LeRobot names them:

- `observation.state`              float32 (d,)      the robot's own state (or the whole state vector)
- `observation.environment_state`  float32 (d,)      object / scene state, where a source records it
- `observation.images.<camera>`    uint8 (H, W, 3)   one camera frame, channels last
- `action`                         float32 (a,)

`Feature` describes one key as LeRobot's `features` dict does (dtype, shape, names) plus its kind.
Tasks with plain vector observations (a gymnasium Box) keep passing one float array: it is the
`observation.state` feature, and `as_obs_dict` makes the dict form of it, so an actor written for
arrays keeps working on state-only tasks while everything in mimetic reads the dict form.

`privileged.state` is the one key that is never recorded: a task whose recorded state is reduced
(Meta-World `state=proprio`) passes its full state there for scripted experts, which need to know
where the object is even when a policy must find it in the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from mimetic.errors import MimeticError

STATE = "observation.state"
ENV_STATE = "observation.environment_state"
IMAGE_PREFIX = "observation.images."
ACTION = "action"
PRIVILEGED_STATE = "privileged.state"

KINDS = ("state", "environment_state", "image", "action")

Observation = Mapping[str, np.ndarray]  # key -> array; batched arrays carry a leading batch axis


@dataclass(frozen=True)
class Feature:
    """One feature: kind (state | environment_state | image | action), dtype, shape, per-dimension names."""

    kind: str
    dtype: str
    shape: tuple[int, ...]
    names: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise MimeticError(f"feature kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.names is not None:
            object.__setattr__(self, "names", tuple(str(n) for n in self.names))

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    def to_json(self) -> dict:
        """LeRobot's entry for this feature in meta/info.json (dtype, shape, names)."""
        names = list(self.names) if self.names is not None else (["height", "width", "channels"] if self.is_image else None)
        return {"dtype": self.dtype, "shape": list(self.shape), "names": names}


def kind_of(key: str) -> str | None:
    """The kind a key has by LeRobot's naming, or None for keys that are not observations or actions."""
    if key == ACTION:
        return "action"
    if key.startswith(IMAGE_PREFIX):
        return "image"
    if key == ENV_STATE:
        return "environment_state"
    if key == STATE or (key.startswith("observation.") and not key.startswith("observation.images")):
        return "state"
    return None


def comma_keys(text: str) -> list[str]:
    """Feature keys from a comma-separated option (`--obs-keys`, `--aux-state`), in the order given."""
    return [k.strip() for k in text.split(",") if k.strip()]


def is_image_key(key: str) -> bool:
    return key.startswith(IMAGE_PREFIX)


def camera_of(key: str) -> str:
    """`observation.images.top` -> `top`."""
    return key[len(IMAGE_PREFIX):] if is_image_key(key) else key


def image_key(camera: str) -> str:
    return IMAGE_PREFIX + camera


def state_feature(dim: int, names=None, kind: str = "state") -> Feature:
    return Feature(kind, "float32", (int(dim),), tuple(names) if names is not None else None)


def image_feature(height: int, width: int, channels: int = 3) -> Feature:
    return Feature("image", "uint8", (int(height), int(width), int(channels)))


def observation_keys(features: Mapping[str, Feature]) -> list[str]:
    """The observation keys of a feature dict: state first, then environment state, then cameras (sorted)."""
    order = {"state": 0, "environment_state": 1, "image": 2}
    keys = [k for k, f in features.items() if f.kind in order]
    return sorted(keys, key=lambda k: (order[features[k].kind], k))


def image_keys(features: Mapping[str, Feature]) -> list[str]:
    return [k for k in observation_keys(features) if features[k].is_image]


def vector_keys(features: Mapping[str, Feature]) -> list[str]:
    return [k for k in observation_keys(features) if not features[k].is_image]


def as_obs_dict(obs) -> dict[str, np.ndarray]:
    """The dict form of an observation (or a batch of them): a bare array is the `observation.state` feature."""
    if isinstance(obs, Mapping):
        return dict(obs)
    return {STATE: np.asarray(obs, dtype=np.float32)}


def state_of(obs, who: str = "this actor") -> np.ndarray:
    """The state vector(s) of an observation: the array itself, or its `observation.state` key."""
    if not isinstance(obs, Mapping):
        return np.asarray(obs, dtype=np.float32)
    if STATE not in obs:
        raise MimeticError(f"{who} needs the observation's state ({STATE!r}), but the observation has only {sorted(obs)}")
    return np.asarray(obs[STATE], dtype=np.float32)


def expert_state(obs, who: str = "the scripted expert") -> np.ndarray:
    """What a scripted expert reads: the full state (`privileged.state`) where the recorded state is reduced."""
    if isinstance(obs, Mapping) and PRIVILEGED_STATE in obs:
        return np.asarray(obs[PRIVILEGED_STATE], dtype=np.float32)
    return state_of(obs, who)


def recorded(obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The keys of an observation dict that are stored in datasets (everything but privileged keys)."""
    return {k: v for k, v in obs.items() if not k.startswith("privileged.")}


def features_of_space(space, names: Mapping[str, list[str]] | None = None) -> dict[str, Feature]:
    """Observation features of a gymnasium observation space: a Box is `observation.state`; a Dict maps its
    keys (which must be LeRobot-named) to features; `privileged.*` keys are left out."""
    import gymnasium as gym

    names = dict(names or {})
    if isinstance(space, gym.spaces.Dict):
        out = {}
        for key, sub in space.spaces.items():
            if key.startswith("privileged."):
                continue
            kind = kind_of(key)
            if kind is None or kind == "action" or not isinstance(sub, gym.spaces.Box):
                raise MimeticError(f"observation key {key!r}: expected LeRobot-named Box features "
                                   f"(observation.state, observation.images.<camera>, ...)")
            if kind == "image":
                if len(sub.shape) != 3 or sub.shape[2] != 3 or sub.dtype != np.uint8:
                    raise MimeticError(f"observation key {key!r}: images must be uint8 (H, W, 3), got {sub.dtype} {sub.shape}")
                out[key] = image_feature(*sub.shape)
            else:
                out[key] = state_feature(int(np.prod(sub.shape)), names.get(key), kind)
        return out
    dim = int(np.prod(space.shape)) if space.shape else 1
    return {STATE: state_feature(dim, names.get(STATE))}


def features_from_json(feats: Mapping[str, dict], where: str) -> dict[str, Feature]:
    """Observation and action features of a LeRobot info.json `features` dict (index columns are left out)."""
    out = {}
    for key, ft in feats.items():
        kind = kind_of(key)
        if kind is None:
            continue
        if not isinstance(ft, dict) or not isinstance(ft.get("shape"), list):
            raise MimeticError(f"{where}: feature {key!r} has no shape")
        dtype = ft.get("dtype")
        shape = tuple(int(s) for s in ft["shape"])
        if kind == "image" or dtype in ("image", "video"):
            if len(shape) != 3:
                raise MimeticError(f"{where}: image feature {key!r} has shape {list(shape)}, expected [height, width, channels]")
            if shape[0] in (1, 3) and shape[2] not in (1, 3):  # channels-first in some writers
                shape = (shape[1], shape[2], shape[0])
            out[key] = Feature("image", "uint8", shape)
            continue
        names = ft.get("names")
        if isinstance(names, dict):  # LeRobot's {"motors": [...]} form
            names = next(iter(names.values()), None)
        if not (isinstance(names, list) and len(names) == int(np.prod(shape)) and all(isinstance(n, str) for n in names)):
            names = None
        out[key] = Feature(kind, "float32", (int(np.prod(shape)),), names)
    return out


def check_batch(obs: Mapping[str, np.ndarray], features: Mapping[str, Feature], n: int, where: str) -> None:
    """Raise a one-line error if a batch of observations does not carry `features` with their shapes."""
    for key, f in features.items():
        if f.kind == "action":
            continue
        if key not in obs:
            raise MimeticError(f"{where}: observation has no {key!r} (it has {sorted(obs)})")
        shape = tuple(np.shape(obs[key]))
        if shape != (n, *f.shape):
            raise MimeticError(f"{where}: {key!r} has shape {shape[1:]} per step, expected {f.shape}")


def state_only_note(keys, who: str, where: str) -> str | None:
    """For a method that reads `observation.state` alone: a one-line MimeticError when `keys` (the data's
    observation keys) have no state, else a one-line note naming the cameras it leaves unused (None if none)."""
    keys = list(keys)
    cams = [k for k in keys if is_image_key(k)]
    if STATE not in keys:
        raise MimeticError(f"{who} learns from {STATE!r}, but {where} has only {keys}"
                           f"{' (camera features)' if cams else ''}")
    if cams:
        return f"{who}: reads {STATE!r} only; the camera features {cams} of {where} are not used"
    return None


AXES = ("x", "y", "z")
# relative_to="auto" takes the first of these points the features name (with at least one other point): the hand
AUTO_ANCHORS = ("hand",)


def relative_points(names: list, anchor: str, where: str) -> tuple[list[int], list[list[int]]]:
    """Indices of a named point and of every other point, for egocentric features (`relative_to`).

    A point P is the dimensions named `P_x`, `P_y` (and `P_z`) of the vector input whose per-dimension names are
    `names` (None where a feature declares none). Returns (the anchor's indices, each other point's indices in the
    anchor's axes, in input order); `point - anchor` is then the point's offset from the anchor (e.g. Meta-World's
    object and goal seen from the hand)."""
    index = {n: i for i, n in enumerate(names) if n is not None}
    axes = [a for a in AXES if f"{anchor}_{a}" in index]
    if len(axes) < 2:
        named = [n[:-2] for n in index if n.endswith("_x") and f"{n[:-2]}_y" in index]
        raise MimeticError(f"{where}: relative_to={anchor!r} needs state dimensions named {anchor}_x and {anchor}_y "
                           f"(and {anchor}_z); the points the features name: "
                           f"{', '.join(named) if named else 'none' if index else 'none (names not declared)'}")
    points = []
    for n in index:  # dict order: input order
        if n.endswith(f"_{axes[0]}") and n[:-2] != anchor and all(f"{n[:-2]}_{a}" in index for a in axes):
            points.append([index[f"{n[:-2]}_{a}"] for a in axes])
    if not points:
        raise MimeticError(f"{where}: relative_to={anchor!r}: no other point named P_{'/P_'.join(axes)} in the features")
    return [index[f"{anchor}_{a}"] for a in axes], points


def auto_anchor(names: list) -> str:
    """What relative_to="auto" means for a vector input with these per-dimension names: the first of `AUTO_ANCHORS`
    it names beside at least one other point (Meta-World's full state: "hand"), else "" (off: e.g. a state of the
    hand alone, or names not declared)."""
    for anchor in AUTO_ANCHORS:
        try:
            relative_points(names, anchor, "auto")
        except MimeticError:
            continue
        return anchor
    return ""
