"""Datasets larger than memory: camera frames decoded on demand through a bounded cache (mimetic.data.lazy)."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mimetic.algos import bc
from mimetic.data import Dataset, Episode
from mimetic.data.lazy import FrameCache, LazyFrames, frame_cache_bytes
from mimetic.errors import MimeticError

CAM = "observation.images.top"
STATE = "observation.state"


def camera_episode(T, seed, size=16):
    """Frames that say which episode and step they are (flat blocks of brightness 32 * digit), on a gradient."""
    rng = np.random.default_rng(seed)
    grad = np.linspace(0, 200, size).astype(np.uint8)
    frames = np.zeros((T, size, size, 3), np.uint8)
    frames[..., 0] = grad[None, None, :]
    for t in range(T):
        ident = 12 * seed + t
        frames[t, size // 2:, :, 2] = 32 * (ident % 8)
        frames[t, size // 2:, :, 1] = 32 * (ident // 8 % 8)
    return Episode({STATE: rng.normal(size=(T, 3)), CAM: frames}, rng.uniform(-1, 1, (T, 2)), np.zeros(T),
                   np.arange(T) == T - 1)


def build(root, storage="video", codec="av1", appends=2):
    """A camera dataset written by a create and `appends` appends: several video / data files."""
    ds = Dataset.create(root, [camera_episode(12, 0), camera_episode(9, 1)], fps=10, image_storage=storage,
                        video_codec=codec)
    for a in range(appends):
        ds.append([camera_episode(7 + a, 2 + 2 * a), camera_episode(10, 3 + 2 * a)])
    return root


def file_hashes(root):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------ frames
@pytest.mark.parametrize("storage,codec", [("video", "av1"), ("video", "h264"), ("png", None)])
def test_lazy_frames_equal_eager_frames(tmp_path, storage, codec):
    root = build(tmp_path / "ds", storage, codec or "av1")
    before = file_hashes(root)
    eager = Dataset.load(root, lazy=False)
    lazy = Dataset.load(root, lazy=True, frame_cache_mb=0.02)  # 6 frames of 16x16: evicts all the time
    assert not eager.lazy and lazy.lazy and eager.frame_cache is None
    want, got = eager.frames(CAM), lazy.frames(CAM)
    assert isinstance(got, LazyFrames) and got.shape == want.shape and got.dtype == np.uint8 and len(got) == len(want)
    np.testing.assert_array_equal(lazy.frames(STATE), eager.frames(STATE))
    rng = np.random.default_rng(0)
    for _ in range(15):
        idx = rng.integers(0, len(want), size=(int(rng.integers(1, 9)), 2))  # (B, To), as the window sampler asks
        np.testing.assert_array_equal(got[idx], want[idx])
        np.testing.assert_array_equal(got[torch.as_tensor(idx[:, 0])], want[idx[:, 0]])
    np.testing.assert_array_equal(got[::-1], want[::-1])  # every frame, backwards: a seek for each
    np.testing.assert_array_equal(got[-1], want[-1])
    np.testing.assert_array_equal(got[3, :, 2], want[3, :, 2])
    np.testing.assert_array_equal(got[2:9:3, 4, ..., 1], want[2:9:3, 4, ..., 1])
    np.testing.assert_array_equal(lazy.episode(3).obs[CAM], eager.episode(3).obs[CAM])
    cache = lazy.frame_cache
    assert 0 < cache.peak_nbytes <= cache.max_bytes == frame_cache_bytes(0.02) and cache.nbytes <= cache.max_bytes
    # an append to a lazy dataset reads the new frames back from its new files; the old ones stay lazy
    lazy.append([camera_episode(8, 9)])
    again = Dataset.load(root, lazy=False).frames(CAM)
    assert isinstance(lazy.frames(CAM), LazyFrames) and lazy.frames(CAM).shape == again.shape
    idx = rng.integers(0, len(again), size=40)
    np.testing.assert_array_equal(lazy.frames(CAM)[idx], again[idx])
    changed = file_hashes(root)
    assert all(changed[p] == h for p, h in before.items() if "meta" not in p.parts)  # reading wrote nothing


def test_episodes_anywhere_in_their_video_file(tmp_path):
    """LeRobot locates an episode by timestamps in its file: episodes stored out of order (the second first)
    read the same lazily as eagerly."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mimetic.data.video import decode_video, encode_video

    root = tmp_path / "ds"
    Dataset.create(root, [camera_episode(12, 0), camera_episode(9, 1)], fps=10)
    video = root / f"videos/{CAM}/chunk-000/file-000.mp4"
    frames = decode_video(video)
    encode_video(video, np.concatenate([frames[12:], frames[:12]]), 10)
    p = root / "meta/episodes/chunk-000/file-000.parquet"
    t = pq.read_table(p)
    for col, values in (("from_timestamp", [0.9, 0.0]), ("to_timestamp", [2.1, 0.9])):
        name = f"videos/{CAM}/{col}"
        t = t.set_column(t.column_names.index(name), name, pa.array(values))
    pq.write_table(t, p)
    want, got = Dataset.load(root, lazy=False).frames(CAM), Dataset.load(root, lazy=True).frames(CAM)
    idx = np.random.default_rng(1).integers(0, 21, size=30)
    np.testing.assert_array_equal(got[idx], want[idx])
    np.testing.assert_array_equal(got[:], want)


