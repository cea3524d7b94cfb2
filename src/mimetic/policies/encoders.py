"""Observation encoders: the typed observation features -> what a policy head reads.

`ObservationEncoder` (robomimic's obs-encoder contract: a declared `output_dim`) takes the policy's
normalized vector features (B, To, d) (normalized by the policy's `obs_norm`) and its camera frames,
key -> (B, To, H, W, 3) uint8, and returns (B, To, output_dim): the vector features unchanged, then one
`vision_dim`-wide feature per camera, in `input_features` order. Without cameras it is the identity
(no parameters, no copy): a state policy is exactly what it was before encoders existed.

Per camera: uint8 -> `normalize_images` (fixed scaling) -> crop -> (training only) color jitter ->
backbone -> pooling -> linear to `vision_dim`.
- crop: `crop_ratio` of each side (1.0 = off); a random offset per sample at training time
  (`module.training`), the center at inference (Diffusion Policy's scheme, ~90 %), so train and eval
  see images of the same size. Offsets and jitter factors are drawn on the CPU from torch's global
  generator, which the trainer seeds (`--seed`) and checkpoints, then moved to the images' device.
- backbones, in torch (torchvision does not import here): `conv`, a small conv net (4 layers of
  `vision_channels` = 32 channels, the first with stride `vision_stride` = 2, GroupNorm after each conv
  with `vision_norm="group"`; the CPU default), and `resnet18`, ResNet-18 with GroupNorm in
  place of BatchNorm (as Diffusion Policy). Pooling: `spatial_softmax` (a 1x1 conv to `vision_keypoints` = 32 keypoints,
  their expected image coordinates in [-1, 1]) or `attention` (a learned query attending over the
  feature map with 2-D sinusoidal positions).
- one backbone per camera, or one for all with `shared_backbone=True`.
- `pretrained_backbone`: a LOCAL weight file (safetensors, or a torch state dict read with
  weights_only=True) for the backbone body, loaded by the trainer at the start of a fresh run
  (`load_pretrained`), never at checkpoint load (the checkpoint holds the weights). Torchvision's
  ResNet-18 names load directly: BatchNorm affine parameters go to the GroupNorms, running statistics and
  `fc` are skipped. Nothing is downloaded.

ACT reads the feature maps before pooling (`feature_maps`), as tokens.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from mimetic.errors import MimeticError

BACKBONES = ("conv", "resnet18")
POOLS = ("spatial_softmax", "attention")
NORMS = ("none", "group")
NUM_KEYPOINTS = 32


# ---------------------------------------------------------------------------------- backbones
class ConvBody(nn.Module):
    """4 conv layers of `channels` (3x3; the first with stride `stride`), each followed by a GroupNorm if `norm` is
    "group", then ReLU: (N, 3, H, W) -> (N, C, ~H/s, ~W/s)."""

    def __init__(self, channels: int = 32, layers: int = 4, stride: int = 2, norm: str = "none"):
        super().__init__()
        if norm not in NORMS:
            raise MimeticError(f"vision_norm must be one of {', '.join(NORMS)}, got {norm!r}")
        convs: list[nn.Module] = []
        for i in range(layers):
            convs.append(nn.Conv2d(3 if i == 0 else channels, channels, 3, stride=stride if i == 0 else 1, padding=1))
            convs += [_gn(channels)] if norm == "group" else []
            convs.append(nn.ReLU())
        self.net = nn.Sequential(*convs)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels last in memory: oneDNN's CPU convolutions take it without reordering, ~17 % faster per training
        # step at 76 px (ResNet-18 is ~15 % slower in it, so it keeps the default layout; BENCHMARKS.md)
        return self.net(x.contiguous(memory_format=torch.channels_last))


def _gn(channels: int) -> nn.GroupNorm:
    # Diffusion Policy: groups = channels // 16 (reduced to a divisor of `channels` for any width)
    return nn.GroupNorm(math.gcd(channels, max(1, channels // 16)), channels)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = _gn(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = _gn(c_out)
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _gn(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet18GN(nn.Module):
    """ResNet-18 without its pooling and classifier, GroupNorm in place of BatchNorm; torchvision's parameter
    names (a torchvision state dict loads, see `load_backbone_weights`). (N, 3, H, W) -> (N, 512, H/32, W/32)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = _gn(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = 64
        for i, (c, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(c_in, c, stride), BasicBlock(c, c, 1)))
            c_in = c
        self.channels = 512

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def make_body(kind: str, channels: int = 32, stride: int = 2, norm: str = "none") -> nn.Module:
    """`channels`, `stride` (of the first layer) and `norm` shape the conv body; ResNet-18 has its own."""
    if kind == "conv":
        return ConvBody(channels, stride=stride, norm=norm)
    if kind == "resnet18":
        return ResNet18GN()
    raise MimeticError(f"vision_backbone must be one of {', '.join(BACKBONES)}, got {kind!r}")


