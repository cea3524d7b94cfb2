"""mimetic.data.formats with cameras: LeRobot v3 (videos, image columns), v2.1 (per-episode MP4s),
robomimic and zarr image arrays, export/import round trips, and the errors for bad camera data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mimetic.cli import main
from mimetic.data import Dataset, Episode
from mimetic.data.formats import convert, export_lerobot, read
from mimetic.data.video import decode_video, encode_png, encode_video
from mimetic.errors import MimeticError
from test_formats import make_episodes, robomimic_demo, write_lerobot_v21, write_replay, write_robomimic

TOP, WRIST = "observation.images.top", "observation.images.wrist"
FPS = 10


def camera(T: int, size: int, seed: int) -> np.ndarray:
    """uint8 (T, size, size, 3): a smooth background and a bright bar whose place says the step (so a frame
    taken from the wrong step differs by far more than codec error)."""
    rng = np.random.default_rng(seed)
    base = np.linspace(20, 120, size)[None, :, None] + rng.integers(0, 60, 3)[None, None, :]
    out = np.broadcast_to(base, (T, size, size, 3)).astype(np.uint8).copy()
    for t in range(T):
        c = (2 * t + seed) % (size - 2)
        out[t, :, c:c + 2] = 250
    return out


def video_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ---------------------------------------------------------------------- LeRobot v3
def write_v3(root: Path, lengths=(5, 7), size=16) -> dict:
    """A LeRobot v3.0 folder as LeRobot writes it: both episodes in one MP4 per video key (from_timestamp of the
    second > 0), an image feature as HF Image cells, names as {"motors": [...]}. Returns the frames written."""
    rng = np.random.default_rng(0)
    n = sum(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    top, wrist = camera(n, size, 1), camera(n, 8, 2)
    state, action = rng.standard_normal((n, 3)).astype(np.float32), rng.standard_normal((n, 2)).astype(np.float32)
    env_state = rng.standard_normal((n, 2)).astype(np.float32)
    frame_index = np.concatenate([np.arange(T) for T in lengths])
    ep_index = np.repeat(np.arange(len(lengths)), lengths)
    vec = lambda x: pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])  # noqa: E731
    data = pa.table({
        "observation.state": vec(state), "observation.environment_state": vec(env_state), "action": vec(action),
        WRIST: pa.array([{"bytes": encode_png(f), "path": None} for f in wrist]),
        "timestamp": pa.array((frame_index / FPS).astype(np.float32)), "frame_index": pa.array(frame_index),
        "episode_index": pa.array(ep_index), "index": pa.array(np.arange(n)), "task_index": pa.array(np.zeros(n, np.int64)),
    })
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(data, root / "data/chunk-000/file-000.parquet")
    block = encode_video(root / f"videos/{TOP}/chunk-000/file-000.mp4", top, FPS, codec="h264", crf=5)
    episodes = pa.table({
        "episode_index": list(range(len(lengths))), "tasks": [["push"]] * len(lengths), "length": list(lengths),
        "data/chunk_index": [0] * len(lengths), "data/file_index": [0] * len(lengths),
        "dataset_from_index": starts.tolist(), "dataset_to_index": (starts + lengths).tolist(),
        f"videos/{TOP}/chunk_index": [0] * len(lengths), f"videos/{TOP}/file_index": [0] * len(lengths),
        f"videos/{TOP}/from_timestamp": (starts / FPS).tolist(), f"videos/{TOP}/to_timestamp": ((starts + lengths) / FPS).tolist(),
    })
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(episodes, root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": [0], "task": ["push"]}), root / "meta/tasks.parquet")
    one = lambda dtype: {"dtype": dtype, "shape": [1], "names": None}  # noqa: E731
    info = {
        "codebase_version": "v3.0", "robot_type": "so100", "fps": FPS, "total_episodes": len(lengths), "total_frames": n,
        "total_tasks": 1, "chunks_size": 1000, "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {
            "observation.state": {"dtype": "float32", "shape": [3], "names": {"motors": ["shoulder", "elbow", "gripper"]}},
            "observation.environment_state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
            "action": {"dtype": "float32", "shape": [2], "names": ["vx", "vy"]},
            TOP: {"dtype": "video", "shape": [size, size, 3], "names": ["height", "width", "channels"], "info": block},
            WRIST: {"dtype": "image", "shape": [8, 8, 3], "names": ["height", "width", "channels"]},
            "timestamp": one("float32"), "frame_index": one("int64"), "episode_index": one("int64"),
            "index": one("int64"), "task_index": one("int64"),
        },
    }
    (root / "meta/info.json").write_text(json.dumps(info))
    return {"top": top, "wrist": wrist, "state": state, "env_state": env_state, "starts": starts, "lengths": lengths}


def test_lerobot_v3_video_and_image_features(tmp_path):
    src = tmp_path / "v3"
    w = write_v3(src)
    decoded = decode_video(src / f"videos/{TOP}/chunk-000/file-000.mp4")
    eps, meta = read(src)
    assert meta["cameras"] == {TOP: TOP, WRIST: WRIST} and meta["kept"] == ["observation.environment_state"]
    assert meta["feature_names"] == {"observation.state": ["shoulder", "elbow", "gripper"],
                                     "observation.environment_state": ["x", "y"]}
    for ep, s, T in zip(eps, w["starts"], w["lengths"]):
        assert set(ep.obs) == {"observation.environment_state", "observation.state", TOP, WRIST}
        np.testing.assert_array_equal(ep.obs[TOP], decoded[s:s + T])  # the episode's own frames of the shared MP4
        assert video_error(ep.obs[TOP], w["top"][s:s + T]) < 3
        np.testing.assert_array_equal(ep.obs[WRIST], w["wrist"][s:s + T])  # PNG: exact
        np.testing.assert_array_equal(ep.obs["observation.environment_state"], w["env_state"][s:s + T])
        assert ep.task == "push"

    ds = convert(src, tmp_path / "png", image_storage="png")
    assert ds.image_storage == "png" and ds.image_keys == [TOP, WRIST]
    assert ds.features["observation.state"].names == ("shoulder", "elbow", "gripper")
    assert ds.features["observation.environment_state"].names == ("x", "y")
    for a, b in zip(eps, Dataset.load(tmp_path / "png").episodes()):
        np.testing.assert_array_equal(a.obs[TOP], b.obs[TOP])
        np.testing.assert_array_equal(a.obs[WRIST], b.obs[WRIST])

    ds = convert(src, tmp_path / "video", video_codec="h264")
    assert ds.image_storage == "video" and ds.info["mimetic"]["video_codec"] == "h264"
    back = Dataset.load(tmp_path / "video")
    assert video_error(back.frames(WRIST), w["wrist"]) < 12 and video_error(back.frames(TOP), w["top"]) < 12  # crf 30, 4:2:0

    # cameras chosen by obs_keys, or none
    eps, meta = read(src, obs_keys=WRIST)
    assert set(eps[0].obs) == {"observation.environment_state", "observation.state", WRIST} and meta["skipped"] == [TOP]
    eps, meta = read(src, skip_images=True, obs_keys="observation.state")
    assert list(eps[0].obs) == ["observation.state"]
    assert sorted(meta["skipped"]) == ["observation.environment_state", TOP, WRIST]


def _break_v3(src: Path, how: str) -> None:
    mp4 = src / f"videos/{TOP}/chunk-000/file-000.mp4"
    if how == "missing":
        mp4.unlink()
    elif how == "corrupt":
        mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    elif how == "garbage":
        mp4.write_bytes(b"\x00" * 2000)
    elif how == "short":  # the MP4 holds fewer frames than the episodes' rows
        encode_video(mp4, camera(10, 16, 1), FPS, codec="h264")
    elif how == "timestamps":  # meta/episodes gives episode 1 one frame less than its rows
        p = src / "meta/episodes/chunk-000/file-000.parquet"
        t = pq.read_table(p)
        to = t.column(f"videos/{TOP}/to_timestamp").to_pylist()
        to[1] -= 1 / FPS
        pq.write_table(t.set_column(t.column_names.index(f"videos/{TOP}/to_timestamp"), f"videos/{TOP}/to_timestamp",
                                    pa.array(to)), p)
    elif how == "png":
        p = src / "data/chunk-000/file-000.parquet"
        t = pq.read_table(p)
        cells = t.column(WRIST).to_pylist()
        cells[3] = {"bytes": b"not a png", "path": None}
        pq.write_table(t.set_column(t.column_names.index(WRIST), WRIST, pa.array(cells)), p)


@pytest.mark.parametrize("how, message", [
    ("missing", r"episode 0: observation.images.top: video .*file-000.mp4 not found"),
    ("corrupt", r"episode 0: observation.images.top: video .*file-000.mp4 (is truncated|is corrupt|is not a readable)"),
    ("garbage", r"video .*file-000.mp4 is not a readable video file"),
    ("short", r"episode 1: observation.images.top: video .*file-000.mp4 has 10 frames"),
    ("timestamps", r"episode 1: observation.images.top in meta/episodes spans 0.500..1.100 s .* but data/ holds 7 rows"),
    ("png", r"column 'observation.images.wrist' row 3: the 9 bytes are not a readable image"),
])
def test_lerobot_v3_bad_cameras_are_one_line_errors(tmp_path, how, message):
    src = tmp_path / "v3"
    write_v3(src)
    _break_v3(src, how)
    with pytest.raises(MimeticError, match=message) as err:
        convert(src, tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["v3"]
    convert(src, tmp_path / "out", skip_images=True)  # the state alone still converts


# ---------------------------------------------------------------------- LeRobot v2.1
def _with_cameras(eps: list[Episode], seed=0) -> list[Episode]:
    return [ep.replace(observations={**ep.obs, TOP: camera(len(ep), 16, seed + i), WRIST: camera(len(ep), 8, 7 + i)})
            for i, ep in enumerate(eps)]


def test_lerobot_v21_videos_and_images(tmp_path):
    eps = _with_cameras(make_episodes())
    src = tmp_path / "v21"
    write_lerobot_v21(src, eps, cameras={TOP: "video", WRIST: "image"})
    got, meta = read(src)
    assert meta["cameras"] == {TOP: TOP, WRIST: WRIST}
    for i, (a, b) in enumerate(zip(eps, got)):
        np.testing.assert_array_equal(b.obs[TOP], decode_video(src / f"videos/chunk-000/{TOP}/episode_{i:06d}.mp4"))
        assert video_error(a.obs[TOP], b.obs[TOP]) < 3
        np.testing.assert_array_equal(a.obs[WRIST], b.obs[WRIST])
        np.testing.assert_array_equal(a.observations, b.observations)
    ds = convert(src, tmp_path / "out", image_storage="png")
    np.testing.assert_array_equal(ds.frames(WRIST), np.concatenate([e.obs[WRIST] for e in eps]))

    # an episode's MP4 with a frame less than its parquet rows
    encode_video(src / f"videos/chunk-000/{TOP}/episode_000001.mp4", eps[1].obs[TOP][:-1], 30, codec="h264")
    with pytest.raises(MimeticError, match=r"episode 1: observation.images.top \(7 rows in episode_000001.parquet\): "
                                           r"video .*episode_000001.mp4 has 6 frames, expected 7"):
        convert(src, tmp_path / "out2")
    encode_video(src / f"videos/chunk-000/{TOP}/episode_000001.mp4", eps[1].obs[TOP], 30, codec="h264")
    (src / f"videos/chunk-000/{TOP}/episode_000002.mp4").unlink()
    with pytest.raises(MimeticError, match=r"episode_000002.mp4 not found"):
        read(src, obs_keys=TOP)
    assert not (tmp_path / "out2").exists()


# ---------------------------------------------------------------------- robomimic
def test_robomimic_cameras_and_state_names(tmp_path):
    rng = np.random.default_rng(3)
    demos = {n: robomimic_demo(T, rng, image=True) for n, T in [(0, 4), (1, 6)]}
    for d in demos.values():
        T = len(d["actions"])
        d["obs"]["robot0_eye_in_hand_image"] = camera(T, 6, T)
        d["obs"]["robot0_gripper_qpos"] = rng.standard_normal((T, 2))
    path = tmp_path / "image.hdf5"
    write_robomimic(path, demos)
    eps, meta = read(path)
    assert meta["cameras"] == {"agentview_image": "observation.images.agentview",
                               "robot0_eye_in_hand_image": "observation.images.robot0_eye_in_hand"}
    assert meta["feature_names"]["observation.state"] == [
        "gripper_0", "gripper_1", "object_0", "object_1", "object_2", "object_3", "robot0_eef_pos_0", "robot0_eef_pos_1",
        "robot0_eef_pos_2", "robot0_gripper_qpos_0", "robot0_gripper_qpos_1"]
    ds = convert(path, tmp_path / "out", image_storage="png")
    assert ds.features["observation.state"].names[-2:] == ("robot0_gripper_qpos_0", "robot0_gripper_qpos_1")
    for ep, n in zip(ds.episodes(), (0, 1)):
        np.testing.assert_array_equal(ep.obs["observation.images.agentview"], demos[n]["obs"]["agentview_image"])
        np.testing.assert_array_equal(ep.obs["observation.images.robot0_eye_in_hand"], demos[n]["obs"]["robot0_eye_in_hand_image"])

    # video storage: the 6x6 eye-in-hand camera is fine for h264; an odd size is refused before anything is written
    convert(path, tmp_path / "h264", video_codec="h264")
    demos[1]["obs"]["agentview_image"] = np.zeros((6, 8, 8, 3), np.uint8)
    for d in demos.values():
        d["obs"]["robot0_eye_in_hand_image"] = np.zeros((len(d["actions"]), 5, 5, 3), np.uint8)
    write_robomimic(tmp_path / "odd.hdf5", demos)
    with pytest.raises(MimeticError, match=r"robot0_eye_in_hand: frames of 5x5 cannot be stored as av1 video.*--image-storage png"):
        convert(tmp_path / "odd.hdf5", tmp_path / "out2")
    convert(tmp_path / "odd.hdf5", tmp_path / "out2", image_storage="png")

    # one camera whose frame size changes from demo to demo
    demos[1]["obs"]["agentview_image"] = np.zeros((6, 10, 8, 3), np.uint8)
    write_robomimic(tmp_path / "mixed.hdf5", demos)
    with pytest.raises(MimeticError, match=r"observation.images.agentview holds frames of shape \[10, 8, 3\] in episode 1 "
                                           r"but \[8, 8, 3\] in episode 0"):
        convert(tmp_path / "mixed.hdf5", tmp_path / "out3", image_storage="png")
    assert not (tmp_path / "out3").exists()


# ---------------------------------------------------------------------- zarr
def test_zarr_cameras_and_the_conversion_rule(tmp_path):
    rng = np.random.default_rng(4)
    n, ends = 9, [4, 9]
    img = camera(n, 6, 0)
    arrays = {"state": rng.standard_normal((n, 5)).astype(np.float32), "action": rng.standard_normal((n, 2)).astype(np.float32),
              "img": img, "wrist_image": (np.moveaxis(img, -1, 1) / 255.0).astype(np.float32),  # float, channels first
              "depth": (img[..., :1]).copy()}  # grey (H, W, 1)
    write_replay(tmp_path / "a.zarr", arrays, ends)
    eps, meta = read(tmp_path / "a.zarr")
    assert meta["cameras"] == {"depth": "observation.images.depth", "img": "observation.images.img",
                               "wrist_image": "observation.images.wrist"}
    assert meta["feature_names"] == {"observation.state": [f"state_{i}" for i in range(5)]}
    np.testing.assert_array_equal(eps[1].obs["observation.images.img"], img[4:])
    np.testing.assert_array_equal(eps[1].obs["observation.images.wrist"], img[4:])  # round(255 x) undoes x / 255
    np.testing.assert_array_equal(eps[0].obs["observation.images.depth"], np.repeat(img[:4, ..., :1], 3, axis=-1))
    ds = convert(tmp_path / "a.zarr", tmp_path / "out", image_storage="png", obs_keys="img,state")
    assert ds.image_keys == ["observation.images.img"] and ds.obs_dim == 5

    for bad, message in [
        (np.full((n, 6, 6, 3), 2.0, np.float32), r"data/cam: float frames must hold values in \[0, 1\] \(found 2..2"),
        (np.zeros((n, 6, 6, 3), np.int32), r"data/cam: frames are int32; expected uint8"),
        (np.zeros((n, 6, 6, 4), np.uint8), r"data/cam: frames of shape \[6, 6, 4\] are not images"),
    ]:
        write_replay(tmp_path / "b.zarr", {**arrays, "cam": bad}, ends)
        with pytest.raises(MimeticError, match=message):
            convert(tmp_path / "b.zarr", tmp_path / "out2")
        assert not (tmp_path / "out2").exists()
        convert(tmp_path / "b.zarr", tmp_path / "out2", obs_keys="img", image_storage="png")  # the bad camera left out
        import shutil

        shutil.rmtree(tmp_path / "out2")
        shutil.rmtree(tmp_path / "b.zarr")


# ---------------------------------------------------------------------- export and back
def test_export_and_import_keep_cameras_names_and_environment_state(tmp_path):
    rng = np.random.default_rng(5)
    eps = [Episode({"observation.state": rng.standard_normal((T, 3)), "observation.environment_state": rng.standard_normal((T, 2)),
                    TOP: camera(T, 16, T)}, rng.standard_normal((T, 2)), np.zeros(T), np.arange(T) == T - 1, task="t")
           for T in (4, 6)]
    names = {"observation.state": ["a", "b", "c"], "observation.environment_state": ["ox", "oy"]}
    Dataset.create(tmp_path / "mine", eps, fps=FPS, image_storage="png", feature_names=names)
    out = export_lerobot(tmp_path / "mine", tmp_path / "lerobot")  # AV1, as LeRobot stores cameras
    info = json.loads((tmp_path / "lerobot/meta/info.json").read_text())
    assert info["features"][TOP]["dtype"] == "video" and (tmp_path / f"lerobot/videos/{TOP}/chunk-000/file-000.mp4").is_file()
    assert info["features"]["observation.state"]["names"] == ["a", "b", "c"] and info["features"][TOP]["info"]["video.codec"] == "av1"
    stats = json.loads((tmp_path / "lerobot/meta/stats.json").read_text())
    assert np.asarray(stats[TOP]["mean"]).shape == (3, 1, 1)
    assert out.num_frames == 10

    back = convert(tmp_path / "lerobot", tmp_path / "back", image_storage="png")
    assert back.observation_keys == ["observation.state", "observation.environment_state", TOP]
    assert back.features["observation.environment_state"].names == ("ox", "oy")
    for a, b in zip(eps, back.episodes()):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.obs["observation.environment_state"], b.obs["observation.environment_state"])
        assert video_error(a.obs[TOP], b.obs[TOP]) < 6

    export_lerobot(tmp_path / "mine", tmp_path / "png", image_storage="png")  # lossless both ways
    again = convert(tmp_path / "png", tmp_path / "again", image_storage="png")
    np.testing.assert_array_equal(again.frames(TOP), np.concatenate([e.obs[TOP] for e in eps]))


# ---------------------------------------------------------------------- CLI
def test_cli_convert_cameras_and_errors(tmp_path, capsys):
    src = tmp_path / "v3"
    write_v3(src)
    assert main(["-q", "convert", str(src), str(tmp_path / "out"), "--image-storage", "png"]) == 0
    out = capsys.readouterr().out
    assert f"{TOP} 16x16x3" in out and "cameras as png" in out
    assert main(["-q", "convert", str(src), str(tmp_path / "state"), "--skip-images"]) == 0
    assert Dataset.load(tmp_path / "state").image_keys == []
    _break_v3(src, "short")
    assert main(["-q", "convert", str(src), str(tmp_path / "bad"), "--video-codec", "h264"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "file-000.mp4 has 10 frames" in err
    assert not (tmp_path / "bad").exists()


def test_camera_key_rule():
    from mimetic.data.formats._common import camera_key

    assert camera_key(TOP) == TOP
    assert camera_key("observation.image") == "observation.images.image"  # LeRobot pusht
    assert camera_key("agentview_image") == "observation.images.agentview"
    assert camera_key("camera0_rgb") == "observation.images.camera0"
    assert camera_key("img") == "observation.images.img" and camera_key("image") == "observation.images.image"
