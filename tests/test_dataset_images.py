"""Camera features in datasets: video (MP4, LeRobot v3 layout) and PNG storage, appends, bad files."""

import json

import numpy as np
import pytest

from mimetic.data import Dataset, Episode
from mimetic.errors import MimeticError

CAM = "observation.images.top"


def image_episode(T, seed, size=32, task=""):
    """Frames whose content says which episode and step they are: frame id 12 seed + t written in base 8 as the
    brightness (32 per digit) of two flat blocks, far apart enough to survive lossy coding."""
    rng = np.random.default_rng(seed)
    grad = np.linspace(0, 200, size).astype(np.uint8)
    frames = np.zeros((T, size, size, 3), np.uint8)
    frames[..., 0] = grad[None, None, :]
    frames[..., 1] = grad[None, :, None]
    for t in range(T):
        ident = 12 * seed + t
        frames[t, size // 2:, :, 2] = 32 * (ident % 8)
        frames[t, size // 2:, :, 1] = 32 * (ident // 8 % 8)
    return Episode({"observation.state": rng.normal(size=(T, 4)), CAM: frames}, rng.normal(size=(T, 2)),
                   np.zeros(T), np.arange(T) == T - 1, task=task)


def all_frames(eps):
    return np.concatenate([e.obs[CAM] for e in eps])


@pytest.mark.parametrize("storage", ["video", "png"])
def test_image_roundtrip_and_append(tmp_path, storage):
    eps = [image_episode(12, 0), image_episode(9, 1)]
    ds = Dataset.create(tmp_path / "ds", eps, fps=10, image_storage=storage)
    before = {p: p.read_bytes() for p in (tmp_path / "ds").rglob("*") if p.is_file() and "meta" not in p.parts}
    more = [image_episode(7, 2, task="other")]
    ds.append(more)
    after = {p: p.read_bytes() for p in (tmp_path / "ds").rglob("*") if p.is_file() and "meta" not in p.parts}
    assert all(after[p] == b for p, b in before.items())  # an append rewrites no data or video file
    back = Dataset.load(tmp_path / "ds")
    assert back.image_keys == [CAM] and back.vector_keys == ["observation.state"]
    assert back.features[CAM].shape == (32, 32, 3) and back.image_storage == storage
    got, want = back.frames(CAM), all_frames(eps + more)
    assert got.dtype == np.uint8 and got.shape == want.shape
    # the dataset in hand after create / append holds exactly what loading it later decodes (for video the codec's
    # frames, not the ones it was given): a policy trained right after collecting sees what a later one sees
    np.testing.assert_array_equal(ds.frames(CAM), got)
    err = np.abs(got.astype(int) - want).mean()
    if storage == "png":
        assert err == 0
    else:
        assert err < 4  # AV1 at crf 30, yuv420p
        # every frame is the frame of its own index, not a neighbour's
        ident = lambda f: np.rint(f[:, 20:, 4:-4, 1:].astype(float).mean(axis=(1, 2)) / 32) @ [8, 1]  # noqa: E731
        np.testing.assert_array_equal(ident(got), ident(want))
    np.testing.assert_array_equal(back.episode(2).obs["observation.state"], more[0].obs["observation.state"])
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    ft = info["features"][CAM]
    assert ft["dtype"] == ("video" if storage == "video" else "image") and ft["names"] == ["height", "width", "channels"]
    if storage == "video":
        assert ft["info"]["video.codec"] == "av1" and ft["info"]["video.pix_fmt"] == "yuv420p"
        assert len(list((tmp_path / "ds/videos" / CAM).glob("chunk-000/*.mp4"))) == 2
    stats = json.loads((tmp_path / "ds/meta/stats.json").read_text())
    assert np.array(stats[CAM]["mean"]).shape == (3, 1, 1)
    assert stats["observation.state"]["count"] == [28]
    np.testing.assert_allclose(np.array(stats["observation.state"]["mean"]), back.observations.mean(0), atol=1e-5)
    np.testing.assert_allclose(np.array(stats["observation.state"]["std"]), back.observations.std(0), atol=1e-5)


def test_image_shape_mismatch_rejected_without_damage(tmp_path):
    ds = Dataset.create(tmp_path / "ds", [image_episode(5, 0)], image_storage="png")
    before = {p: p.read_bytes() for p in (tmp_path / "ds").rglob("*") if p.is_file()}
    with pytest.raises(MimeticError, match=r"observation.images.top has frames of shape \[16, 16, 3\]"):
        ds.append([image_episode(5, 1, size=16)])
    bad = image_episode(5, 2)
    bad.obs.pop(CAM)
    with pytest.raises(MimeticError, match="observation features"):
        ds.append([bad])
    assert before == {p: p.read_bytes() for p in (tmp_path / "ds").rglob("*") if p.is_file()}


def _video(root):
    return root / "videos" / CAM / "chunk-000/file-000.mp4"


@pytest.mark.parametrize("damage,match", [
    (lambda root: _video(root).unlink(), "file-000.mp4"),
    (lambda root: _video(root).write_bytes(_video(root).read_bytes()[:300]), "file-000.mp4"),
    (lambda root: _video(root).write_bytes(b"not a video at all"), "file-000.mp4"),
])
def test_damaged_video_is_one_line_error(tmp_path, damage, match):
    Dataset.create(tmp_path / "ds", [image_episode(20, 0), image_episode(20, 1)])
    damage(tmp_path / "ds")
    with pytest.raises(MimeticError, match=match) as e:
        Dataset.load(tmp_path / "ds")
    assert "\n" not in str(e.value)


def test_video_shorter_than_rows_is_an_error(tmp_path):
    """meta/episodes says an episode has more frames than its video holds: the error names the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    Dataset.create(tmp_path / "ds", [image_episode(10, 0)])
    p = tmp_path / "ds/meta/episodes/chunk-000/file-000.parquet"
    t = pq.read_table(p)
    col = f"videos/{CAM}/from_timestamp"
    t = t.set_column(t.column_names.index(col), col, pa.array([0.5]))
    pq.write_table(t, p)
    with pytest.raises(MimeticError, match=r"file-000.mp4: episode 0 has 10 rows"):
        Dataset.load(tmp_path / "ds")


def test_image_only_dataset_reads_without_state(tmp_path):
    ep = image_episode(6, 0)
    ep.obs.pop("observation.state")
    ds = Dataset.create(tmp_path / "ds", [ep], image_storage="png")
    back = Dataset.load(tmp_path / "ds")
    assert back.observation_keys == [CAM]
    with pytest.raises(MimeticError, match="has no 'observation.state'"):
        back.observations
    assert ds.num_frames == 6


def test_state_methods_say_what_they_read(tmp_path, capsys):
    """GAIL/AIRL, MaxEnt IRL and shift read observation.state: one line when cameras go unused, one-line error without state."""
    from mimetic.features import state_only_note

    assert state_only_note(["observation.state"], "gail", "dataset d") is None
    note = state_only_note(["observation.state", CAM], "gail", "dataset d")
    assert CAM in note and "\n" not in note
    with pytest.raises(MimeticError, match=r"gail learns from 'observation.state', but dataset d has only \['observation.images.top'\]"):
        state_only_note([CAM], "gail", "dataset d")


@pytest.mark.parametrize("method", ["gail", "airl"])
def test_adversarial_on_image_only_data_is_a_one_line_error(tmp_path, capsys, method):
    from mimetic.cli import main

    ep = image_episode(6, 0)
    ep.obs.pop("observation.state")
    Dataset.create(tmp_path / "ds", [ep], env="reach", image_storage="png")
    code = main(["-q", "train", method, "--data", str(tmp_path / "ds"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and f"{method} learns from 'observation.state'" in err
    assert not (tmp_path / "run").exists()
