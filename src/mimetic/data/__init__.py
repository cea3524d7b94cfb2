"""Demonstrations: the Episode record and the on-disk Dataset (LeRobot v3 layout)."""

from mimetic.data.dataset import Dataset
from mimetic.data.episode import Episode

__all__ = ["Dataset", "Episode"]
