"""What every policy shares: config, normalization, checkpoints, and the actor that runs it.

A policy is a torch module that maps a window of `n_obs_steps` raw observations to a chunk of
`horizon` raw actions (`predict`), and scores a batch of windows (`loss`). Normalization lives
inside the policy as buffers, so a checkpoint (config.json + model.safetensors) is never blind.
Loading reads JSON and safetensors only: nothing is unpickled.

Sampling randomness at inference (the initial noise of diffusion / flow, sampled MLP and Gaussian
heads) never comes from torch's global generator: row i of a batch draws from `generators[i]`, one
`torch.Generator` per episode seeded from the episode's seed (`episode_generators`). So the same
checkpoint on the same seeds acts the same whatever the batch size or what ran before, up to the
floating-point differences of batched arithmetic. Without generators, row i uses seed i.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Mapping, Union

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mimetic.data.io import atomic_write_bytes, atomic_write_json, read_json
from mimetic.devices import module_device, resolve_device
from mimetic.errors import MimeticError
from mimetic.features import STATE, Feature, as_obs_dict, auto_anchor, comma_keys, relative_points
from mimetic.data.windows import demo_indices, vector_input
from mimetic.policies.conditioning import TaskConditioner, check_condition
from mimetic.policies.encoders import ObservationEncoder

# policy type -> "module:Class"; modules are imported only when a policy of that type is built
POLICY_TYPES: dict[str, str] = {
    "mlp": "mimetic.policies.mlp:MLPPolicy",
    "tanh-gaussian": "mimetic.policies.gaussian:TanhGaussianPolicy",  # SAC/PPO actor of gail/airl
    "act": "mimetic.policies.act:ACTPolicy",
    "diffusion": "mimetic.policies.diffusion:DiffusionPolicy",
    "flow": "mimetic.policies.flow:FlowPolicy",
}


@dataclass
class PolicyConfig:
    """Fields every policy has. Families subclass this with their own fields.

    `ABSENT` holds, for a field added after checkpoints were already written with this config, the value
    those checkpoints were trained with: a saved config that lacks the field loads with it, not with
    today's default (the weights would not fit).
    """

    ABSENT: ClassVar[dict] = {}

    obs_dim: int = 0
    act_dim: int = 0
    n_obs_steps: int = 1  # To: observations the policy sees (history)
    horizon: int = 1  # actions predicted per call (chunk length)
    n_action_steps: int = 1  # actions executed before predicting again (receding horizon)
    action_start: int = 0  # first predicted action relative to the current step (-(To-1) for diffusion)
    norm_obs: str = "gaussian"  # gaussian (z-score) | minmax ([-1, 1]) | none
    norm_action: str = "gaussian"
    # the normalized vector input (and the offsets) is multiplied by this: its std (gaussian) or half-range (minmax)
    # becomes obs_scale. Below 1 the network starts nearer its linear regime in the inputs, a smoother function of them.
    obs_scale: float = 1.0
    env: str | None = None  # the environment the training data came from
    env_options: dict = field(default_factory=dict)
    # observation features the policy reads, in order: key -> {"kind", "shape", "names"} (JSON, saved in
    # config.json). Its vector features, concatenated in this order, are the obs_dim-wide vector input.
    # Empty (a config of a release without it) means the state alone: {"observation.state": (obs_dim,)}.
    input_features: dict = field(default_factory=dict)
    # observation encoder (mimetic.policies.encoders): how camera features become vectors. Unused without cameras.
    vision_backbone: str = "conv"  # conv (small, the CPU default) | resnet18 (GroupNorm, for GPUs and long runs)
    vision_pool: str = "spatial_softmax"  # spatial_softmax (keypoints) | attention
    vision_dim: int = 64  # features per camera
    vision_channels: int = 32  # conv backbone: channels of its 4 layers
    vision_stride: int = 2  # conv backbone: stride of its first layer (1 = feature maps at the crop's full resolution)
    vision_keypoints: int = 32  # spatial_softmax pooling: keypoints per camera
    vision_norm: str = "none"  # conv backbone: none | group (a GroupNorm after each conv layer)
    shared_backbone: bool = False  # one backbone for every camera (default: one per camera)
    crop_ratio: float = 0.9  # crop this fraction of each image side: random while training, center at inference (1 = off)
    color_jitter: float = 0.0  # training-time brightness / contrast jitter, factors in [1 - j, 1 + j] (0 = off)
    pretrained_backbone: str | None = None  # LOCAL weight file for the backbone, loaded when training starts
    # future-state auxiliary loss (training only; off when empty): a linear head on the current encoded observation
    # predicts the (normalized) vector features these many steps ahead, clipped to the episode's end. From a camera,
    # where the hand will be later (at the object, at the goal) is a localisation signal every dataset has.
    future_state: list[int] = field(default_factory=list)
    future_weight: float = 1.0  # weight of that loss beside the method's own
    # privileged-state auxiliary loss (training only; off when empty): vector features of the dataset that the policy
    # does NOT read (comma-separated keys, e.g. observation.environment_state: where the objects and goal are) and a
    # linear head on the current encoded observation learns to predict, normalized. From a camera, a direct
    # localisation signal where the training data records it (simulation); evaluation needs none of it.
    aux_state: str = ""
    aux_state_weight: float = 1.0  # weight of that loss beside the method's own
    aux_state_dim: int = 0  # their width together (set from the dataset)
    # egocentric features (off when empty): the name of a point in the vector features (its dimensions named
    # P_x, P_y, P_z, e.g. Meta-World's "hand"); every other named point's offset from it (object - hand, goal - hand)
    # is appended to the vector input, normalized on its own. What a point-to-point expert acts on, given directly.
    # "auto" becomes `features.auto_anchor` of the input's names when the config is made, "none" becomes "" (saved
    # configs are concrete).
    relative_to: str = ""
    # task conditioning (mimetic.policies.conditioning): none | task (the instruction) | task-id | demo
    condition: str = "none"
    task_dim: int = 64  # width of the task vector
    text_encoder: str = "learned"  # condition=task: "learned" from the data's instructions, a LOCAL transformers folder, or "wordllama"
    demo_frames: int = 16  # condition=demo: frames read from the demonstration
    # a task-conditioned policy with cameras: the task vector also scales and shifts every channel of each camera's
    # feature map before pooling (FiLM, as RT-1 conditions its image tokens on the instruction), so what the image
    # features keep can depend on the task ("where is the BLUE target"), not only how the head uses them
    # (BENCHMARKS.md, "Reading the instruction from pixels")
    vision_film: bool = True
    instructions: list = field(default_factory=list)  # the training data's task strings, in task_index order
    text_identity: dict = field(default_factory=dict)  # a pretrained text encoder's path and fingerprint

    def __post_init__(self):
        if not self.input_features:
            self.input_features = {STATE: feature_entry(Feature("state", "float32", (self.obs_dim,)))}
        self.input_features = {k: _checked_entry(k, v) for k, v in self.input_features.items()}
        width = sum(int(np.prod(v["shape"])) for k, v in self.input_features.items() if v["kind"] != "image")
        if width != self.obs_dim:
            raise MimeticError(f"policy config: obs_dim is {self.obs_dim} but the vector input features "
                               f"{vector_input_keys(self)} have {width} dimensions together")
        if not self.obs_scale > 0:
            raise MimeticError(f"obs_scale must be positive, got {self.obs_scale}")
        if self.relative_to == "auto":
            self.relative_to = auto_anchor(vector_input_names(self))
        elif self.relative_to == "none":
            self.relative_to = ""


def feature_entry(f: Feature) -> dict:
    """The JSON entry of an input feature in `PolicyConfig.input_features`."""
    return {"kind": f.kind, "shape": list(f.shape), "names": list(f.names) if f.names is not None else None}


def _checked_entry(key: str, v) -> dict:
    try:
        return feature_entry(Feature(v["kind"], "uint8" if v["kind"] == "image" else "float32", v["shape"], v.get("names")))
    except (TypeError, KeyError, ValueError) as e:
        raise MimeticError(f"policy config: input feature {key!r} must be {{kind, shape, names}}, got {v!r} ({e})") from None


def input_features(config: PolicyConfig) -> dict[str, Feature]:
    """The policy's input features as `Feature`s, in input order."""
    return {k: Feature(v["kind"], "uint8" if v["kind"] == "image" else "float32", v["shape"], v["names"])
            for k, v in config.input_features.items()}