_FORKED = {}


def _frames_in_child(idx):
    return _FORKED["ds"].frames(CAM)[idx]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_a_lazy_dataset_in_worker_processes(tmp_path):
    """A lazy dataset in forked workers (a torch DataLoader's) reads through each worker's own open files; pickled
    (spawned workers) it carries its setting, not its open files or cached frames."""
    import multiprocessing
    import pickle

    root = build(tmp_path / "ds", "video", appends=1)
    ds = Dataset.load(root, lazy=True, frame_cache_mb=0.01)
    want = Dataset.load(root, lazy=False).frames(CAM)
    ds.frames(CAM)[[0, 30]]  # the parent has both files open
    idx = [np.random.default_rng(i).integers(0, len(want), 12) for i in range(4)]
    _FORKED["ds"] = ds
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            got = pool.map(_frames_in_child, idx)
    finally:
        _FORKED.clear()
    for g, i in zip(got, idx):
        np.testing.assert_array_equal(g, want[i])
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.lazy and len(copy.frame_cache) == 0 and copy.frame_cache.max_bytes == ds.frame_cache.max_bytes
    np.testing.assert_array_equal(copy.frames(CAM)[idx[0]], want[idx[0]])


def test_default_is_lazy_only_past_the_cache_setting(tmp_path, monkeypatch):
    root = build(tmp_path / "ds", "png", appends=0)  # 21 frames of 16x16x3: 16 KB decoded
    assert not Dataset.load(root).lazy  # the default 1024 MB holds them
    assert Dataset.load(root, frame_cache_mb=0.01).lazy
    monkeypatch.setenv("MIMETIC_FRAME_CACHE_MB", "0.01")
    assert Dataset.load(root).lazy and not Dataset.load(root, lazy=False).lazy
    monkeypatch.setenv("MIMETIC_FRAME_CACHE_MB", "lots")
    with pytest.raises(MimeticError, match="MIMETIC_FRAME_CACHE_MB='lots'"):
        Dataset.load(root)


def test_cache_holds_at_most_its_size():
    cache = FrameCache(10 * 768)
    for i in range(100):
        cache.put(("f", i), np.zeros((16, 16, 3), np.uint8))
        assert cache.nbytes <= cache.max_bytes
    assert len(cache) == 10 and cache.peak_nbytes == cache.max_bytes
    assert cache.get(("f", 99)) is not None and cache.get(("f", 0)) is None  # the oldest went first
    cache.put(("big", 0), np.zeros(20 * 768, np.uint8))  # larger than the whole cache: not kept
    assert cache.get(("big", 0)) is None and len(cache) == 10


# ------------------------------------------------------------------------------ training
def _train(root, lazy, out):
    ds = Dataset.load(root, lazy=lazy, frame_cache_mb=0.03)
    torch.manual_seed(0)
    cfg = bc.Config(hidden=[16], steps=4, batch_size=8, log_every=2, n_obs_steps=2, val_fraction=0.2)
    policy = bc.train(cfg, ds, out, progress=False)
    return ds, policy


