"""Rollout videos (eval --video), camera frame strips (inspect) and videos in the HTML report, played in Chromium."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mimetic.cli import main
from mimetic.data.video import decode_video, encode_video

CHROMIUM = "/usr/bin/chromium"
CAM = "observation.images.top"


def run(capsys, *argv):
    code = main(["-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def manifest(folder: Path) -> dict:
    return json.loads((folder / "videos.json").read_text())


def check_videos(folder: Path, first_seed: int, n: int, evaluation: dict) -> dict:
    """Every listed video decodes to length + 1 frames, its name says its seed and outcome, and it is the evaluated
    episode on that seed (same success, length and return as the evaluation JSON)."""
    m = manifest(folder)
    eps = m["episodes"]
    assert [e["seed"] for e in eps] == list(range(first_seed, first_seed + n))
    assert sorted(p.name for p in folder.glob("*.mp4")) == sorted(e["file"] for e in eps)
    for i, e in enumerate(eps):
        assert e["file"] == f"episode-{e['seed']}-{'success' if e['success'] else 'failure'}.mp4"
        frames = decode_video(folder / e["file"])
        assert len(frames) == e["length"] + 1 == e["frames"]  # the observation before each action, then the final one
        assert e["success"] == evaluation["successes"][i] and e["length"] == evaluation["lengths"][i]
        assert e["return"] == pytest.approx(evaluation["returns"][i], abs=1e-5) and e["same_as_evaluation"]
    return m


def test_expert_videos_are_the_evaluated_episodes_and_leave_the_evaluation_unchanged(tmp_path, capsys):
    from mimetic.envs import make_env

    video = tmp_path / "video"
    code, out, err = run(capsys, "eval", "--expert", "--env", "reach", "--episodes", 6, "--video", video,
                         "--video-episodes", 3, "--json", tmp_path / "with.json")
    assert code == 0, err
    assert run(capsys, "eval", "--expert", "--env", "reach", "--episodes", 6, "--json", tmp_path / "without.json")[0] == 0
    with_video, without = (json.loads((tmp_path / f).read_text()) for f in ("with.json", "without.json"))
    assert with_video == without  # recording changes nothing in the evaluation
    assert "videos: 3 episodes (3 successes), camera top (added for the videos)" in out
    m = check_videos(video, 1_000_000, 3, with_video)
    assert m["camera_added"] and m["cameras"] == ["top"] and m["codec"] == "av1" and m["env_options"] == {}
    # frame 0 is what the camera sees at the reset of that seed (AV1 is lossy: close, not equal)
    assert decode_video(video / m["episodes"][0]["file"]).shape[1:] == (128, 128, 3)  # VIDEO_IMAGE_SIZE
    env = make_env("reach", cameras="top", image_size=128)
    first = env.reset(seed=1_000_000)[0][CAM].astype(float)
    assert np.abs(decode_video(video / m["episodes"][0]["file"])[0].astype(float) - first).mean() < 6

    # failures are labelled so; a second recording into the folder replaces the first one's files
    code, out, _ = run(capsys, "eval", "--expert", "--env", "reach", "--env-option", "max_steps=4", "--episodes", 2,
                       "--video", video, "--video-codec", "h264", "--json", tmp_path / "short.json")
    assert code == 0 and "(0 successes)" in out
    m = check_videos(video, 1_000_000, 2, json.loads((tmp_path / "short.json").read_text()))
    assert all(e["file"].endswith("-failure.mp4") for e in m["episodes"]) and m["codec"] == "h264"


def test_a_task_without_camera_is_a_one_line_error(tmp_path, capsys):
    code, out, err = run(capsys, "eval", "--expert", "--env", "objectworld", "--episodes", 2, "--video", tmp_path / "v")
    assert code == 2 and err.count("\n") == 1 and "cannot render" in err and not out
    assert not (tmp_path / "v").exists()
    code, _, err = run(capsys, "eval", "--expert", "--env", "reach", "--video", tmp_path / "v", "--video-episodes", 0)
    assert code == 2 and "--video-episodes must be at least 1" in err


@pytest.fixture(scope="module")
def bc_run(tmp_path_factory):
    """A BC policy on the state of reach, trained briefly (it fails some episodes), with videos in RUN/videos."""
    root = tmp_path_factory.mktemp("bc")
    assert main(["-q", "collect", "reach", "--episodes", "10", "--out", str(root / "demos")]) == 0
    assert main(["-q", "train", "bc", "--data", str(root / "demos"), "--out", str(root / "run"), "--steps", "60"]) == 0
    assert main(["-q", "eval", str(root / "run"), "--episodes", "8", "--video", str(root / "run/videos"),
                 "--json", str(root / "eval.json")]) == 0
    return root


def test_a_state_policy_acts_the_same_with_the_camera_added(bc_run):
    from mimetic.policies.base import PolicyActor, load_policy
    from mimetic.rollout import rollout

    evaluation = json.loads((bc_run / "eval.json").read_text())
    check_videos(bc_run / "run/videos", 1_000_000, 4, evaluation)
    actor = PolicyActor(load_policy(bc_run / "run"))
    seeds = range(1_000_000, 1_000_004)
    plain = rollout("reach", actor, seeds, num_envs=4)
    seen = rollout("reach", actor, seeds, num_envs=4, env_options={"cameras": "top"}, workers=1)
    for a, b in zip(plain, seen):
        assert np.array_equal(a.actions, b.actions) and a.success == b.success
        assert np.array_equal(a.obs["observation.state"], b.obs["observation.state"]) and CAM in b.obs


def image_dataset(root: Path, episodes=4, size=32) -> Path:
    """A cameras-only dataset (no observation.state) whose frames differ by episode and step."""
    from mimetic.data import Dataset, Episode

    eps = []
    for e in range(episodes):
        T = 10 + e
        frames = np.zeros((T, size, size, 3), np.uint8)
        frames[..., 0] = 40 * e
        frames[..., 1] = (np.arange(T) * 20)[:, None, None]
        eps.append(Episode({CAM: frames}, np.zeros((T, 2)), np.zeros(T), np.arange(T) == T - 1))
    Dataset.create(root, eps, image_storage="video")
    return root


def test_inspect_an_image_only_dataset(tmp_path, capsys):
    from PIL import Image

    ds = image_dataset(tmp_path / "ds")
    code, out, err = run(capsys, "inspect", ds, "--out", tmp_path / "plots", "--json", tmp_path / "s.json")
    assert code == 0, err
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["cameras"] == [{"camera": "top", "key": CAM, "shape": [32, 32, 3], "storage": "video"}]
    assert s["obs_dim"] is None and s["observation"] is None and len(s["action"]["mean"]) == 2
    assert "camera top (observation.images.top): 32x32x3 uint8, stored as video" in out and "no observation.state" in out
    strip = tmp_path / "plots/frames_top.png"
    assert s["plots"]["frames_top"] == str(strip.resolve()) and "observation_hist" not in s["plots"]
    grid = np.asarray(Image.open(strip).convert("RGB"))
    assert grid.shape == (3 * 34 - 2, 8 * 34 - 2, 3)  # 3 episodes x 8 frames of 32 pixels, 2-pixel gaps
    assert abs(int(grid[2 * 34 + 16, 16, 0]) - 80) < 8  # row 3 is episode 2 (red 80)
    greens = [int(grid[16, 34 * j + 16, 1]) for j in range(8)]  # green = 20 t: first and last step of episode 0 shown
    assert abs(greens[0] - 0) < 8 and abs(greens[-1] - 180) < 8 and greens == sorted(greens)


@pytest.fixture(scope="module")
def report(bc_run, tmp_path_factory):
    """A report on the BC run (with its RUN/videos), a folder of HEVC videos (previewed), and an image dataset."""
    root = tmp_path_factory.mktemp("report")
    hevc = root / "hevc"
    shutil.copytree(bc_run / "run/videos", hevc)
    m = manifest(hevc)
    m["codec"] = "hevc"
    for e in m["episodes"]:
        encode_video(hevc / e["file"], decode_video(hevc / e["file"]), 10, codec="hevc")
    (hevc / "videos.json").write_text(json.dumps(m))
    ds = image_dataset(root / "ds")
    page = root / "r.html"
    assert main(["-q", "report", str(bc_run / "run"), str(hevc), str(ds), "--out", str(page)]) == 0
    return page


def test_report_embeds_videos_previews_and_strips(report):
    import base64
    import io

    from PIL import Image

    page = report.read_text()
    videos = re.findall(r'<video [^>]*src="data:video/mp4;base64,([^"]+)"', page)
    assert len(videos) == 4 and "Rollout videos" in page
    previews = re.findall(r'<img class="preview" [^>]*src="data:image/webp;base64,([^"]+)"', page)
    assert len(previews) == 4
    with Image.open(io.BytesIO(base64.b64decode(previews[0]))) as im:
        assert im.n_frames > 1  # animated
    assert page.count("frames_top") == 1 and "<script" not in page
    assert not re.search(r'(href|src)="(https?:|file:|//)', page)


PROBE = """<script>window.addEventListener('load', () => setTimeout(() => {
  const d = document.createElement('div');
  d.id = 'probe';
  const vs = [...document.querySelectorAll('video')], imgs = [...document.images];
  d.setAttribute('data-videos', vs.length);
  d.setAttribute('data-playable', vs.filter(v => v.readyState >= 1 && v.videoWidth > 0 && !v.error).length);
  d.setAttribute('data-images', imgs.length);
  d.setAttribute('data-loaded', imgs.filter(i => i.complete && i.naturalWidth > 0).length);
  document.body.appendChild(d);
}, 1000));</script>"""


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_report_videos_play_in_headless_chromium(report, tmp_path):
    page = report.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    m = re.search(r'<div id="probe" data-videos="(\d+)" data-playable="(\d+)" data-images="(\d+)" data-loaded="(\d+)"', dom)
    assert m, dom[-2000:]
    videos, playable, images, loaded = map(int, m.groups())
    assert videos == 4 and playable == 4  # the AV1 MP4s decode in Chromium (metadata and size known)
    assert images == page.count("<img ") and images >= 5 and loaded == images  # WebP previews and PNG strips
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
