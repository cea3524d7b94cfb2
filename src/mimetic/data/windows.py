"""Sequence windows: observation histories and action chunks, with pad masks.

For every frame t of episode [s, e):
- observation indices  t-To+1 .. t, clipped to the episode start (the first observation repeats);
- action indices       t+start .. t+start+H-1, clipped into the episode (edge actions repeat),
  with pad[h] = True where the unclipped index falls outside the episode;
- optionally (`future`, offsets k), the frames t+k clipped to the episode's last: a batch then holds the vector
  features there as `future_obs` (B, K, d), the target of a policy's future-state auxiliary loss.

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
    future_idx: np.ndarray | None = None  # (N, K): the frames `future` steps ahead, clipped to the episode's last


def window_index(episode_starts: np.ndarray, episode_ends: np.ndarray, n_obs_steps: int = 1, horizon: int = 1,
                 action_start: int = 0, future: tuple[int, ...] = ()) -> WindowIndex:
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
    future_idx = np.minimum(t[:, None] + np.asarray(future, np.int64)[None, :], e[:, None] - 1) if len(future) else None
    return WindowIndex(obs_idx.astype(np.int64), act_idx.astype(np.int64), act_pad,
                       future_idx.astype(np.int64) if future_idx is not None else None)


def task_balanced_weights(tasks: np.ndarray) -> np.ndarray | None:
    """Sampling weights that give every task the same share of the draws, whatever its number of frames (each
    frame's weight is 1 / its task's frame count); None (draw frames alike) when all frames share one task."""
    tasks = np.asarray(tasks, np.int64).reshape(-1)
    values, inverse, counts = np.unique(tasks, return_inverse=True, return_counts=True)
    if len(values) < 2:
        return None
    return 1.0 / counts[inverse]


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


def demo_indices(length: int, frames: int) -> np.ndarray:
    """`frames` frame indices spread evenly over an episode of `length` frames, first and last included (what a
    demo-conditioned policy reads of a demonstration, in training and at evaluation)."""
    return np.rint(np.linspace(0, max(0, length - 1), frames)).astype(np.int64)


class DemoBank:
    """Demonstrations for demo-conditioned training: a window of episode e gets `frames` frames, spread evenly,
    of another episode of e's task drawn from `pool` (e itself only when its task has no other episode there).

    `vectors` (N, d) and `actions` (N, a) are the dataset's frames, `starts` / `ends` its episodes' frame
    ranges, `episode_task` each episode's task index, `pool` the episodes demonstrations may come from."""

    def __init__(self, vectors: torch.Tensor, actions: torch.Tensor, starts: np.ndarray, ends: np.ndarray,
                 episode_task: np.ndarray, pool: np.ndarray, frames: int):
        self.vectors, self.actions = vectors, actions
        self.frames = torch.as_tensor(np.stack([starts[e] + demo_indices(ends[e] - starts[e], frames)
                                                for e in range(len(starts))]) if len(starts) else
                                      np.zeros((0, frames), np.int64))
        self.episode_task = torch.as_tensor(np.asarray(episode_task, np.int64))
        pool = np.sort(np.asarray(pool, np.int64))
        tasks = int(episode_task.max()) + 1 if len(episode_task) else 0
        members = [pool[episode_task[pool] == t] for t in range(tasks)]
        width = max([1] + [len(m) for m in members])
        self.members = torch.as_tensor(np.stack([np.pad(m, (0, width - len(m))) for m in members]) if tasks else
                                       np.zeros((0, 1), np.int64))
        self.count = torch.as_tensor([len(m) for m in members], dtype=torch.long)
        position = np.full(len(starts), -1, np.int64)  # each pooled episode's place among its task's members
        for m in members:
            position[m] = np.arange(len(m))
        self.position = torch.as_tensor(position)

    def draw(self, episodes: torch.Tensor, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """The demonstrations of rows from `episodes`, choosing with uniforms `u` in [0, 1): each distinct one once,
        demo_obs (U, K, d) and demo_action (U, K, a), and demo_row (B,), the row's demonstration among them (a batch
        of 256 rows draws from a few dozen episodes: the policy encodes each once)."""
        task = self.episode_task[episodes]
        count, pos = self.count[task], self.position[episodes]
        inside = pos >= 0
        others = torch.where(inside, count - 1, count)  # the episode's own demonstration is skipped
        j = (u * others.clamp(min=1)).long().clamp(max=(others - 1).clamp(min=0))
        j = torch.where(inside & (j >= pos), j + 1, j)  # step over the row's own episode
        chosen = torch.where(others > 0, self.members[task, j.clamp(max=self.members.shape[1] - 1)], episodes)
        unique, row = torch.unique(chosen, return_inverse=True)
        frames = self.frames[unique]  # (U, K)
        return {"demo_obs": self.vectors[frames], "demo_action": self.actions[frames], "demo_row": row}


class WindowSampler:
    """Random batches of windows from in-memory frames.

    `frames`: key -> (N, ...) array per observation feature (vector features float, camera features uint8
    (N, H, W, 3)), in the order the policy reads them; a bare (N, d) array is `observation.state`.
    `rows`: the frames whose windows are sampled (default all).
    `weights`: each row's chance of being drawn (default: all rows alike), e.g. `task_balanced_weights`.
    """

    def __init__(self, frames, actions: np.ndarray, index: WindowIndex, rows: np.ndarray | None = None,
                 task: np.ndarray | None = None, demos: DemoBank | None = None, episode: np.ndarray | None = None,
                 aux_state: np.ndarray | None = None, weights: np.ndarray | None = None):
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
        # (N, d_aux) features the policy does not read but learns to predict (batch["aux_state"], at the current frame)
        self.aux_state = torch.as_tensor(np.asarray(aux_state, np.float32)) if aux_state is not None else None
        if self.aux_state is not None and len(self.aux_state) != n:
            raise MimeticError(f"windows: aux_state has {len(self.aux_state)} frames but there are {n} actions")
        rows = np.arange(len(index.obs_idx)) if rows is None else rows
        self.obs_idx = torch.as_tensor(index.obs_idx[rows])
        self.act_idx = torch.as_tensor(index.act_idx[rows])
        self.act_pad = torch.as_tensor(index.act_pad[rows])
        self.future_idx = torch.as_tensor(index.future_idx[rows]) if index.future_idx is not None else None
        self.weights = None if weights is None else torch.as_tensor(np.asarray(weights, np.float64))
        if self.weights is not None and (len(self.weights) != len(rows) or not bool((self.weights >= 0).all())
                                         or float(self.weights.sum()) <= 0):
            raise MimeticError(f"windows: weights must be {len(rows)} non-negative numbers, not all 0")
        self._pending = None  # a prefetch: (rows, thread, result dict)
        # task conditioning: each frame's task index (batch["task"]), or demonstrations drawn per row's episode
        self.task = torch.as_tensor(np.asarray(task, np.int64)) if task is not None else None
        self.demos = demos
        self.episode = torch.as_tensor(np.asarray(episode, np.int64)) if episode is not None else None
        if demos is not None and self.episode is None:
            raise ValueError("WindowSampler: demos need each frame's episode")

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

    def batch(self, rows: torch.Tensor, demo_u: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The windows of `rows`; `demo_u` (uniforms, one per row) chooses their demonstrations (default: a fixed draw)."""
        obs_idx = self.obs_idx[rows]
        out = {"obs": self.obs[obs_idx]}
        ready = self._collect(torch.as_tensor(rows)) or {}
        out.update({k: frames[obs_idx] if isinstance(frames, torch.Tensor)
                    else ready[k] if k in ready else torch.from_numpy(frames[obs_idx.numpy()])
                    for k, frames in self.images.items()})
        out["action"] = self.act[self.act_idx[rows]]
        out["action_pad"] = self.act_pad[rows]
        if self.future_idx is not None:
            out["future_obs"] = self.obs[self.future_idx[rows]]  # (B, K, d): the vector features K times ahead
        now = obs_idx[:, -1]  # each window's current frame
        if self.aux_state is not None:
            out["aux_state"] = self.aux_state[now]
        if self.task is not None:
            out["task"] = self.task[now]
        if self.demos is not None:
            u = demo_u if demo_u is not None else torch.rand(len(now), generator=torch.Generator().manual_seed(0))
            out.update(self.demos.draw(self.episode[now], u))
        return out

    def sample(self, batch_size: int, generator: torch.Generator, share=None) -> dict[str, torch.Tensor]:
        """A random batch; `share` maps the rows drawn to this process's part of them (distributed training:
        every rank draws the same global batch and keeps its own share). With cameras read lazily, the rows the
        generator will draw next (if nothing else draws from it first) are decoded in the background meanwhile."""
        rows = self._draw(batch_size, generator)
        # the demonstrations' draws are made for the whole global batch too, so every rank's generator stays in step
        u = torch.rand(batch_size, generator=generator) if self.demos is not None else None
        if share is not None:
            rows, u = share(rows), (share(u) if u is not None else None)
        out = self.batch(rows, u)
        if any(not isinstance(f, torch.Tensor) for f in self.images.values()):
            peek = torch.Generator().manual_seed(0)
            peek.set_state(generator.get_state())  # a copy: `generator` itself draws nothing more here
            rows = self._draw(batch_size, peek)
            self.prefetch(rows if share is None else share(rows))
        return out

    def _draw(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        if self.weights is None:
            return torch.randint(len(self), (batch_size,), generator=generator)
        return torch.multinomial(self.weights, batch_size, replacement=True, generator=generator)

    def iterate(self, batch_size: int):
        for i in range(0, len(self), batch_size):
            yield self.batch(torch.arange(i, min(i + batch_size, len(self))))
