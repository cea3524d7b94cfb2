"""Data augmentation applied on the fly to training batches.

- `obs_noise`: Gaussian noise on the observations, with its standard deviation given in the
  policy's *normalized* units (so 0.01 means 1% of each dimension's spread, whatever its scale).
  The noise is added to the normalized observation and mapped back to raw units, because
  `Policy.loss` takes raw observations and normalizes them itself.
- `random_crop`: random crops of image tensors (..., C, H, W), one offset per sample; the
  matching `center_crop` is what a policy uses at inference. Policies crop inside their observation
  encoder (`mimetic.policies.encoders`: random while training, center at inference, `crop_ratio`), so
  train and eval never disagree; the trainer's `--random-crop SIZE` sets that crop (see
  `mimetic.algos.trainer`). `augment_batch(crop=...)` crops a batch's `image` entry (a helper for
  custom loops; the trainer does not use it).

Every random draw comes from a `torch.Generator` (an explicit one, or torch's global CPU generator,
which the trainer seeds and checkpoints), drawn on the CPU and moved to the data's device, so a run
(and its resume) is reproducible on any device.
"""

from __future__ import annotations

import torch

from mimetic.errors import MimeticError


def add_obs_noise(obs: torch.Tensor, std: float, normalizer: torch.nn.Module, generator: torch.Generator) -> torch.Tensor:
    """Raw observations (..., d) plus N(0, std^2) noise in the units of `normalizer` (a fitted `Normalizer`)."""
    if std < 0:
        raise MimeticError(f"obs_noise must be >= 0, got {std}")
    if std == 0:
        return obs
    noise = torch.randn(obs.shape, generator=generator, dtype=obs.dtype).to(obs.device) * std
    return normalizer.inverse(normalizer(obs) + noise)


def _crop_size(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def random_crop(images: torch.Tensor, size: int | tuple[int, int], generator: torch.Generator | None) -> torch.Tensor:
    """Crop each image of a batch (B, ..., C, H, W) to `size` (h, w) at its own random offset.

    Every leading batch entry (dimension 0) gets one offset, shared by its frames and channels
    (an observation history stays aligned). Offsets come from `generator` (None: torch's global CPU
    generator), on the CPU; the crop runs on the images' device.
    """
    if images.ndim < 4:
        raise MimeticError(f"random_crop expects images shaped (B, ..., C, H, W), got shape {tuple(images.shape)}")
    h, w = _crop_size(size)
    H, W = images.shape[-2:]
    if not (0 < h <= H and 0 < w <= W):
        raise MimeticError(f"crop size {(h, w)} does not fit images of size {(H, W)}")
    B = images.shape[0]
    dev = images.device
    top = torch.randint(0, H - h + 1, (B,), generator=generator).to(dev)
    left = torch.randint(0, W - w + 1, (B,), generator=generator).to(dev)
    rows = (top[:, None] + torch.arange(h, device=dev))  # (B, h)
    cols = (left[:, None] + torch.arange(w, device=dev))  # (B, w)
    flat = images.reshape(B, -1, H, W)
    idx_b = torch.arange(B, device=dev)[:, None, None, None]
    idx_c = torch.arange(flat.shape[1], device=dev)[None, :, None, None]
    out = flat[idx_b, idx_c, rows[:, None, :, None], cols[:, None, None, :]]
    return out.reshape(*images.shape[:-2], h, w)


def center_crop(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """The deterministic crop used at inference for a policy trained with `random_crop`."""
    h, w = _crop_size(size)
    H, W = images.shape[-2:]
    if not (0 < h <= H and 0 < w <= W):
        raise MimeticError(f"crop size {(h, w)} does not fit images of size {(H, W)}")
    top, left = (H - h) // 2, (W - w) // 2
    return images[..., top : top + h, left : left + w]


def augment_batch(batch: dict[str, torch.Tensor], *, obs_noise: float, crop: int, normalizer: torch.nn.Module,
                  generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The trainer's augmentation step: a new batch dict (inputs are not modified). Draws nothing when both are off."""
    if obs_noise < 0 or crop < 0:
        raise MimeticError(f"augmentation: obs_noise and random_crop must be >= 0, got {obs_noise} and {crop}")
    if obs_noise == 0 and crop == 0:
        return batch
    out = dict(batch)
    if obs_noise > 0:
        out["obs"] = add_obs_noise(batch["obs"], obs_noise, normalizer, generator)
    if crop > 0:
        if "image" not in batch:
            raise MimeticError("random_crop needs image observations, but the training batches hold states only")
        out["image"] = random_crop(batch["image"], crop, generator)
    return out
