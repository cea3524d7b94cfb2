import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import make_episode
from mimetic.data import Dataset
from mimetic.errors import MimeticError


def test_roundtrip_and_append(tmp_path):
    eps = [make_episode(T, seed=T, task="t", extras={"who": np.arange(T)}) for T in (4, 6)]
    ds = Dataset.create(tmp_path / "ds", eps, env="reach", fps=10)
    ds.append([make_episode(3, seed=9, task="u", extras={"who": np.zeros(3, int)})])
    back = Dataset.load(tmp_path / "ds")
    assert back.num_episodes == 3 and back.num_frames == 13
    assert list(back.episode_lengths()) == [4, 6, 3]
    assert back.tasks == ["t", "u"] and back.episode(2).task == "u"
    np.testing.assert_array_equal(back.episode(1).observations, eps[1].observations)
    np.testing.assert_array_equal(back.episode(0).extras["who"], np.arange(4))
    assert back.env_name == "reach"
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == 13
    # LeRobot's loader checks timestamps = frame_index / fps
    import pyarrow.parquet as pq

    import pyarrow as pa

    files = sorted((tmp_path / "ds/data").glob("chunk-*/file-*.parquet"))
    assert len(files) == 2  # the append wrote a new file: nothing already written was rewritten
    t = pa.concat_tables([pq.read_table(f) for f in files]).to_pydict()
    assert np.allclose(t["timestamp"], np.array(t["frame_index"]) / 10)
    assert t["index"] == list(range(13))
    stats = json.loads((tmp_path / "ds/meta/stats.json").read_text())
    assert stats["observation.state"]["count"] == [13]


def test_nan_and_shape_rejected_without_damage(tmp_path):
    ds = Dataset.create(tmp_path / "ds", [make_episode(4)])
    before = {p: p.read_bytes() for p in (tmp_path / "ds").rglob("*") if p.is_file()}
    bad = make_episode(4, seed=1)
    bad.observations[2, 1] = np.nan
    with pytest.raises(MimeticError, match="NaN"):
        ds.append([make_episode(3, seed=2), bad])
    with pytest.raises(MimeticError, match="shape"):
        ds.append([make_episode(3, d=5)])
    after = {p: p.read_bytes() for p in (tmp_path / "ds").rglob("*") if p.is_file()}
    assert before == after
    assert Dataset.load(tmp_path / "ds").num_episodes == 1


def test_create_refuses_existing_and_empty(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(MimeticError, match="not empty"):
        Dataset.create(tmp_path / "x", [make_episode()])
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    with pytest.raises(MimeticError, match="no episodes"):
        Dataset.create(tmp_path / "y", [])
    assert not (tmp_path / "y").exists()


def test_create_raced_by_another_writer_keeps_its_data(tmp_path, monkeypatch):
    # two processes collecting into one new folder: the one that finishes second gets a one-line error and the
    # first one's dataset stays whole (it used to be a raw OSError from the rename)
    root, real_append, other = tmp_path / "ds", Dataset.append, []

    def append_then_race(self, episodes, meta=None):
        real_append(self, episodes, meta=meta)
        if not other:  # the other writer finishes while this one is still writing
            other.append(True)
            Dataset.create(root, [make_episode(3, seed=7)])

    monkeypatch.setattr(Dataset, "append", append_then_race)
    with pytest.raises(MimeticError, match="another process wrote it meanwhile"):
        Dataset.create(root, [make_episode(4)])
    monkeypatch.undo()
    back = Dataset.load(root)
    assert back.num_episodes == 1 and list(back.episode_lengths()) == [3]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no staging folder left behind


def test_interrupted_append_keeps_committed_episodes(tmp_path, monkeypatch):
    from mimetic.data import dataset as dsmod

    ds = Dataset.create(tmp_path / "ds", [make_episode(4), make_episode(5, seed=1)])
    real = dsmod.atomic_write_json

    def crash_on_commit(path, obj):
        if path.name == "info.json":
            raise KeyboardInterrupt  # killed just before the commit point
        return real(path, obj)

    monkeypatch.setattr(dsmod, "atomic_write_json", crash_on_commit)
    with pytest.raises(KeyboardInterrupt):
        ds.append([make_episode(7, seed=3)])
    monkeypatch.setattr(dsmod, "atomic_write_json", real)
    back = Dataset.load(tmp_path / "ds")
    assert back.num_episodes == 2 and back.num_frames == 9
    back.append([make_episode(2, seed=4)])
    again = Dataset.load(tmp_path / "ds")
    assert list(again.episode_lengths()) == [4, 5, 2]


def test_kill_during_collect_leaves_loadable_dataset(tmp_path):
    out = tmp_path / "demos"
    proc = subprocess.Popen([sys.executable, "-m", "mimetic.cli", "-q", "collect", "reach", "--episodes", "100000",
                             "--out", str(out), "--num-envs", "4"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "meta/info.json").exists():
        time.sleep(0.05)
    time.sleep(1.0)  # let it append many more batches, then kill it mid-write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ds = Dataset.load(out)
    assert ds.num_episodes >= 4
    assert np.all(ds.episode_success())  # the reach expert always succeeds, so every episode is complete
    ends = ds.dones.nonzero()[0]
    np.testing.assert_array_equal(ends + 1, ds.episode_ends)


@pytest.mark.parametrize("damage, match", [
    (lambda r: (r / "meta/info.json").write_text("{not json"), "not valid JSON"),
    (lambda r: (r / "meta/info.json").unlink(), "info.json is missing"),
    (lambda r: (r / "data/chunk-000/file-000.parquet").write_bytes(b"garbage"), "not a readable parquet"),
    (lambda r: (r / "meta/episodes/chunk-000/file-000.parquet").unlink(), "no episode files"),
])
def test_corrupt_dataset_errors(tmp_path, damage, match):
    Dataset.create(tmp_path / "ds", [make_episode(4)])
    damage(tmp_path / "ds")
    with pytest.raises(MimeticError, match=match):
        Dataset.load(tmp_path / "ds")


def test_missing_dataset(tmp_path):
    with pytest.raises(MimeticError, match="not found"):
        Dataset.load(tmp_path / "nope")


def test_windows_pad_at_boundaries():
    from mimetic.data.windows import window_index

    w = window_index(np.array([0, 3]), np.array([3, 5]), n_obs_steps=2, horizon=3)
    np.testing.assert_array_equal(w.obs_idx[3], [3, 3])  # history never crosses into the previous episode
    np.testing.assert_array_equal(w.act_idx[1], [1, 2, 2])
    np.testing.assert_array_equal(w.act_pad[1], [False, False, True])
    np.testing.assert_array_equal(w.act_pad[4], [False, True, True])


def test_future_frames_stay_inside_their_episode():
    from mimetic.data.windows import WindowSampler, window_index

    w = window_index(np.array([0, 3]), np.array([3, 8]), future=(1, 3))
    np.testing.assert_array_equal(w.future_idx, [[1, 2], [2, 2], [2, 2], [4, 6], [5, 7], [6, 7], [7, 7], [7, 7]])
    assert window_index(np.array([0]), np.array([3])).future_idx is None
    obs = np.arange(8, dtype=np.float32)[:, None] * 10
    batch = WindowSampler(obs, np.zeros((8, 1), np.float32), w).batch(torch.tensor([0, 4]))
    np.testing.assert_array_equal(batch["future_obs"][..., 0].numpy(), [[10, 20], [50, 70]])
