"""Progress bars: tqdm on a terminal, silent otherwise (logs and CI stay readable)."""

from __future__ import annotations


def progress_bar(enabled: bool = True, **kwargs):
    from tqdm import tqdm

    return tqdm(disable=None if enabled else True, leave=False, **kwargs)