def test_training_lazy_gives_the_weights_of_eager(tmp_path):
    root = build(tmp_path / "ds", "video", appends=1)
    before = file_hashes(root)
    ds_e, eager = _train(root, False, tmp_path / "eager")
    ds_l, lazy = _train(root, True, tmp_path / "lazy")
    assert not ds_e.lazy and ds_l.lazy
    se, sl = eager.state_dict(), lazy.state_dict()
    assert se.keys() == sl.keys()
    for k in se:
        assert torch.equal(se[k], sl[k]), k
    rows = [[json.loads(x) for x in (tmp_path / r / "metrics.jsonl").read_text().splitlines()] for r in ("eager", "lazy")]
    assert [r["val_loss"] for r in rows[0]] == [r["val_loss"] for r in rows[1]]  # validation read lazily too
    assert ds_l.frame_cache.misses > 0 and ds_l.frame_cache.peak_nbytes <= ds_l.frame_cache.max_bytes
    assert file_hashes(root) == before  # training read the dataset and wrote nothing to it


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="--nproc 2 needs two cores")
def test_ddp_ranks_reading_lazily_train_as_eager_ones(tmp_path):
    """Two training processes (gloo), each decoding only the windows of its share of every batch, end with the
    weights of two processes that decoded the whole dataset at load."""
    from safetensors.torch import load_file

    root = build(tmp_path / "ds", "video", appends=1)
    runs = {}
    for mode, cache in (("lazy", "0.01"), ("eager", "100")):
        out = subprocess.run([sys.executable, "-m", "mimetic", "-q", "train", "bc", "--data", str(root), "--out",
                              str(tmp_path / mode), "--nproc", "2", "--steps", "3", "--batch-size", "8", "--hidden", "8",
                              "--n-obs-steps", "2", "--frame-cache-mb", cache], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        runs[mode] = load_file(tmp_path / mode / "model.safetensors")
    assert runs["lazy"].keys() == runs["eager"].keys()
    assert all(torch.equal(runs["lazy"][k], runs["eager"][k]) for k in runs["lazy"])


def test_a_batch_decodes_only_its_own_frames(tmp_path):
    """What makes a DDP rank read only its share: a batch of windows decodes the frames of those windows (and
    at most the keyframe before each: AV1 g=2), nothing up front."""
    from mimetic.data.windows import WindowSampler, window_index

    ds = Dataset.load(build(tmp_path / "ds", "video", appends=1), lazy=True, frame_cache_mb=1)
    index = window_index(ds.episode_starts, ds.episode_ends, n_obs_steps=2)
    sampler = WindowSampler({STATE: ds.frames(STATE), CAM: ds.frames(CAM)}, ds.actions, index)
    assert len(ds.frame_cache) == 0  # building the sampler decoded nothing
    rows = torch.tensor([3, 25, 30])
    batch = sampler.batch(rows)
    wanted = np.unique(index.obs_idx[rows.numpy()])
    assert batch[CAM].dtype == torch.uint8 and batch[CAM].shape == (3, 2, 16, 16, 3)
    np.testing.assert_array_equal(batch[CAM].numpy(), Dataset.load(tmp_path / "ds", lazy=False).frames(CAM)[index.obs_idx[rows.numpy()]])
    assert len(wanted) <= len(ds.frame_cache) <= 2 * len(wanted)


def test_the_next_batch_is_decoded_in_the_background(tmp_path):
    """`sample` decodes the rows its generator will draw next while the step trains; batches are those of eager
    frames whether the prefetch is taken, or wasted because something else drew from the generator first."""
    from mimetic.data.windows import WindowSampler, window_index

    root = build(tmp_path / "ds", "video", appends=1)
    samplers, gens = {}, {}
    for mode in ("lazy", "eager"):
        ds = Dataset.load(root, lazy=mode == "lazy", frame_cache_mb=0.01)
        index = window_index(ds.episode_starts, ds.episode_ends, n_obs_steps=2)
        samplers[mode] = WindowSampler({STATE: ds.frames(STATE), CAM: ds.frames(CAM)}, ds.actions, index)
        gens[mode] = torch.Generator().manual_seed(0)
    for step in range(5):
        got = {m: samplers[m].sample(8, gens[m], share=lambda rows: rows[2:6]) for m in samplers}
        assert torch.equal(got["lazy"][CAM], got["eager"][CAM]) and got["lazy"][CAM].shape == (4, 2, 16, 16, 3)
        if step == 2:  # augmentation draws from the generator: the prefetched rows are not the next batch's
            for g in gens.values():
                torch.rand(3, generator=g)
        assert samplers["lazy"]._pending is not None and samplers["eager"]._pending is None
    assert torch.equal(gens["lazy"].get_state(), gens["eager"].get_state())  # prefetching drew nothing from it


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage"])
def test_damaged_video_at_lazy_load_is_one_line(tmp_path, damage):
    """A lazy load decodes nothing, but opens every video's header: a bad file is named before training starts."""
    root = build(tmp_path / "ds", "video", appends=1)
    video = root / f"videos/{CAM}/chunk-000/file-001.mp4"
    if damage == "missing":
        video.unlink()
    else:
        video.write_bytes(video.read_bytes()[:600] if damage == "truncated" else b"not a video")
    with pytest.raises(MimeticError, match=r"file-001.mp4 .*dataset frames 21\.\.37") as e:
        Dataset.load(root, lazy=True)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_video_lost_while_training_is_one_line_exit_2(tmp_path, capsys, monkeypatch, damage):
    from mimetic.cli import main
    import mimetic.data.dataset as dataset_module

    root = build(tmp_path / "ds", "video", appends=1)
    video = root / f"videos/{CAM}/chunk-000/file-001.mp4"
    real_load = Dataset.load.__func__

    def load_then_damage(cls, *a, **kw):  # the file goes bad after the dataset was checked and opened
        ds = real_load(cls, *a, **kw)
        if damage == "missing":
            video.unlink()
        else:
            video.write_bytes(video.read_bytes()[:400])
        return ds

    monkeypatch.setattr(dataset_module.Dataset, "load", classmethod(load_then_damage))
    status = main(["-q", "train", "bc", "--data", str(root), "--out", str(tmp_path / "run"), "--steps", "3",
                   "--batch-size", "16", "--hidden", "8", "--frame-cache-mb", "0.01"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1, err
    assert "file-001.mp4" in err and "reading frame" in err and "of the dataset" in err, err
    print(err)


def test_corrupt_png_while_reading_names_file_and_frame(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = build(tmp_path / "ds", "png", appends=0)
    ds = Dataset.load(root, lazy=True)
    p = root / "data/chunk-000/file-000.parquet"
    t = pq.read_table(p)
    cells = t.column(CAM).to_pylist()
    cells[5] = {"bytes": b"not a png", "path": None}
    pq.write_table(t.set_column(t.column_names.index(CAM), CAM, pa.array(cells, t.schema.field(CAM).type)), p)
    with pytest.raises(MimeticError, match=r"row 5 of file-000.parquet: observation.images.top frame 5") as e:
        ds.frames(CAM)[[1, 5]]
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------ memory
RSS_SCRIPT = textwrap.dedent("""
    import re, sys, numpy as np
    from mimetic.data import Dataset

    def peak_mb():  # this process's peak resident memory (VmHWM; ru_maxrss would count the parent's too)
        return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

    def reset():
        open("/proc/self/clear_refs", "w").write("5")  # the peak starts again from the memory in use now

    lazy = sys.argv[2] == "lazy"
    rng = np.random.default_rng(0)
    if not lazy:
        reset()
        base = peak_mb()
    ds = Dataset.load(sys.argv[1], lazy=lazy, frame_cache_mb=float(sys.argv[3]))
    frames = ds.frames("observation.images.top")
    for _ in range(3):  # warm up: what does not grow with the dataset (decoders, allocator pools, one batch)
        frames[rng.integers(0, len(frames), size=(64, 2))]
    if lazy:
        reset()
        base = peak_mb()
    for _ in range(30):
        frames[rng.integers(0, len(frames), size=(64, 2))]
    for i in range(0, len(frames), 128):
        frames[i:i + 128]
    print(peak_mb() - base, getattr(ds.frame_cache, "peak_nbytes", 0) / 2 ** 20)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_memory_is_bounded_by_the_cache_not_the_dataset(tmp_path):
    """A dataset whose frames decode to ~6 times the cache: reading all of it (random windows, then in order)
    grows a lazy process by at most about the cache once its decoders are warm (three batches), and an eager
    one by the whole dataset."""
    size, T = 96, 200
    eps = []
    for i in range(8):
        frames = np.zeros((T, size, size, 3), np.uint8)
        frames[..., 0] = np.arange(T, dtype=np.uint8)[:, None, None]
        frames[..., 1] = np.linspace(0, 255, size).astype(np.uint8)[None, None, :]
        frames[..., 2] = 30 * i
        eps.append(Episode({STATE: np.zeros((T, 2)), CAM: frames}, np.zeros((T, 2)), np.zeros(T), np.arange(T) == T - 1))
    root = tmp_path / "big"
    Dataset.create(root, eps, image_storage="video", video_codec="h264")
    decoded_mb = 8 * T * size * size * 3 / 2 ** 20  # ~42 MB
    cache_mb = 7.0

    def grown(mode):
        out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(root), mode, str(cache_mb)], capture_output=True,
                             text=True, check=True)
        grew, cached = map(float, out.stdout.split())
        return grew, cached

    (lazy, cached), (eager, _) = grown("lazy"), grown("eager")
    assert cache_mb - 0.5 < cached <= cache_mb  # the cache filled up to its setting, never past it
    assert lazy < cache_mb + 6, (lazy, eager)  # the cache and a batch (128 frames: 3.4 MB)
    assert eager > 0.9 * decoded_mb, (lazy, eager)
