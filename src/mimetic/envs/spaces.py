"""What an environment observes and how it acts: the one place that reads gymnasium spaces.

Every command that checks a dataset or a policy against an environment (train, eval, dagger,
teleop, gail/airl, rollout) asks `env_sizes` / `sizes_of` instead of probing the spaces itself, so
discrete action spaces (`objectworld`: one integer per step, stored as a 1-d action) and Box
spaces are treated the same way everywhere. `EnvSizes.features` are the environment's observation
features (`mimetic.features`: a Box is `observation.state`, a Dict names its keys);
`check_features` refuses a dataset or policy made for other features in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import gymnasium as gym
import numpy as np

from mimetic.errors import MimeticError
from mimetic.features import ACTION, STATE, Feature, features_of_space


def _shape_text(shape, of: str = "") -> str:
    """64x64x3 for an image, "size 6" for a vector (`of`: "of " to read 'observation.state of size 6')."""
    return "x".join(str(int(s)) for s in shape) if len(shape) != 1 else f"{of}size {int(shape[0])}"


def _shape_of(spec: Any) -> tuple[int, ...] | None:
    """The shape a feature description gives: a Feature, anything with .shape, a LeRobot dict {"shape": [...]},
    a shape itself; None when it names only the key."""
    if spec is None:
        return None
    shape = getattr(spec, "shape", None)
    if shape is None and isinstance(spec, Mapping):
        shape = spec.get("shape")
    if shape is None and isinstance(spec, (tuple, list)):
        shape = spec
    if shape is None:
        return None
    shape = tuple(int(s) for s in shape)
    return (int(np.prod(shape)),) if len(shape) != 3 else shape  # vectors compare by size


@dataclass(frozen=True)
class EnvSizes:
    obs_dim: int  # size of the observation.state feature (0 if the environment has none)
    act_dim: int  # flattened action size; 1 for a Discrete space (the action index)
    discrete: bool  # Discrete action space: actions are integers 0 .. n_actions - 1
    n_actions: int | None  # number of discrete actions (None for Box)
    low: np.ndarray | None  # Box action bounds (None for Discrete)
    high: np.ndarray | None
    fps: int  # control rate from the env's metadata (10 if it does not say)
    features: dict[str, Feature] = field(default_factory=dict)  # observation features (privileged keys left out)

    @property
    def has_images(self) -> bool:
        return any(f.is_image for f in self.features.values())

    def require_continuous(self, who: str, env_name: str) -> None:
        """Raise a one-line error if the actions are discrete (methods that regress continuous actions)."""
        if self.discrete:
            raise MimeticError(f"{who}: environment {env_name!r} has discrete actions ({self.n_actions} choices); "
                               f"{who} needs continuous (Box) actions")

    def check_data(self, obs_dim: int, act_dim: int, what: str, env_name: str) -> None:
        """Raise a one-line error if `what` (a dataset or policy) was made for other state and action sizes."""
        if (obs_dim, act_dim) != (self.obs_dim, self.act_dim):
            raise MimeticError(f"{what} has observations of size {obs_dim} and actions of size {act_dim}, "
                               f"but environment {env_name!r} has {self.obs_dim} and {self.act_dim}")

    def check_features(self, features_or_keys: Mapping[str, Any] | Iterable[str], what: str, env_name: str) -> None:
        """Raise a one-line error if `what` (a dataset or policy) was made for observation features this environment
        does not give: a key it lacks, another state size or another image size. `features_or_keys` maps keys to
        Features (or LeRobot dicts {"shape": [...]}, or shapes), or lists keys (checked for presence only);
        an `action` entry is checked against the action size. Keys the environment gives beyond them are fine."""
        items = features_or_keys.items() if isinstance(features_or_keys, Mapping) else ((k, None) for k in features_or_keys)
        for key, spec in items:
            want = _shape_of(spec)
            if key == ACTION:
                have: tuple[int, ...] | None = (self.act_dim,)
            elif key.startswith("privileged."):
                continue
            elif key in self.features:
                have = _shape_of(self.features[key])
            else:
                gives = ", ".join(self.features) or "nothing"
                shown = f" {_shape_text(want, 'of ')}" if want else ""
                raise MimeticError(f"{what} was made for {key}{shown} but environment {env_name!r} does not give it "
                                   f"(it gives {gives})")
            if want is not None and have != want:
                raise MimeticError(f"{what} was made for {key} {_shape_text(want, 'of ')} but environment {env_name!r} "
                                   f"gives {_shape_text(have)}")


def _feature_names(env: gym.Env) -> dict[str, list[str]] | None:
    """Per-dimension names the task declares (`feature_names`: a dict key -> names, or the state's names)."""
    names = getattr(getattr(env, "unwrapped", env), "feature_names", None)
    if names is None or isinstance(names, Mapping):
        return names
    return {STATE: list(names)}


def sizes_of_spaces(observation_space, action_space, metadata: Mapping | None = None,
                    feature_names: Mapping[str, list[str]] | None = None) -> EnvSizes:
    """The sizes of an environment from its spaces (what an environment in a worker process reports)."""
    features = features_of_space(observation_space, feature_names)
    obs_dim = int(features[STATE].shape[0]) if STATE in features else 0
    fps = int((metadata or {}).get("render_fps") or 10)
    if isinstance(action_space, gym.spaces.Discrete):
        return EnvSizes(obs_dim, 1, True, int(action_space.n), None, None, fps, features)
    if isinstance(action_space, gym.spaces.Box):
        low = np.asarray(action_space.low, dtype=np.float32).reshape(-1)
        high = np.asarray(action_space.high, dtype=np.float32).reshape(-1)
        return EnvSizes(obs_dim, int(np.prod(action_space.shape)), False, None, low, high, fps, features)
    raise MimeticError(f"unsupported action space {action_space}: mimetic handles Box and Discrete actions")


def sizes_of(env: gym.Env) -> EnvSizes:
    """The sizes of a built environment's spaces."""
    return sizes_of_spaces(env.observation_space, env.action_space, getattr(env, "metadata", None), _feature_names(env))


def env_sizes(name: str, env_options: dict | None = None) -> EnvSizes:
    """Build environment `name` once, read its sizes, close it."""
    from mimetic.envs import make_env

    env = make_env(name, **(env_options or {}))
    try:
        return sizes_of(env)
    finally:
        env.close()


def return_meaning(env: gym.Env) -> tuple[bool, str]:
    """Whether the mean return compares policies on `env`, and a short note saying why (for tables).

    A return compares policies when episodes run a fixed length, or when ending early can only be
    earned by doing better (e.g. a reward <= 0 per step until success). It does not when a good
    outcome ends the episode early while rewards are positive (Meta-World ending at the first
    success: a faster success earns less), or when a failure ends it early (a crash that stops the
    costs). A task says which with the attributes `return_comparable` and `return_note`; a task
    that says nothing (a gymnasium environment) is taken to define its return as its objective.
    """
    task = getattr(env, "unwrapped", env)
    comparable = getattr(task, "return_comparable", None)
    if comparable is None:
        return True, "the environment's own return"
    return bool(comparable), str(getattr(task, "return_note", ""))
