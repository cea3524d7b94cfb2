"""Sequence windows: observation histories and action chunks, with pad masks.

For every frame t of episode [s, e):
- observation indices  t-To+1 .. t, clipped to the episode start (the first observation repeats);
- action indices       t+start .. t+start+H-1, clipped into the episode (edge actions repeat),
  with pad[h] = True where the unclipped index falls outside the episode.

All index arrays are built once with numpy; a batch is then one fancy-indexing operation on
tensors, so data loading never bounds training speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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


class WindowSampler:
    """Random batches of windows from in-memory arrays of frames."""

    def __init__(self, observations: np.ndarray, actions: np.ndarray, index: WindowIndex, frames: np.ndarray | None = None):
        self.obs = torch.as_tensor(observations, dtype=torch.float32)
        self.act = torch.as_tensor(actions, dtype=torch.float32)
        rows = np.arange(len(index.obs_idx)) if frames is None else frames
        self.obs_idx = torch.as_tensor(index.obs_idx[rows])
        self.act_idx = torch.as_tensor(index.act_idx[rows])
        self.act_pad = torch.as_tensor(index.act_pad[rows])

    def __len__(self) -> int:
        return len(self.obs_idx)

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "obs": self.obs[self.obs_idx[rows]],
            "action": self.act[self.act_idx[rows]],
            "action_pad": self.act_pad[rows],
        }

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        rows = torch.randint(len(self), (batch_size,), generator=generator)
        return self.batch(rows)

    def iterate(self, batch_size: int):
        for i in range(0, len(self), batch_size):
            yield self.batch(torch.arange(i, min(i + batch_size, len(self))))