def vector_input_keys(config: PolicyConfig) -> list[str]:
    """The vector features the policy reads, in the order they are concatenated into its obs_dim-wide input."""
    return [k for k, v in config.input_features.items() if v["kind"] != "image"]


def aux_state_keys(config: PolicyConfig) -> list[str]:
    """The features named by `aux_state` (targets of the privileged-state loss), in the order given."""
    return comma_keys(config.aux_state)


def vector_input_names(config: PolicyConfig) -> list:
    """Per-dimension names of the vector input (None where a feature declares none), in input order."""
    out = []
    for k in vector_input_keys(config):
        v = config.input_features[k]
        out += list(v["names"]) if v["names"] is not None else [None] * int(np.prod(v["shape"]))
    return out


class RelativePositions(nn.Module):
    """(..., obs_dim) raw vector input -> (..., dim): each named point's offset from the anchor (`relative_to`)."""

    def __init__(self, config: PolicyConfig):
        super().__init__()
        anchor, points = relative_points(vector_input_names(config), config.relative_to, "policy config")
        self.register_buffer("anchor", torch.tensor(anchor), persistent=False)
        self.register_buffer("points", torch.tensor(points), persistent=False)
        self.dim = self.points.numel()

    def forward(self, vec: torch.Tensor) -> torch.Tensor:
        return (vec[..., self.points] - vec[..., None, self.anchor]).flatten(-2)