# ---------------------------------------------------------------------------------- pooling
def _grid(h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    ys = torch.linspace(-1.0, 1.0, h, device=device)
    xs = torch.linspace(-1.0, 1.0, w, device=device)
    return ys[:, None].expand(h, w).reshape(-1), xs[None, :].expand(h, w).reshape(-1)


class SpatialSoftmax(nn.Module):
    """(N, C, h, w) -> (N, 2K) keypoints: a 1x1 conv to K maps, softmax over positions, expected (x, y) in [-1, 1]."""

    def __init__(self, channels: int, num_kp: int = NUM_KEYPOINTS):
        super().__init__()
        self.kp = nn.Conv2d(channels, num_kp, 1)
        self.out_dim = 2 * num_kp

    def attention(self, fmap: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, K, h*w) softmax weights over the positions."""
        return torch.softmax(self.kp(fmap).flatten(2), dim=-1)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        att = self.attention(fmap)
        ys, xs = _grid(fmap.shape[-2], fmap.shape[-1], fmap.device)
        return torch.cat([att @ xs, att @ ys], dim=-1)  # (N, 2K): x of every keypoint, then y


def sincos_2d(h: int, w: int, dim: int, device) -> torch.Tensor:
    """(h*w, dim) fixed 2-D sinusoidal position embedding (half the channels for y, half for x)."""
    quarter = max(1, dim // 4)
    freqs = torch.exp(-math.log(10000.0) * torch.arange(quarter, dtype=torch.float32, device=device) / quarter)
    ys, xs = _grid(h, w, device)
    parts = []
    for coord in (ys, xs):
        a = (coord * (h + w) / 2)[:, None] * freqs[None]  # positions in (roughly) pixel units
        parts += [a.sin(), a.cos()]
    emb = torch.cat(parts, dim=-1)
    return nn.functional.pad(emb, (0, dim - emb.shape[-1])) if emb.shape[-1] < dim else emb[:, :dim]


class AttentionPool(nn.Module):
    """(N, C, h, w) -> (N, C): a learned query attends over the positions (2-D sinusoidal position embeddings)."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, channels) * 0.02)
        self.attn = nn.MultiheadAttention(channels, heads if channels % heads == 0 else 1, batch_first=True)
        self.out_dim = channels

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        N, C, h, w = fmap.shape
        tokens = fmap.flatten(2).transpose(1, 2) + sincos_2d(h, w, C, fmap.device)
        out, _ = self.attn(self.query.expand(N, -1, -1), tokens, tokens, need_weights=False)
        return out[:, 0]


class VisionBackbone(nn.Module):
    """A body (conv / resnet18) and, if `pooled`, its pooling and a linear to `out_dim`: (N, 3, H, W) -> (N, out_dim)."""

    def __init__(self, kind: str, pool: str, out_dim: int, pooled: bool = True, channels: int = 32, stride: int = 2,
                 num_kp: int = NUM_KEYPOINTS, norm: str = "none"):
        super().__init__()
        if pool not in POOLS:
            raise MimeticError(f"vision_pool must be one of {', '.join(POOLS)}, got {pool!r}")
        self.body = make_body(kind, channels, stride, norm)
        self.channels = self.body.channels
        if pooled:
            self.pool = (SpatialSoftmax(self.channels, num_kp) if pool == "spatial_softmax"
                         else AttentionPool(self.channels))
            self.proj = nn.Sequential(nn.Linear(self.pool.out_dim, out_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def head(self, fmap: torch.Tensor) -> torch.Tensor:
        """A feature map (N, C, h, w) -> (N, out_dim): pooling, then the linear."""
        return self.proj(self.pool(fmap))


# ---------------------------------------------------------------------------------- weights
def _read_weights(path: Path) -> dict:
    if not path.is_file():
        raise MimeticError(f"pretrained_backbone: weight file {path} not found (weights are never downloaded)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (any reader error is a bad file)
        raise MimeticError(f"pretrained_backbone: cannot read {path}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MimeticError(f"pretrained_backbone: {path} is not a state dict of tensors")
    return state


_SKIPPED = ("running_mean", "running_var", "num_batches_tracked")


def load_backbone_weights(body: nn.Module, path: str | Path) -> None:
    """Load a LOCAL weight file into a backbone body; keys or shapes that do not match -> one-line MimeticError."""
    path = Path(path)
    state = _read_weights(path)
    state = {k.removeprefix("module.").removeprefix("body."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.endswith(_SKIPPED) and not k.startswith("fc.")}
    own = body.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        what = (f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}" if unexpected else
                f"{wrong[0]!r} has shape {tuple(state[wrong[0]].shape)}, expected {tuple(own[wrong[0]].shape)}")
        n = len(missing) + len(unexpected) + len(wrong)
        raise MimeticError(f"pretrained_backbone: {path} does not match the {type(body).__name__} backbone: {what} "
                           f"({n} mismatching keys)")
    body.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


# ---------------------------------------------------------------------------------- the encoder
def crop_size(side: int, ratio: float) -> int:
    return max(1, min(side, int(round(ratio * side))))


class ObservationEncoder(nn.Module):
    """Vector features pass through; each camera -> `vision_dim` through a backbone. (B, To, d) + images -> (B, To, output_dim).

    `pooled=False` (ACT) builds the bodies only: `feature_maps` gives each camera's map, `output_dim` is the vector part.
    """

    def __init__(self, config, pooled: bool = True, vector_dim: int | None = None):
        super().__init__()
        c = config
        if not 0.0 < c.crop_ratio <= 1.0:
            raise MimeticError(f"crop_ratio must be in (0, 1], got {c.crop_ratio}")
        if not 0.0 <= c.color_jitter < 1.0:
            raise MimeticError(f"color_jitter must be in [0, 1), got {c.color_jitter}")
        for name in ("vision_dim", "vision_channels", "vision_keypoints"):
            if getattr(c, name) < 1:
                raise MimeticError(f"{name} must be >= 1, got {getattr(c, name)}")
        if c.vision_stride not in (1, 2):
            raise MimeticError(f"vision_stride must be 1 or 2, got {c.vision_stride}")
        self.vector_dim = int(c.obs_dim if vector_dim is None else vector_dim)  # the normalized vector input's width
        self.image_keys = [k for k, v in c.input_features.items() if v["kind"] == "image"]
        self.image_shapes = {k: tuple(c.input_features[k]["shape"]) for k in self.image_keys}
        self.crop_ratio, self.color_jitter, self.pooled = float(c.crop_ratio), float(c.color_jitter), pooled
        self.vision_dim = int(c.vision_dim) if pooled else 0
        self.pretrained = c.pretrained_backbone
        n = 0 if not self.image_keys else 1 if c.shared_backbone else len(self.image_keys)
        self.backbones = nn.ModuleList([VisionBackbone(c.vision_backbone, c.vision_pool, c.vision_dim, pooled,
                                                       c.vision_channels, c.vision_stride, c.vision_keypoints,
                                                       c.vision_norm)
                                        for _ in range(n)])
        self.output_dim = self.vector_dim + self.vision_dim * len(self.image_keys)  # the declared output size
        self.feature_channels = self.backbones[0].channels if n else 0
        # vision_film: per camera, the task vector -> a scale and a shift per feature-map channel; zero at the start,
        # so training starts from the unconditioned encoder
        self.film = None
        if getattr(c, "vision_film", False) and getattr(c, "condition", "none") != "none" and self.image_keys:
            self.film = nn.ModuleList([nn.Linear(c.task_dim, 2 * self.feature_channels) for _ in self.image_keys])
            for f in self.film:
                nn.init.zeros_(f.weight)
                nn.init.zeros_(f.bias)

    def backbone(self, i: int) -> VisionBackbone:
        return self.backbones[0 if len(self.backbones) == 1 else i]

    def load_pretrained(self, path: str | Path | None = None) -> None:
        """Load the backbone weight file (default: the config's `pretrained_backbone`) into every backbone body."""
        path = path if path is not None else self.pretrained
        if path is None:
            return
        if not self.backbones:
            raise MimeticError(f"pretrained_backbone {path} given, but the policy reads no camera")
        for b in self.backbones:
            load_backbone_weights(b.body, path)

    def crop_sizes(self, key: str) -> tuple[int, int]:
        H, W = self.image_shapes[key][:2]
        return crop_size(H, self.crop_ratio), crop_size(W, self.crop_ratio)

    def prepare(self, key: str, frames: torch.Tensor) -> torch.Tensor:
        """(B, To, H, W, 3) uint8 -> (B*To, 3, h, w) float: fixed scaling, crop (random if training), jitter
        (training)."""
        from mimetic.data.augment import center_crop, random_crop
        from mimetic.policies.base import normalize_images

        if frames.dtype != torch.uint8:
            raise MimeticError(f"camera feature {key!r} must be uint8 frames, got {frames.dtype}")
        if tuple(frames.shape[2:]) != self.image_shapes[key]:
            raise MimeticError(f"camera feature {key!r}: expected frames of shape {self.image_shapes[key]}, got "
                               f"{tuple(frames.shape[2:])}")
        x = normalize_images(frames)  # (B, To, 3, H, W) in [-1, 1]
        size = self.crop_sizes(key)
        if size != tuple(x.shape[-2:]):
            x = random_crop(x, size, None) if self.training else center_crop(x, size)
        if self.training and self.color_jitter > 0:
            x = color_jitter(x, self.color_jitter)
        return x.reshape(-1, *x.shape[2:])

    def _map(self, i: int, key: str, frames: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """Camera i's feature map (B*To, C, h, w); with vision FiLM and a task (B, task_dim), each channel scaled by
        1 + gamma and shifted by beta, the task's."""
        fmap = self.backbone(i).body(self.prepare(key, frames))
        if self.film is not None and task is not None:
            film = self.film[i](task.to(fmap.dtype)).repeat_interleave(frames.shape[1], 0)  # (B*To, 2C)
            gamma, beta = film[:, :, None, None].chunk(2, 1)
            fmap = fmap * (1 + gamma) + beta
        return fmap

    def feature_maps(self, images: dict[str, torch.Tensor], task: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Each camera's backbone feature map before pooling, (B, To, C, h, w), in `image_keys` order."""
        out = []
        for i, key in enumerate(self.image_keys):
            frames = images[key]
            fmap = self._map(i, key, frames, task)
            out.append(fmap.reshape(*frames.shape[:2], *fmap.shape[1:]))
        return out

    def forward(self, obs_n: torch.Tensor, images: dict[str, torch.Tensor] | None = None,
                task: torch.Tensor | None = None) -> torch.Tensor:
        """`task` (B, task_dim): the task vectors, which FiLM the feature maps when `vision_film` is on."""
        if not self.image_keys or not self.pooled:
            return obs_n
        feats = [obs_n] if self.vector_dim else []
        for i, key in enumerate(self.image_keys):
            frames = images[key]
            feats.append(self.backbone(i).head(self._map(i, key, frames, task)).reshape(*frames.shape[:2], -1))
        return feats[0] if len(feats) == 1 else torch.cat(feats, dim=-1)


def color_jitter(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Random brightness and contrast factors in [1 - strength, 1 + strength], one pair per sample (dimension 0),
    on images in [-1, 1] (B, ..., C, H, W); drawn on the CPU from torch's global generator."""
    B = x.shape[0]
    f = (1 + strength * (2 * torch.rand(2, B) - 1)).to(x.device)
    shape = (B,) + (1,) * (x.ndim - 1)
    x01 = (x + 1) / 2 * f[0].view(shape)  # brightness
    mean = x01.mean(dim=(-3, -2, -1), keepdim=True)
    x01 = ((x01 - mean) * f[1].view(shape) + mean).clamp(0, 1)  # contrast
    return x01 * 2 - 1
