"""mimetic.data.formats: each reader on small files written with the real libraries, round trips, errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mimetic.data import Dataset, Episode
from mimetic.data.formats import convert, detect_format, export_lerobot, read
from mimetic.errors import MimeticError

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

FIXTURES = Path(__file__).parent / "data" / "formats"


def _rng(seed=0):
    return np.random.default_rng(seed)


def assert_same(a: Episode, b: Episode, *, successes=True, terminated=True, task=True):
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    if successes:
        np.testing.assert_array_equal(a.successes, b.successes)
    if terminated:
        assert a.terminated == b.terminated
    if task:
        assert a.task == b.task


def make_episodes(lengths=(4, 7, 5), d=3, a=2, seed=0, extras=False):
    rng = _rng(seed)
    eps = []
    for i, T in enumerate(lengths):
        ex = {"expert_acted": (np.arange(T) % 2 == 0), "label": np.array([f"s{t}" for t in range(T)], dtype=object)} if extras else {}
        eps.append(Episode(observations=rng.standard_normal((T, d)).astype(np.float32),
                           actions=rng.uniform(-1, 1, (T, a)).astype(np.float32),
                           rewards=rng.standard_normal(T).astype(np.float32),
                           successes=np.arange(T) >= T - 2 if i % 2 == 0 else np.zeros(T, bool),
                           terminated=i % 2 == 0, task=f"task {i % 2}", extras=ex))
    return eps


# ---------------------------------------------------------------------- robomimic
def write_robomimic(path, demos: dict[int, dict], masks=None, env_args=None):
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["total"] = sum(len(d["rewards"]) for d in demos.values())
        data.attrs["env_args"] = json.dumps(env_args or {"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20}})
        for n, d in demos.items():
            g = data.create_group(f"demo_{n}")
            g.attrs["num_samples"] = len(d["rewards"])
            for k, v in d.items():
                if k == "obs":
                    for ok, ov in v.items():
                        g.create_dataset(f"obs/{ok}", data=ov)
                        g.create_dataset(f"next_obs/{ok}", data=ov)
                else:
                    g.create_dataset(k, data=v)
        for name, keys in (masks or {}).items():
            f.create_dataset(f"mask/{name}", data=np.array([k.encode() for k in keys], dtype="S"))


def robomimic_demo(T, rng, image=False):
    obs = {"robot0_eef_pos": rng.standard_normal((T, 3)), "object": rng.standard_normal((T, 4)).astype(np.float32),
           "gripper": rng.standard_normal((T, 2, 1))}
    if image:
        obs["agentview_image"] = rng.integers(0, 255, (T, 8, 8, 3), dtype=np.uint8)
    dones = np.zeros(T)
    dones[-1] = 1
    return {"obs": obs, "actions": rng.uniform(-1, 1, (T, 7)), "rewards": (np.arange(T) == T - 1).astype(np.float64),
            "dones": dones, "states": rng.standard_normal((T, 10))}


def test_robomimic_order_filter_and_keys(tmp_path):
    rng = _rng(1)
    demos = {n: robomimic_demo(T, rng) for n, T in [(10, 3), (2, 4), (0, 5), (1, 6)]}
    path = tmp_path / "low_dim.hdf5"
    write_robomimic(path, demos, masks={"train": ["demo_10", "demo_0"], "valid": ["demo_1", "demo_2"]})
    assert detect_format(path) == "robomimic"

    eps, meta = read(path)
    assert meta["demos"] == ["demo_0", "demo_1", "demo_2", "demo_10"]  # numeric, not lexical
    assert meta["obs_keys"] == ["gripper", "object", "robot0_eef_pos"]
    assert meta["fps"] == 20
    for ep, n in zip(eps, [0, 1, 2, 10]):
        o = demos[n]["obs"]
        expect = np.concatenate([o["gripper"].reshape(len(o["gripper"]), -1), o["object"], o["robot0_eef_pos"]], 1)
        np.testing.assert_array_equal(ep.observations, expect.astype(np.float32))
        np.testing.assert_array_equal(ep.actions, demos[n]["actions"].astype(np.float32))
        np.testing.assert_array_equal(ep.rewards, demos[n]["rewards"].astype(np.float32))
        assert ep.terminated and not ep.successes.any()

    eps, meta = read(path, filter_key="train", obs_keys="robot0_eef_pos,object")
    assert meta["demos"] == ["demo_0", "demo_10"]
    np.testing.assert_array_equal(eps[1].observations, np.concatenate([demos[10]["obs"]["robot0_eef_pos"], demos[10]["obs"]["object"]], 1).astype(np.float32))

    ds = convert(path, tmp_path / "out", filter_key="valid")
    assert ds.num_episodes == 2 and ds.fps == 20
    back = Dataset.load(tmp_path / "out")
    np.testing.assert_array_equal(back.episode(1).actions, demos[2]["actions"].astype(np.float32))

    with pytest.raises(MimeticError, match="mask/test is missing"):
        read(path, filter_key="test")
    with pytest.raises(MimeticError, match="obs/nope is missing"):
        read(path, obs_keys=["nope"])


def test_robomimic_images_converted_or_skipped(tmp_path):
    rng = _rng(2)
    path = tmp_path / "image.hdf5"
    demos = {0: robomimic_demo(3, rng, image=True), 1: robomimic_demo(4, rng, image=True)}
    write_robomimic(path, demos)
    eps, meta = read(path)
    assert meta["cameras"] == {"agentview_image": "observation.images.agentview"}
    np.testing.assert_array_equal(eps[1].obs["observation.images.agentview"], demos[1]["obs"]["agentview_image"])
    eps, meta = read(path, skip_images=True)
    assert meta["skipped"] == ["agentview_image"] and eps[0].observations.shape[1] == 2 + 4 + 3
    assert sorted(eps[0].obs) == ["observation.state"]
    eps, meta = read(path, obs_keys="agentview_image")  # a camera named: the state stays the default
    assert meta["obs_keys"] == ["gripper", "object", "robot0_eef_pos"] and eps[0].observations.shape[1] == 9
    with pytest.raises(MimeticError, match="skip_images drops every camera"):
        read(path, obs_keys="agentview_image", skip_images=True)


@pytest.mark.parametrize("breakage, message", [
    ("no_actions", r"data/demo_1: actions is missing"),
    ("short_obs", r"data/demo_1/obs/object: has 3 steps, expected 4"),
    ("nan", r"data/demo_1/obs/robot0_eef_pos: contains NaN"),
    ("strings", r"data/demo_1/obs/object: expected numbers"),
    ("bad_demo", r"demo_x: expected groups named demo_<N>"),
])
def test_robomimic_malformed(tmp_path, breakage, message):
    rng = _rng(3)
    demos = {0: robomimic_demo(3, rng), 1: robomimic_demo(4, rng)}
    if breakage == "no_actions":
        del demos[1]["actions"]
    elif breakage == "short_obs":
        demos[1]["obs"]["object"] = demos[1]["obs"]["object"][:3]
    elif breakage == "nan":
        demos[1]["obs"]["robot0_eef_pos"][2, 1] = np.nan
    elif breakage == "strings":
        demos[1]["obs"]["object"] = np.array([b"a", b"b", b"c", b"d"])
    path = tmp_path / "bad.hdf5"
    write_robomimic(path, demos)
    if breakage == "bad_demo":
        with h5py.File(path, "a") as f:
            f["data"].create_group("demo_x")
    with pytest.raises(MimeticError, match=message):
        convert(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.hdf5"]  # no temporary leftovers


# ---------------------------------------------------------------------- zarr (diffusion_policy)
def write_replay(path, arrays: dict[str, np.ndarray], ends, zip_store=False):
    import numcodecs

    store = zarr.storage.ZipStore(path, mode="w") if zip_store else str(path)
    root = zarr.open_group(store, mode="w", zarr_format=2)
    data, meta = root.create_group("data"), root.create_group("meta")
    for k, v in arrays.items():
        a = data.create_array(k, shape=v.shape, dtype=v.dtype, chunks=(4,) + v.shape[1:],
                              compressors=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=0))
        a[...] = v
    e = meta.create_array("episode_ends", shape=(len(ends),), dtype="int64", chunks=(len(ends),))
    e[...] = np.asarray(ends, np.int64)
    if zip_store:
        store.close()


def replay_arrays(n, rng, image=True):
    out = {"state": rng.standard_normal((n, 5)).astype(np.float32), "action": rng.standard_normal((n, 2)).astype(np.float32),
           "keypoint": rng.standard_normal((n, 9, 2)).astype(np.float32), "n_contacts": rng.integers(0, 3, (n, 1)).astype(np.float32)}
    if image:
        out["img"] = rng.integers(0, 255, (n, 6, 6, 3), dtype=np.uint8)
    return out


def test_zarr_replay_buffer(tmp_path):
    rng = _rng(4)
    arr, ends = replay_arrays(12, rng), [3, 8, 12]
    path = tmp_path / "pusht.zarr"
    write_replay(path, arr, ends)
    assert (path / "data/state/.zarray").is_file()  # the zarr-2 on-disk format
    assert detect_format(path) == "zarr"
    eps, meta = read(path)
    assert meta["cameras"] == {"img": "observation.images.img"}
    np.testing.assert_array_equal(eps[1].obs["observation.images.img"], arr["img"][3:8])
    eps, meta = read(path, skip_images=True)
    assert [len(e) for e in eps] == [3, 5, 4] and meta["obs_keys"] == ["state"]
    for ep, s, e in zip(eps, [0, 3, 8], ends):
        np.testing.assert_array_equal(ep.observations, arr["state"][s:e])
        np.testing.assert_array_equal(ep.actions, arr["action"][s:e])
    eps, _ = read(path, obs_keys="keypoint,state")
    np.testing.assert_array_equal(eps[2].observations, np.concatenate([arr["keypoint"][8:].reshape(4, 18), arr["state"][8:]], 1))

    ds = convert(path, tmp_path / "out", skip_images=True, fps=10)
    assert ds.num_frames == 12 and ds.obs_dim == 5

    zpath = tmp_path / "pusht.zarr.zip"
    write_replay(zpath, replay_arrays(12, rng, image=False), ends, zip_store=True)
    assert detect_format(zpath) == "zarr"
    assert [len(e) for e in read(zpath)[0]] == [3, 5, 4]


@pytest.mark.parametrize("breakage, message", [
    ("ends", r"data/state has 12 steps but meta/episode_ends ends at 11"),
    ("no_action", r"data/action is missing"),
    ("nan", r"data/action: contains NaN"),
    ("decreasing", r"episode_ends must be strictly increasing"),
])
def test_zarr_malformed(tmp_path, breakage, message):
    rng = _rng(5)
    arr, ends = replay_arrays(12, rng, image=False), [3, 8, 12]
    if breakage == "ends":
        ends = [3, 8, 11]
    elif breakage == "no_action":
        del arr["action"]
    elif breakage == "nan":
        arr["action"][5, 0] = np.inf
    elif breakage == "decreasing":
        ends = [8, 3, 12]
    write_replay(tmp_path / "r.zarr", arr, ends)
    with pytest.raises(MimeticError, match=message):
        convert(tmp_path / "r.zarr", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- imitation (HF datasets Arrow)
def test_imitation_fixture_written_by_datasets(tmp_path):
    """tests/data/formats/imitation_hf was written by the real `datasets` library (make_imitation_hf.py)."""
    src = FIXTURES / "imitation_hf"
    assert detect_format(src) == "imitation"
    eps, _ = read(src)
    for i, (ep, T) in enumerate(zip(eps, [3, 5])):
        obs = np.arange((T + 1) * 4, dtype=np.float32).reshape(T + 1, 4) * 0.5 + i
        np.testing.assert_array_equal(ep.observations, obs[:T])
        np.testing.assert_array_equal(ep.final_observation, obs[T])
        np.testing.assert_array_equal(ep.actions, np.arange(T * 2, dtype=np.float32).reshape(T, 2) * -0.25 + i)
        np.testing.assert_array_equal(ep.rewards, (np.linspace(0.0, 1.0, T) + i).astype(np.float32))
        np.testing.assert_array_equal(ep.successes, np.arange(T) == T - 1)
    assert [e.terminated for e in eps] == [True, False]
    ds = convert(src, tmp_path / "out")
    assert ds.num_episodes == 2 and ds.num_frames == 8 and ds.fps == 10


def write_imitation(path: Path, rows: dict[str, list], types: dict[str, pa.DataType]):
    """The layout `datasets.Dataset.save_to_disk` writes: an Arrow IPC stream plus two JSON files."""
    path.mkdir()
    table = pa.table({k: pa.array(v, types[k]) for k, v in rows.items()})
    with pa.OSFile(str(path / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    (path / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    (path / "dataset_info.json").write_text(json.dumps({"features": {}}))


F32_2D = pa.list_(pa.list_(pa.float32()))


def test_imitation_discrete_and_no_rewards(tmp_path):
    rows = {"obs": [[0, 1, 2, 3], [5, 6]], "acts": [[1, 0, 1], [0]], "infos": [["{}"] * 3, ["{}"]], "terminal": [True, False]}
    types = {"obs": pa.list_(pa.int64()), "acts": pa.list_(pa.int64()), "infos": pa.list_(pa.string()), "terminal": pa.bool_()}
    write_imitation(tmp_path / "traj", rows, types)
    eps, _ = read(tmp_path / "traj")
    np.testing.assert_array_equal(eps[0].observations, [[0], [1], [2]])
    np.testing.assert_array_equal(eps[0].actions, [[1], [0], [1]])
    np.testing.assert_array_equal(eps[1].rewards, [0.0])
    assert not eps[0].successes.any()


@pytest.mark.parametrize("breakage, message", [
    ("length", r"trajectory 1: obs has 3 rows, expected len\(acts\) \+ 1 = 2"),
    ("nan", r"trajectory 0 obs: contains NaN"),
    ("ragged", r"trajectory 0 obs: rows have different lengths"),
    ("no_acts", r"column 'acts' is missing"),
    ("strings", r"trajectory 0 acts: expected numbers"),
])
def test_imitation_malformed(tmp_path, breakage, message):
    rows = {"obs": [[[0.0, 1.0]] * 3, [[2.0, 3.0]] * 2], "acts": [[[1.0]] * 2, [[0.0]]], "terminal": [True, True]}
    types = {"obs": F32_2D, "acts": F32_2D, "terminal": pa.bool_()}
    if breakage == "length":
        rows["obs"][1] = [[2.0, 3.0]] * 3
    elif breakage == "nan":
        rows["obs"][0][1] = [np.nan, 1.0]
    elif breakage == "ragged":
        rows["obs"][0] = [[0.0, 1.0], [0.0], [1.0, 2.0]]
    elif breakage == "no_acts":
        del rows["acts"], types["acts"]
    elif breakage == "strings":
        rows["acts"][0] = ["a", "b"]
        types["acts"] = pa.list_(pa.string())
        rows["acts"][1] = ["c"]
    write_imitation(tmp_path / "traj", rows, types)
    with pytest.raises(MimeticError, match=message):
        convert(tmp_path / "traj", tmp_path / "out")
    assert not (tmp_path / "out").exists()


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('unpickled!')",))


@pytest.mark.parametrize("name", ["trajs.pkl", "rollouts.npz"])
def test_pickles_are_refused(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(MimeticError, match="refusing to load a pickled file"):
        convert(p, tmp_path / "out")
    with pytest.raises(MimeticError, match="refusing"):
        read(p, fmt="imitation")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- LeRobot v2.1
def write_lerobot_v21(root: Path, eps: list[Episode], fps=30, fixed_size=True, state_key="observation.state", cameras=None):
    """A LeRobot v2.1 folder; `cameras` {key: "video" | "image"} takes the frames from each episode's `ep.obs[key]`
    (videos: one MP4 per episode, written with mimetic's encoder; images: PNG cells in the parquet). Without
    cameras, info.json names a video feature whose files are absent."""
    from mimetic.data.video import encode_png, encode_video

    d, a = eps[0].observations.shape[1], eps[0].actions.shape[1]
    cameras = {"observation.images.top": None} if cameras is None else cameras

    def vec(x):
        flat = pa.array(x.reshape(-1), pa.float32())
        return pa.FixedSizeListArray.from_arrays(flat, x.shape[1]) if fixed_size else pa.array(x.tolist(), pa.list_(pa.float32()))

    tasks = sorted({e.task for e in eps})
    feats = {state_key: {"dtype": "float32", "shape": [d], "names": None},
             "action": {"dtype": "float32", "shape": [a], "names": None},
             "next.reward": {"dtype": "float32", "shape": [1], "names": None},
             "next.done": {"dtype": "bool", "shape": [1], "names": None},
             **{k: {"dtype": kind or "video", "shape": list(eps[0].obs[k].shape[1:]) if kind else [8, 8, 3],
                    "names": ["height", "width", "channels"]} for k, kind in cameras.items()},
             **{k: {"dtype": t, "shape": [1], "names": None} for k, t in
                [("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"), ("task_index", "int64")]}}
    index = 0
    for i, ep in enumerate(eps):
        T = len(ep)
        tbl = pa.table({state_key: vec(ep.observations), "action": vec(ep.actions), "next.reward": pa.array(ep.rewards),
                        "next.done": pa.array(np.arange(T) == T - 1), "timestamp": pa.array(np.arange(T, dtype=np.float32) / fps),
                        "frame_index": pa.array(np.arange(T)), "episode_index": pa.array(np.full(T, i)),
                        "index": pa.array(np.arange(index, index + T)), "task_index": pa.array(np.full(T, tasks.index(ep.task)))})
        for k, kind in cameras.items():
            if kind == "image":
                tbl = tbl.append_column(k, pa.array([{"bytes": encode_png(f), "path": None} for f in ep.obs[k]]))
            elif kind == "video":
                encode_video(root / f"videos/chunk-000/{k}/episode_{i:06d}.mp4", ep.obs[k], fps, codec="h264", crf=5)
        index += T
        p = root / f"data/chunk-000/episode_{i:06d}.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(tbl, p)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    info = {"codebase_version": "v2.1", "robot_type": "aloha", "fps": fps, "total_episodes": len(eps), "total_frames": index,
            "total_tasks": len(tasks), "chunks_size": 1000, "splits": {"train": f"0:{len(eps)}"},
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4", "features": feats}
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / "meta/episodes.jsonl").write_text("".join(json.dumps({"episode_index": i, "tasks": [e.task], "length": len(e)}) + "\n" for i, e in enumerate(eps)))
    (root / "meta/tasks.jsonl").write_text("".join(json.dumps({"task_index": i, "task": t}) + "\n" for i, t in enumerate(tasks)))


@pytest.mark.parametrize("fixed_size", [True, False])
def test_lerobot_v21(tmp_path, fixed_size):
    eps = make_episodes()
    src = tmp_path / "v21"
    write_lerobot_v21(src, eps, fixed_size=fixed_size)
    assert detect_format(src) == "lerobot-v2"
    with pytest.raises(MimeticError, match=r"episode 0: observation.images.top.*episode_000000.mp4 not found"):
        convert(src, tmp_path / "out")  # the info names a video feature but the MP4s are not there
    assert not (tmp_path / "out").exists()
    ds = convert(src, tmp_path / "out", skip_images=True)
    assert ds.fps == 30 and ds.info["robot_type"] == "aloha"
    for a, b in zip(eps, Dataset.load(tmp_path / "out").episodes()):
        assert_same(a, b, successes=False, terminated=False)
        assert b.terminated  # from next.done on the last frame


@pytest.mark.filterwarnings("ignore:.*skipping image/video")
def test_lerobot_v21_malformed(tmp_path):
    eps = make_episodes()
    src = tmp_path / "v21"
    write_lerobot_v21(src, eps)
    lines = (src / "meta/episodes.jsonl").read_text().splitlines()
    lines[1] = json.dumps({"episode_index": 1, "tasks": ["x"], "length": 99})
    (src / "meta/episodes.jsonl").write_text("\n".join(lines))
    with pytest.raises(MimeticError, match=r"episode_000001.parquet: holds 7 frames but meta/episodes.jsonl says length 99"):
        convert(src, tmp_path / "out", skip_images=True)
    (src / "data/chunk-000/episode_000002.parquet").unlink()
    (src / "meta/episodes.jsonl").write_text("\n".join(l for i, l in enumerate(lines) if i != 1))
    with pytest.raises(MimeticError, match=r"episode_000002.parquet not found"):
        convert(src, tmp_path / "out", skip_images=True)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- LeRobot v3
def test_lerobot_v3_other_state_names(tmp_path):
    """A v3 dataset without observation.state: every numeric observation.* feature, in sorted order."""
    eps = make_episodes(d=4)
    src = tmp_path / "v3"
    Dataset.create(src, eps, fps=15)
    # rename observation.state into two features, as some datasets have them
    p = src / "data/chunk-000/file-000.parquet"
    t = pq.read_table(p)
    obs = np.asarray(t.column("observation.state").to_pylist(), np.float32)
    t = t.drop_columns(["observation.state"])
    t = t.append_column("observation.joints", pa.FixedSizeListArray.from_arrays(pa.array(obs[:, 1:].reshape(-1)), 3))
    t = t.append_column("observation.environment_state", pa.array(obs[:, 0]))
    pq.write_table(t, p)
    info = json.loads((src / "meta/info.json").read_text())
    del info["features"]["observation.state"]
    info["features"]["observation.joints"] = {"dtype": "float32", "shape": [3], "names": None}
    info["features"]["observation.environment_state"] = {"dtype": "float32", "shape": [1], "names": None}
    info["features"]["observation.images.wrist"] = {"dtype": "video", "shape": [8, 8, 3], "names": None}
    (src / "meta/info.json").write_text(json.dumps(info))
    # tasks as pandas writes a DataFrame whose index (the task strings) has no name
    tasks = pa.table({"task_index": [0, 1], "__index_level_0__": ["task 0", "task 1"]})
    pandas_meta = {"index_columns": ["__index_level_0__"], "columns": [], "column_indexes": []}
    pq.write_table(tasks.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()}), src / "meta/tasks.parquet")
    assert detect_format(src) == "lerobot"
    with pytest.raises(MimeticError, match="observation.images.wrist"):
        read(src)
    got, meta = read(src, obs_keys="observation.environment_state,observation.joints", skip_images=True)
    assert meta["obs_keys"] == ["observation.environment_state", "observation.joints"]
    for a, b in zip(eps, got):
        assert_same(a, b)
    got, meta = read(src, skip_images=True)
    assert meta["obs_keys"] == ["observation.environment_state", "observation.joints"] and meta["fps"] == 15


def test_export_and_round_trip_lose_nothing(tmp_path):
    eps = make_episodes(lengths=(4, 7, 5, 1), extras=True)
    Dataset.create(tmp_path / "mine", eps, env="reach", env_options={"n": 2}, fps=20)
    out = export_lerobot(tmp_path / "mine", tmp_path / "lerobot")
    assert out.num_episodes == 4
    stats = json.loads((tmp_path / "lerobot/meta/stats.json").read_text())
    for k in ("observation.state", "action", "next.reward", "timestamp", "index", "episode_index", "expert_acted"):
        assert {"mean", "std", "min", "max", "count", "q01", "q99"} <= set(stats[k]), k

    # what LeRobot's loader reads: every data/*/*.parquet, columns == info.json features (less videos)
    info = json.loads((tmp_path / "lerobot/meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 20
    tbl = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "lerobot/data").glob("*/*.parquet"))])
    assert set(tbl.column_names) == set(info["features"])
    assert tbl.num_rows == info["total_frames"] == 17
    ts, fi = tbl.column("timestamp").to_numpy(), tbl.column("frame_index").to_numpy()
    np.testing.assert_allclose(ts, fi / 20, atol=1e-6)
    np.testing.assert_array_equal(tbl.column("index").to_numpy(), np.arange(17))
    for k, ft in info["features"].items():  # LeRobot casts each column to the feature's HF type
        col = tbl.column(k)
        if ft["shape"] == [1]:
            assert not pa.types.is_list(col.type) and not pa.types.is_fixed_size_list(col.type), k
        else:
            assert pa.types.is_fixed_size_list(col.type) and col.type.list_size == ft["shape"][0], k

    # and back: lerobot v3 -> mimetic keeps everything
    ds = convert(tmp_path / "lerobot", tmp_path / "back")
    assert ds.fps == 20 and ds.env_name == "reach" and ds.env_options == {"n": 2}
    for a, b in zip(eps, ds.episodes()):
        assert_same(a, b)
        np.testing.assert_array_equal(a.extras["expert_acted"], b.extras["expert_acted"])
        assert list(a.extras["label"]) == list(b.extras["label"])


def test_export_drops_uncommitted_rows(tmp_path):
    """An interrupted append can leave rows past total_frames in a data file; LeRobot must not see them."""
    eps = make_episodes(lengths=(3, 4, 5))
    Dataset.create(tmp_path / "a", eps[:2])
    Dataset.create(tmp_path / "b", eps)
    data = "data/chunk-000/file-000.parquet"
    (tmp_path / "a" / data).write_bytes((tmp_path / "b" / data).read_bytes())  # 12 rows; info.json says 7
    assert Dataset.load(tmp_path / "a").num_frames == 7
    read_back, _ = read(tmp_path / "a")  # the v3 reader honours the commit point too
    assert len(read_back) == 2
    export_lerobot(tmp_path / "a", tmp_path / "x")
    assert sum(pq.read_metadata(p).num_rows for p in (tmp_path / "x/data").glob("*/*.parquet")) == 7


def test_v3_reader_ignores_orphan_data_files_and_names_bad_files(tmp_path):
    eps = make_episodes(lengths=(3, 4))
    Dataset.create(tmp_path / "a", eps)
    orphan = tmp_path / "a/data/chunk-000/file-001.parquet"  # left by an interrupted append
    orphan.write_bytes((tmp_path / "a/data/chunk-000/file-000.parquet").read_bytes())
    got, _ = read(tmp_path / "a")
    for a, b in zip(eps, got):
        assert_same(a, b)
    (tmp_path / "a/data/chunk-000/file-000.parquet").write_bytes(b"not parquet")
    with pytest.raises(MimeticError, match=r"file-000.parquet is not a readable parquet file"):
        convert(tmp_path / "a", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_flattens_multidim_extras(tmp_path):
    eps = make_episodes(lengths=(3, 2))
    for ep in eps:
        ep.extras = {"contacts": np.ones((len(ep), 2, 3), np.float32)}
    Dataset.create(tmp_path / "a", eps)
    export_lerobot(tmp_path / "a", tmp_path / "x")
    info = json.loads((tmp_path / "x/meta/info.json").read_text())
    assert info["features"]["contacts"]["shape"] == [6]


# ---------------------------------------------------------------------- convert()
def test_convert_refuses_existing_destination_and_unknown_things(tmp_path):
    src = FIXTURES / "imitation_hf"
    (tmp_path / "out").mkdir()
    with pytest.raises(MimeticError, match="already exists"):
        convert(src, tmp_path / "out")
    with pytest.raises(MimeticError, match=r"option\(s\) \['filter_key'\] do not apply to format 'imitation'"):
        convert(src, tmp_path / "out2", filter_key="train")
    assert not (tmp_path / "out2").exists()
    convert(src, tmp_path / "out3", filter_key=None, obs_keys=None, skip_images=False)  # None/False: "not given"
    (tmp_path / "junk").mkdir()
    with pytest.raises(MimeticError, match="unrecognised dataset format"):
        convert(tmp_path / "junk", tmp_path / "out4")
    with pytest.raises(MimeticError, match="unknown format"):
        convert(src, tmp_path / "out4", fmt="csv")
    with pytest.raises(MimeticError, match="not found"):
        convert(tmp_path / "missing", tmp_path / "out4")
    assert not (tmp_path / "out4").exists()