def image_input_keys(config: PolicyConfig) -> list[str]:
    return [k for k, v in config.input_features.items() if v["kind"] == "image"]


# Camera frames are never normalized with statistics: uint8 -> [0, 1] -> (x - mean) / std, fixed.
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., H, W, C), channels last as stored -> float32 (..., C, H, W) in [-1, 1] (fixed scaling).

    What an observation encoder reads; the same at training and inference, and nothing fitted on data."""
    if images.dtype != torch.uint8:
        raise MimeticError(f"normalize_images expects uint8 frames, got {images.dtype}")
    if images.ndim < 3:
        raise MimeticError(f"normalize_images expects frames shaped (..., H, W, C), got shape {tuple(images.shape)}")
    x = images.to(torch.float32).div_(255.0).movedim(-1, -3)
    return (x - IMAGE_MEAN) / IMAGE_STD


# what `Policy.predict` / `encode` take: the vector tensor (B, To, d), or a batch dict with "obs" and camera keys
Observations = Union[torch.Tensor, Mapping[str, torch.Tensor]]


class Normalizer(nn.Module):
    """Affine normalization fitted on data and saved with the model: x_n = (x - shift) / scale."""

    def __init__(self, dim: int, mode: str = "gaussian"):
        super().__init__()
        if mode not in ("gaussian", "minmax", "none"):
            raise MimeticError(f"normalization mode must be gaussian, minmax or none, got {mode!r}")
        self.mode = mode
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def fit(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if self.mode == "gaussian":
            shift, scale = x.mean(0), x.std(0)
        elif self.mode == "minmax":
            lo, hi = x.min(0), x.max(0)
            shift, scale = (hi + lo) / 2, (hi - lo) / 2
        else:
            shift, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        scale = np.where(scale < 1e-6, 1.0, scale)  # constant dimensions pass through centred
        self.shift.copy_(torch.as_tensor(shift, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


SAMPLING_SALT = 0x6D696D  # separates the sampling streams from other uses of the same episode seed


def episode_generators(seeds, salt: int = 0) -> list[torch.Generator]:
    """One CPU generator per episode, seeded from (the episode's seed, `salt`) through numpy's SeedSequence."""
    out = []
    for s in seeds:
        state = np.random.SeedSequence([SAMPLING_SALT, int(salt) % 2**64, int(s) % 2**64]).generate_state(1, np.uint64)[0]
        out.append(torch.Generator().manual_seed(int(state)))
    return out


class Policy(nn.Module):
    """Base class. Subclasses set `type_name`, `config_class`, and implement `loss` and `predict_normalized`."""

    type_name = "base"
    config_class = PolicyConfig

    def __init__(self, config: PolicyConfig):
        if config.n_obs_steps < 1 or config.horizon < 1:
            raise MimeticError(f"n_obs_steps and horizon must be >= 1, got {config.n_obs_steps} and {config.horizon}")
        if not 0.0 <= getattr(config, "dropout", 0.0) < 1.0:
            raise MimeticError(f"dropout must be in [0, 1), got {config.dropout}")
        if any(h < 1 for h in getattr(config, "hidden", [])):
            raise MimeticError(f"hidden layer sizes must be >= 1, got {config.hidden}")
        super().__init__()
        self.config = config
        self.obs_norm = Normalizer(config.obs_dim, config.norm_obs)
        self.act_norm = Normalizer(config.act_dim, config.norm_action)
        self.relative = RelativePositions(config) if config.relative_to else None
        self.relative_norm = Normalizer(self.relative.dim, config.norm_obs) if self.relative is not None else None
        # the normalized vector input's width: the features, then the egocentric offsets
        self.vector_width = config.obs_dim + (self.relative.dim if self.relative is not None else 0)
        # the identity without cameras (no parameters): heads size their inputs from encoder.output_dim
        self.obs_encoder = ObservationEncoder(config, pooled=self.pooled_encoder, vector_dim=self.vector_width)
        check_condition(config)
        # the task -> a vector that `encode` appends to every observation step (None: a one-task policy)
        self.task_cond = TaskConditioner(config) if config.condition != "none" else None
        fs = config.future_state
        if any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in fs) or config.future_weight < 0:
            raise MimeticError(f"future_state must be whole steps >= 1 and future_weight >= 0, got {fs} and "
                               f"{config.future_weight}")
        if fs and not self.pooled_encoder:
            raise MimeticError(f"future_state needs a policy that pools its observations into vectors "
                               f"(bc, diffusion, flow), not {self.type_name}")
        self.future_head = nn.Linear(self.obs_encoder.output_dim, len(fs) * config.obs_dim) if fs else None
        if config.aux_state_weight < 0 or bool(aux_state_keys(config)) != (config.aux_state_dim > 0):
            raise MimeticError(f"aux_state {config.aux_state!r} needs aux_state_dim > 0 (its width) and "
                               f"aux_state_weight >= 0, got {config.aux_state_dim} and {config.aux_state_weight}")
        if config.aux_state_dim and not self.pooled_encoder:
            raise MimeticError(f"aux_state needs a policy that pools its observations into vectors "
                               f"(bc, diffusion, flow), not {self.type_name}")
        d_aux = config.aux_state_dim
        self.aux_state_norm = Normalizer(d_aux, "gaussian") if d_aux else None
        self.aux_state_head = nn.Linear(self.obs_encoder.output_dim, d_aux) if d_aux else None
        # auxiliary losses of a training batch: name -> (weight, loss), set by `encode`, read by `forward`
        self._aux_losses: dict[str, tuple[float, torch.Tensor]] = {}
        self.step, self.total_steps = 0, 0  # the training step and the run's steps (set by the trainer: `start_step`)
        self.varying_graph = False  # True: some training steps leave some parameters out of the loss (see wrap)

    pooled_encoder = True  # False: the encoder gives feature maps, not vectors (ACT makes its own image tokens)

    def split_inputs(self, obs: Observations) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Raw inputs -> (vector features (B, To, obs_dim) float, camera frames key -> (B, To, H, W, 3) uint8), on
        the policy's device. `obs` is a batch dict ("obs" and the camera keys) or, without cameras, the vector tensor."""
        device = self.device
        if isinstance(obs, Mapping):
            vec, images = obs.get("obs"), {}
            for k in self.obs_encoder.image_keys:
                if k not in obs:
                    raise MimeticError(f"policy reads camera feature {k!r}, which the batch lacks (it has {sorted(obs)})")
                images[k] = obs[k].to(device, non_blocking=True)
            if vec is None:  # cameras only
                B, To = next(iter(images.values())).shape[:2] if images else (0, self.config.n_obs_steps)
                vec = torch.zeros(B, To, 0, device=device)
        else:
            vec, images = obs, {}
            if self.obs_encoder.image_keys:
                raise MimeticError(f"policy reads camera features {self.obs_encoder.image_keys}: pass a dict with 'obs' and them")
        return vec.to(device, torch.float32, non_blocking=True), images

    def encode(self, obs: Observations) -> torch.Tensor:
        """Raw inputs (see `split_inputs`) -> (B, To, encoded_dim): normalized vector features, then camera features,
        then (a task-conditioned policy) the task vector, the same at every step."""
        vec, images = self.split_inputs(obs)
        task = self.task_vector(obs)
        enc = self.obs_encoder(self.normalize_vector(vec), images, task)
        if self.training and isinstance(obs, Mapping):
            if self.future_head is not None and "future_obs" in obs:
                target = self.obs_norm(obs["future_obs"].to(enc.device, torch.float32))  # (B, K, d)
                pred = self.future_head(enc[:, -1]).reshape(target.shape)
                self._aux_losses["future"] = (self.config.future_weight, F.mse_loss(pred, target))
            if self.aux_state_head is not None and "aux_state" in obs:
                target = self.aux_state_norm(obs["aux_state"].to(enc.device, torch.float32))  # (B, d_aux): the current frame's
                self._aux_losses["aux_state"] = (self.config.aux_state_weight, F.mse_loss(self.aux_state_head(enc[:, -1]), target))
        if task is None:
            return enc
        return torch.cat([enc, task[:, None].to(enc.dtype).expand(-1, enc.shape[1], -1)], -1)

    def normalize_vector(self, vec: torch.Tensor) -> torch.Tensor:
        """Raw vector features (B, To, obs_dim) -> normalized (B, To, vector_width): the features, then (`relative_to`)
        the offsets of the named points from the anchor, times `obs_scale`."""
        x = self.obs_norm(vec)
        if self.relative is not None:
            x = torch.cat([x, self.relative_norm(self.relative(vec))], -1)
        return x * self.config.obs_scale if self.config.obs_scale != 1.0 else x

    @property
    def encoded_dim(self) -> int:
        """Width of one encoded observation step: the encoder's output, plus the task vector when conditioned."""
        return self.obs_encoder.output_dim + (self.config.task_dim if self.task_cond is not None else 0)

    def split_task(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, To, encoded_dim) -> (the observations (B, To, encoder.output_dim), the task vector (B, task_dim) or None)."""
        if self.task_cond is None:
            return enc, None
        d = self.obs_encoder.output_dim
        return enc[..., :d], enc[:, -1, d:]

    def task_vector(self, obs: Observations) -> torch.Tensor | None:
        """The batch's task vectors (B, task_dim), or None for a one-task policy. The task is the batch's `task_vector`,
        its `task` (row -> instruction index), or its demonstrations (`demo_obs`, `demo_action`: one per row, or each
        distinct one once with `demo_row` naming each row's)."""
        if self.task_cond is None:
            return None
        if not isinstance(obs, Mapping):
            raise MimeticError(f"this policy is conditioned on {self.config.condition!r}: its input must say the task")
        if self.config.condition == "demo" and "task_vector" not in obs:
            if "demo_obs" not in obs:
                raise MimeticError("a demo-conditioned policy needs each row's demonstration ('demo_obs', 'demo_action')")
            device = self.device
            demo = torch.cat([self.obs_norm(obs["demo_obs"].to(device, torch.float32)),
                              self.act_norm(obs["demo_action"].to(device, torch.float32))], -1)
            vectors = self.task_cond.embed_demo(demo)
            return vectors[obs["demo_row"].to(device)] if "demo_row" in obs else vectors  # each row's demonstration
        return self.task_cond(obs)

    @torch.no_grad()
    def embed_task(self, task: str | None = None, demo=None) -> torch.Tensor:
        """(task_dim,): the task vector of an instruction (`task`) or of a demonstration (`demo`, an Episode)."""
        c = self.config
        if c.condition == "demo":
            if demo is None:
                raise MimeticError("this policy is conditioned on a demonstration of the task (--condition demo): "
                                   "give one (mimetic eval --demo DATASET)")
            keys = vector_input_keys(c)
            n = len(demo.actions)
            idx = demo_indices(n, c.demo_frames)
            obs = as_obs_dict(demo.obs)
            missing = [k for k in keys if k not in obs]
            if missing:
                raise MimeticError(f"the demonstration lacks the policy's feature {missing[0]!r} (it has {sorted(obs)})")
            vec = vector_input({k: np.asarray(obs[k])[:n] for k in keys})[idx] if keys else np.zeros((len(idx), 0), np.float32)
            return self.task_vector({"demo_obs": torch.as_tensor(vec)[None],
                                     "demo_action": torch.as_tensor(np.asarray(demo.actions, np.float32)[idx])[None]})[0]
        if task is None:
            raise MimeticError(f"this policy is conditioned on the task instruction (--condition {c.condition}): "
                               f"say which task (evaluate on a suite, or on a task with a known instruction)")
        return self.task_cond.embed_instruction(task)

    def fit_normalization(self, observations: np.ndarray, actions: np.ndarray, aux_state: np.ndarray | None = None) -> None:
        self.obs_norm.fit(observations)
        self.act_norm.fit(actions)
        if self.relative is not None:
            self.relative_norm.fit(self.relative(torch.as_tensor(np.asarray(observations, np.float32))).numpy())
        if self.aux_state_norm is not None:
            if aux_state is None:
                raise MimeticError(f"this policy learns to predict {self.config.aux_state} (aux_state): fit its "
                                   f"normalization on those features too")
            self.aux_state_norm.fit(aux_state)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """batch: obs (B, To, d) raw, camera keys (B, To, H, W, 3) uint8, action (B, H, a) raw, action_pad (B, H) bool."""
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss, `loss(batch)` (plus the future-state and privileged-state losses when configured):
        training calls the module (what DDP and other wrappers hook)."""
        self._aux_losses = {}
        loss, info = self.loss(batch)
        for name, (weight, aux) in self._aux_losses.items():
            info = {**info, name: aux.item()}
            loss = loss + weight * aux
        self._aux_losses = {}
        return loss, info

    def start_step(self, step: int, total: int) -> None:
        """The trainer calls this before each training step (0-based) of a run of `total` steps: a loss that changes
        over training reads them."""
        self.step, self.total_steps = step, total

    def warmup_steps(self, total: int) -> int:
        """Steps, at the start of a run of `total`, that train with a loss of their own (none here)."""
        return 0

    @property
    def device(self) -> torch.device:
        """Where the policy's weights live (its first parameter or buffer); every tensor it creates goes there."""
        return module_device(self)

    def predict_normalized(self, obs_n: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """(B, To, encoder.output_dim) encoded observations (`encode`; without cameras, the normalized observations)
        -> (B, H, a) normalized actions; row i samples from generators[i]."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, obs: Observations, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """Raw observations ((B, To, d), or a dict with "obs" and camera frames) -> (B, H, a) raw actions, on the
        policy's device; row i samples from generators[i] (default: seed i)."""
        return self.act_norm.inverse(self.predict_normalized(self.encode(obs), generators=generators))

    sample_salt = 0  # mixed into every episode generator's seed (diffusion / flow: config.sample_seed)

    def generators(self, seeds) -> list[torch.Generator]:
        """The sampling generators of episodes with these seeds (what PolicyActor passes to `predict`)."""
        return episode_generators(seeds, self.sample_salt)

    def _draw(self, fn, shape: tuple[int, ...], generators) -> torch.Tensor:
        gens = generators if generators is not None else self.generators(range(shape[0]))
        if len(gens) != shape[0]:
            raise ValueError(f"{len(gens)} sampling generators for a batch of {shape[0]}")
        return torch.stack([fn(shape[1:], generator=g) for g in gens]).to(self.act_norm.shift.device)

    def noise(self, shape: tuple[int, ...], generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """Standard normal noise of `shape` (B, ...): row i from generators[i] (default: seed i)."""
        return self._draw(torch.randn, shape, generators)

    def uniform(self, shape: tuple[int, ...], generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """U[0, 1) noise of `shape` (B, ...): row i from generators[i] (default: seed i)."""
        return self._draw(torch.rand, shape, generators)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save(self, directory: str | Path) -> None:
        save_policy(self, directory)


def _policy_class(type_name: str) -> type[Policy]:
    if type_name not in POLICY_TYPES:
        raise MimeticError(f"unknown policy type {type_name!r}; known: {sorted(POLICY_TYPES)}")
    module, cls = POLICY_TYPES[type_name].split(":")
    return getattr(importlib.import_module(module), cls)


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(cls, d: dict, where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise MimeticError(f"{where}: unknown config fields {sorted(unknown)} for {cls.__name__}")
    return cls(**{**cls.ABSENT, **d})


def save_policy(policy: Policy, directory: str | Path) -> None:
    """Write config.json and model.safetensors (each atomically)."""
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in policy.state_dict().items()}  # loads anywhere
    atomic_write_bytes(directory / "model.safetensors", save(state))
    atomic_write_json(directory / "config.json", {"type": policy.type_name, "config": config_to_dict(policy.config),
                                                  "format": "mimetic-policy-1"})


def load_policy(directory: str | Path, device: str | torch.device | None = None) -> Policy:
    """Load a policy checkpoint (onto `device`: auto|cpu|cuda|mps, default the CPU); raise MimeticError if it is
    missing or damaged, or the device is not available."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    target = resolve_device(device) if device is not None else None  # an unavailable device fails before any reading
    directory = Path(directory)
    if not directory.is_dir():
        raise MimeticError(f"policy checkpoint {directory} not found")
    meta = read_json(directory / "config.json", "policy config")
    if not isinstance(meta, dict) or "type" not in meta or "config" not in meta:
        raise MimeticError(f"{directory / 'config.json'}: not a mimetic policy config (needs 'type' and 'config')")
    cls = _policy_class(meta["type"])
    config = config_from_dict(cls.config_class, meta["config"], str(directory / "config.json"))
    policy = cls(config)
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise MimeticError(f"policy weights {weights} not found")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise MimeticError(f"{weights}: cannot read weights: {e}") from None
    try:
        policy.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise MimeticError(f"{weights}: weights do not match {directory / 'config.json'}: {first}") from None
    if target is not None:
        policy.to(target)
    policy.eval()
    return policy


class PolicyActor:
    """Runs a policy in a batch of environments.

    Observations come in either form rollout gives: a dict of features (key -> (n, ...) arrays; keys the
    policy does not read, such as cameras or `privileged.state`, are ignored) or, for a state-only task, one
    (n, d) array (the `observation.state` feature). The policy's vector input is its vector features
    concatenated in `input_features` order; camera features go to it as uint8 frame histories.
    Keeps an observation history per environment and per feature (the first observation repeats at the start),
    and executes action chunks: either `n_action_steps` actions of each chunk before predicting
    again (receding horizon), or, with `temporal_ensemble=m` (ACT), a new chunk every step and the
    exp(-m*i)-weighted average of all predictions for the current step (i = 0 is the oldest).
    Each environment's sampling randomness comes from its own generator, seeded at `reset` from its
    episode's seed (rollout passes them), so an episode does not depend on the batch it runs in.
    """

    def __init__(self, policy: Policy, temporal_ensemble: float | None = None, n_action_steps: int | None = None,
                 task: str | None = None, demo=None):
        self.policy = policy.eval()
        c = policy.config
        # a task-conditioned policy: its task (an instruction, or a demonstration Episode), embedded at the first step;
        # a policy without task conditioning ignores both (a one-task policy run on every task of a suite)
        self.task, self.demo = task, demo
        self._task_vec: torch.Tensor | None = None
        if c.condition != "none":
            policy.embed_task(task, demo)  # a missing or unknown task fails here, not at the first step
        self.To = c.n_obs_steps
        self.first = -c.action_start  # index, in a predicted chunk, of the action for the current step
        self.Ta = max(1, min(n_action_steps or c.n_action_steps, c.horizon - self.first))
        self.ensemble = temporal_ensemble
        self.name = f"policy:{policy.type_name}"
        self.features = input_features(c)
        self.vector_keys = vector_input_keys(c)
        self.image_keys = image_input_keys(c)
        self.reset(1)

    def reset(self, num_envs: int = 1, seeds=None) -> None:
        """New episodes in `num_envs` environments; episode i samples from a generator seeded by seeds[i] (default i)."""
        if seeds is not None and len(seeds) != num_envs:
            raise ValueError(f"reset: {len(seeds)} seeds for {num_envs} environments")
        self.n = num_envs
        self.seeds = list(range(num_envs)) if seeds is None else [int(s) for s in seeds]
        self.gens: list[torch.Generator] | None = None  # made at the first prediction
        self.hist: dict[str, deque[np.ndarray]] = {k: deque(maxlen=self.To) for k in self.features}
        self.queue: list[np.ndarray] = []  # pending actions, each (n, a)
        self.t = 0
        self.preds: list[tuple[int, np.ndarray]] = []  # (step predicted at, chunk (n, H', a)) for ensembling

    def inputs(self, obs) -> dict[str, np.ndarray]:
        """The policy's input features of a batch of observations (either form), checked: key -> (n, *shape)."""
        obs = as_obs_dict(obs)
        out = {}
        for key, f in self.features.items():
            if key not in obs:
                raise MimeticError(f"policy reads observation feature {key!r} {f.shape}, but the observation has only "
                                   f"{sorted(obs)}")
            x = np.asarray(obs[key])
            if f.is_image:
                ok = x.ndim == 4 and x.shape[1:] == f.shape and x.dtype == np.uint8
            else:
                x = np.asarray(x, dtype=np.float32)
                x = x.reshape(len(x), -1) if x.ndim >= 2 else x.reshape(len(x), 1)
                ok = x.shape[1] == int(np.prod(f.shape))
            if not ok and f.is_image:
                raise MimeticError(f"policy expects {key!r} as uint8 frames of shape {f.shape}, the environment gives "
                                   f"{x.dtype} {x.shape[1:]}")
            if not ok:
                raise MimeticError(f"policy expects {key!r} observations of size {int(np.prod(f.shape))}, the environment "
                                   f"gives {x.shape[1]}")
            if out and len(x) != len(next(iter(out.values()))):
                raise MimeticError(f"observation features of different batch sizes: {key!r} has {len(x)}, "
                                   f"{next(iter(out))!r} has {len(next(iter(out.values())))}")
            out[key] = x
        return out

    def _predict(self) -> np.ndarray:
        if self.gens is None:
            self.gens = self.policy.generators(self.seeds)
        if self.vector_keys:
            vec = np.concatenate([np.stack(list(self.hist[k]), axis=1) for k in self.vector_keys], axis=-1)
        else:
            vec = np.zeros((self.n, self.To, 0), np.float32)
        obs = torch.as_tensor(vec, dtype=torch.float32)
        if self.image_keys:  # uint8 histories (n, To, H, W, 3); the policy moves them to its device
            obs = {"obs": obs, **{k: torch.from_numpy(np.stack(list(self.hist[k]), axis=1)) for k in self.image_keys}}
        if self.policy.task_cond is not None:  # the same task vector for every environment of the batch
            if self._task_vec is None or self._task_vec.device != self.policy.device:
                self._task_vec = self.policy.embed_task(self.task, self.demo)
            obs = {**(obs if isinstance(obs, dict) else {"obs": obs}), "task_vector": self._task_vec.expand(self.n, -1)}
        return self.policy.predict(obs, generators=self.gens).cpu().numpy()[:, self.first:, :]

    def act(self, obs) -> np.ndarray:
        x = self.inputs(obs)
        n = len(next(iter(x.values())))
        if n != self.n:
            self.reset(n)
        for key, v in x.items():
            h = self.hist[key]
            h.extend([v] * self.To if not h else [v])  # the first observation repeats
        if self.ensemble is not None:
            self.preds.append((self.t, self._predict()))
            self.preds = [(t0, ch) for t0, ch in self.preds if self.t - t0 < ch.shape[1]]
            acts = np.stack([ch[:, self.t - t0] for t0, ch in self.preds])  # oldest first
            w = np.exp(-self.ensemble * np.arange(len(acts)))
            action = np.tensordot(w / w.sum(), acts, axes=1)
        else:
            if not self.queue:
                chunk = self._predict()
                self.queue = [chunk[:, i] for i in range(self.Ta)]
            action = self.queue.pop(0)
        self.t += 1
        return action.astype(np.float32)


def check_compatible(policy: Policy, obs, act_dim: int | None, where: str) -> None:
    """Raise a one-line error unless the policy can act on this data or environment.

    `obs` is either the observation size (the old form: the state vector's size) or a features dict
    (key -> `Feature`, as `Dataset.features`; an "action" entry gives the action size when `act_dim` is None).
    """
    c = policy.config
    if not isinstance(obs, Mapping):
        if c.obs_dim != obs or c.act_dim != act_dim:
            raise MimeticError(
                f"{where}: policy was trained for observations of size {c.obs_dim} and actions of size {c.act_dim}, "
                f"but the environment has {obs} and {act_dim}"
            )
        return
    if act_dim is None and "action" in obs:
        act_dim = int(np.prod(obs["action"].shape))
    for key, f in input_features(c).items():
        if key not in obs:
            raise MimeticError(f"{where}: policy reads observation feature {key!r} {f.shape}, which is missing "
                               f"(there are {sorted(k for k in obs if k != 'action')})")
        if tuple(obs[key].shape) != f.shape:
            raise MimeticError(f"{where}: policy was trained on {key!r} of shape {f.shape}, but it has shape "
                               f"{tuple(obs[key].shape)} here")
    if act_dim is not None and c.act_dim != act_dim:
        raise MimeticError(f"{where}: policy was trained for actions of size {c.act_dim}, but there are {act_dim}")
