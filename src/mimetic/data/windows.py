"""Sequence windows: observation histories and action chunks, with pad masks.

For every frame t of episode [s, e):
- observation indices  t-To+1 .. t, clipped to the episode start (the first observation repeats);
- action indices       t+start .. t+start+H-1, clipped into the episode (edge actions repeat),
  with pad[h] = True where the unclipped index falls outside the episode.

All index arrays are built once with numpy; a batch is then one fancy-indexing operation on
tensors, so data loading never bounds training speed.

Frames are given per observation feature (key -> array). A batch holds the vector features
concatenated in the order given as `obs` (B, To, d) float32 (what policies read), and each camera
feature under its own key as (B, To, H, W, 3) uint8: frames stay uint8 and are never copied to float
(the tensors share the dataset's memory); an encoder scales them (`policies.base.normalize_images`).
A camera may also be an array-like that decodes on demand (a lazy dataset's `LazyFrames`): a batch then
decodes just its own frames, so a DDP rank reads only its share of each global batch, and `prefetch(rows)`
decodes the next batch's frames in a background thread while the current step trains (PyAV decodes
without the GIL; `sample` prefetches the rows its generator will draw next): `batch(rows)` takes them
when the rows are the same, and decodes them itself otherwise, so batches never depend on prefetching.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from mimetic.errors import MimeticError
from mimetic.features import STATE, is_image_key


@dataclass
class WindowIndex:
    obs_idx: np.ndarray  # (N, To)
    act_idx: np.ndarray  # (N, H)
    act_pad: np.ndarray  # (N, H) bool, True = padding


def window_index(episode_starts: np.ndarray, episode_ends: np.ndarray, n_obs_steps: int = 1, horizon: int = 1,
                 action_start: int = 0) -> WindowIndex:
    lengths = episode_ends - episode_starts
    t = np.arange(int(lengths.sum()))
    s = np.repeat(episode_starts, lengths)
    e = np.repeat(episode_ends, lengths)
    t = t + s[0] if len(s) else t  # frames are contiguous from the first episode start
    obs_raw = t[:, None] + np.arange(-n_obs_steps + 1, 1)[None, :]
    obs_idx = np.clip(obs_raw, s[:, None], None)
    act_raw = t[:, None] + action_start + np.arange(horizon)[None, :]
    act_idx = np.clip(act_raw, s[:, None], e[:, None] - 1)
    act_pad = (act_raw < s[:, None]) | (act_raw >= e[:, None])
    return WindowIndex(obs_idx.astype(np.int64), act_idx.astype(np.int64), act_pad)


def vector_input(frames: Mapping[str, np.ndarray]) -> np.ndarray:
    """The vector features of `frames` (key -> (N, ...)), flattened and concatenated in order: (N, d) float32."""
    vec = [np.asarray(a, dtype=np.float32).reshape(len(a), -1) for k, a in frames.items() if not is_image_key(k)]
    if not vec:
        n = len(next(iter(frames.values()))) if frames else 0
        return np.zeros((n, 0), np.float32)
    return vec[0] if len(vec) == 1 else np.concatenate(vec, axis=1)


def _shared_tensor(arr: np.ndarray) -> torch.Tensor:
    """A tensor on the same memory (read-only arrays too: batches only ever read from it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(arr)


class WindowSampler:
    """Random batches of windows from in-memory frames.

    `frames`: key -> (N, ...) array per observation feature (vector features float, camera features uint8
    (N, H, W, 3)), in the order the policy reads them; a bare (N, d) array is `observation.state`.
    `rows`: the frames whose windows are sampled (default all).
    """

    def __init__(self, frames, actions: np.ndarray, index: WindowIndex, rows: np.ndarray | None = None):
        frames = dict(frames) if isinstance(frames, Mapping) else {STATE: frames}
        n = len(actions)
        for key, arr in frames.items():
            if len(arr) != n:
                raise MimeticError(f"windows: {key!r} has {len(arr)} frames but there are {n} actions")
            if is_image_key(key) and (np.dtype(arr.dtype) != np.uint8 or len(arr.shape) != 4):
                raise MimeticError(f"windows: {key!r} must be uint8 frames (N, H, W, 3), got {arr.dtype} "
                                   f"{tuple(arr.shape)}")
        self.obs = _shared_tensor(vector_input(frames))
        # cameras in memory: tensors on the same memory; lazy ones (decoded when indexed): kept as they are
        self.images = {k: _shared_tensor(a) if isinstance(a, np.ndarray) else a
                       for k, a in frames.items() if is_image_key(k)}
        self.act = torch.as_tensor(actions, dtype=torch.float32)
        rows = np.arange(len(index.obs_idx)) if rows is None else rows
        self.obs_idx = torch.as_tensor(index.obs_idx[rows])
        self.act_idx = torch.as_tensor(index.act_idx[rows])
        self.act_pad = torch.as_tensor(index.act_pad[rows])
        self._pending = None  # a prefetch: (rows, thread, result dict)

    def __len__(self) -> int:
        return len(self.obs_idx)

    def prefetch(self, rows: torch.Tensor) -> None:
        """Start decoding the lazily read camera frames of `rows` in a background thread (nothing to do for frames
        in memory); `batch(rows)` with the same rows takes them."""
        lazy = {k: f for k, f in self.images.items() if not isinstance(f, torch.Tensor)}
        self._collect()
        if not lazy:
            return
        rows = torch.as_tensor(rows).clone()
        idx, result = self.obs_idx[rows].numpy(), {}

        def decode():
            try:
                for k, frames in lazy.items():
                    result[k] = torch.from_numpy(frames[idx])
            except BaseException as e:  # raised by batch() if it wants these rows
                result["error"] = e

        thread = threading.Thread(target=decode, name="mimetic-prefetch", daemon=True)
        thread.start()
        self._pending = (rows, thread, result)

    def _collect(self, rows: torch.Tensor | None = None) -> dict | None:
        """The prefetched frames if they are those of `rows` (waiting for them); the prefetch is used up either way."""
        if self._pending is None:
            return None
        pending, thread, result = self._pending
        self._pending = None
        thread.join()
        if rows is None or pending.shape != rows.shape or not torch.equal(pending, rows):
            return None
        if "error" in result:
            raise result["error"]
        return result

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        obs_idx = self.obs_idx[rows]
        out = {"obs": self.obs[obs_idx]}
        ready = self._collect(torch.as_tensor(rows)) or {}
        out.update({k: frames[obs_idx] if isinstance(frames, torch.Tensor)
                    else ready[k] if k in ready else torch.from_numpy(frames[obs_idx.numpy()])
                    for k, frames in self.images.items()})
        out["action"] = self.act[self.act_idx[rows]]
        out["action_pad"] = self.act_pad[rows]
        return out

    def sample(self, batch_size: int, generator: torch.Generator, share=None) -> dict[str, torch.Tensor]:
        """A random batch; `share` maps the rows drawn to this process's part of them (distributed training:
        every rank draws the same global batch and keeps its own share). With cameras read lazily, the rows the
        generator will draw next (if nothing else draws from it first) are decoded in the background meanwhile."""
        rows = torch.randint(len(self), (batch_size,), generator=generator)
        out = self.batch(rows if share is None else share(rows))
        if any(not isinstance(f, torch.Tensor) for f in self.images.values()):
            peek = torch.Generator().manual_seed(0)
            peek.set_state(generator.get_state())  # a copy: `generator` itself draws nothing more here
            rows = torch.randint(len(self), (batch_size,), generator=peek)
            self.prefetch(rows if share is None else share(rows))
        return out

    def iterate(self, batch_size: int):
        for i in range(0, len(self), batch_size):
            yield self.batch(torch.arange(i, min(i + batch_size, len(self))))
