"""Training metrics beside metrics.jsonl: TensorBoard event files and W&B offline runs (`--log-to`), evaluation
videos to the same sinks, and the one-line error when a sink's package is missing."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mimetic.algos import run_dir as rd_module
from mimetic.algos.run_dir import RunDir, log_to, log_video, read_metrics
from mimetic.cli import main
from mimetic.collect import collect
from mimetic.errors import MimeticError


@pytest.fixture(autouse=True)
def no_sinks_after():
    yield
    log_to(None)  # the sinks are process-wide: close them and stop sending


@pytest.fixture(scope="module")
def tiny_reach(tmp_path_factory):
    root = tmp_path_factory.mktemp("sinks") / "demos"
    collect("reach", root, 4, seed=0, progress=False)
    return root


def _scalars(run) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _jsonl_series(rows) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list] = {}
    for row in rows:
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)):
                out.setdefault(k, []).append((row["step"], float(v)))
    return out


def _assert_same(tb, rows):
    want = _jsonl_series(rows)
    assert sorted(tb) == sorted(want) and want
    for tag, series in want.items():
        assert [s for s, _ in tb[tag]] == [s for s, _ in series], tag
        assert np.allclose([v for _, v in tb[tag]], [v for _, v in series], rtol=1e-6), tag


def test_train_with_tensorboard_writes_the_metrics_rows(tiny_reach, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    code = main(["-q", "--log-to", "tensorboard", "train", "bc", "--data", str(tiny_reach), "--out", str(run),
                 "--steps", "50", "--log-every", "10", "--hidden", "16"])
    assert code == 0, capsys.readouterr().err
    log_to(None)  # closes the writer (as the process's exit would)
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50]
    assert list(run.glob("tensorboard/events.out.tfevents.*"))
    _assert_same(_scalars(run), rows)
    # without --log-to nothing but metrics.jsonl
    assert main(["-q", "train", "bc", "--data", str(tiny_reach), "--out", str(tmp_path / "plain"), "--steps", "5",
                 "--hidden", "16"]) == 0
    assert not (tmp_path / "plain/tensorboard").exists() and read_metrics(tmp_path / "plain")


def test_resumed_run_purges_the_events_after_its_checkpoint(tmp_path):
    pytest.importorskip("tensorboard")
    log_to("tensorboard")
    rd = RunDir(tmp_path / "run")
    rd.start(resume=False)
    for s in (10, 20, 30):
        rd.append_metrics({"step": s, "loss": 1.0 / s, "val_ci95": [0.1, 0.2], "note": "x"})
    rd.save_checkpoint({"step": 20, "w": torch.ones(1)})
    rd2 = RunDir(tmp_path / "run")  # resumed after a kill: step 30 is logged again, with another value
    rd2.start(resume=True)
    for s in (30, 40):
        rd2.append_metrics({"step": s, "loss": 2.0 / s, "ok": True})
    log_to(None)
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    _assert_same(_scalars(tmp_path / "run"), rows)  # lists and strings are left out, bools are 0/1
    # a fresh run over a run killed before its first checkpoint drops the old events with the old metrics
    log_to("tensorboard")
    other = RunDir(tmp_path / "other")
    other.start(resume=False)
    other.append_metrics({"step": 5, "loss": 5.0})
    other = RunDir(tmp_path / "other")
    other.start(resume=False)
    other.append_metrics({"step": 1, "loss": 1.0})
    log_to(None)
    assert _scalars(tmp_path / "other") == {"loss": [(1, 1.0)]}


def test_log_video_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    frames = np.zeros((6, 16, 20, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(6)[:, None, None] * 40
    assert not log_video(tmp_path / "run", "eval/video", frames, 10, 3)  # no sink chosen: nothing to do
    log_to("tensorboard")
    assert log_video(tmp_path / "run", "eval/video", frames, 10, 3)
    log_to(None)
    acc = EventAccumulator(str(tmp_path / "run/tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    (img,) = acc.Images("eval/video")
    assert (img.step, img.width, img.height) == (3, 20, 16) and img.encoded_image_string[:6] == b"GIF89a"
    with pytest.raises(MimeticError, match="uint8"):
        log_video(tmp_path / "run", "v", frames.astype(np.float32), 10, 0)


def test_wandb_offline_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "")  # offline: no account, no network
    log_to("wandb")
    rd = RunDir(tmp_path / "my-run")
    rd.start(resume=False)
    for s in (1, 2, 3):
        rd.append_metrics({"step": s, "loss": 1.0 / s})
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    assert log_video(tmp_path / "my-run", "eval/video", frames, 5, 3)
    log_to(None)
    (run_folder,) = (tmp_path / "my-run/wandb").glob("offline-run-*")
    (records,) = run_folder.glob("run-*.wandb")  # protobuf records: look for the run's name, project and values
    for _ in range(100):  # wandb's service process may still be writing them after finish() returned
        data = records.read_bytes()
        if repr(1 / 3).encode() in data:
            break
        time.sleep(0.1)
    assert b"my-run" in data and b"mimetic" in data and b"loss" in data and repr(1 / 3).encode() in data
    assert list(run_folder.glob("files/media/videos/eval/video_3_*.gif"))


@pytest.mark.parametrize("sink", ["tensorboard", "wandb"])
def test_missing_sink_package_is_one_line_before_training(sink, tiny_reach, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, sink, None)  # import -> ImportError
    code = main(["-q", "--log-to", sink, "train", "bc", "--data", str(tiny_reach), "--out", str(tmp_path / "run"),
                 "--steps", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f"pip install 'mimetic[{sink}]'" in err[0]
    assert not (tmp_path / "run").exists()  # refused before training started


def test_unknown_sink_is_one_line(tmp_path, capsys):
    assert main(["-q", "--log-to", "tensorboard,mlflow", "train", "bc", "--data", str(tmp_path), "--out",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown sink 'mlflow'" in err[0]
    assert rd_module.parse_log_to("wandb, tensorboard,wandb") == ("wandb", "tensorboard")


def test_sink_packages_are_imported_only_when_asked_for():
    code = ("import sys, mimetic.cli, mimetic.algos.run_dir, mimetic.algos.trainer; "
            "assert not {'tensorboard', 'wandb', 'torch.utils.tensorboard'} & set(sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
