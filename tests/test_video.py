"""mimetic.data.video: MP4 encode/decode (LeRobot's layout and defaults), exact frame access, PNG."""

from fractions import Fraction

import av
import numpy as np
import pytest

from mimetic.data import video
from mimetic.data.video import (
    CODECS,
    concat_videos,
    decode_frames,
    decode_png,
    decode_video,
    encode_png,
    encode_video,
    video_info,
)
from mimetic.errors import MimeticError

FPS = 30


def scene(n: int, h: int = 64, w: int = 64) -> np.ndarray:
    """Rendered-looking frames: a smooth gradient background and a square that moves."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        bg = np.stack([x / w * 200 + 20, y / h * 180 + 40, (x + y) / (h + w) * 100 + 80 + i], -1)
        cx, cy = (i * 2) % (w - 16), (i * 3) % (h - 16)
        bg[cy : cy + 12, cx : cx + 12] = (230, 40, 40)
        out[i] = np.clip(bg, 0, 255).astype(np.uint8)
    return out


CELL = 16


def stamped(n: int) -> np.ndarray:
    """64x64 frames whose 4x4 grid of black/white 16-pixel cells spells the frame index in binary."""
    out = np.zeros((n, 64, 64, 3), np.uint8)
    for i in range(n):
        for b in range(16):
            if i >> b & 1:
                r, c = divmod(b, 4)
                out[i, r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL] = 255
    return out


def stamp_of(frame: np.ndarray) -> int:
    """The index stamped in a (lossily decoded) frame: the centre of each cell, thresholded."""
    bits = 0
    for b in range(16):
        r, c = divmod(b, 4)
        centre = frame[r * CELL + 4 : (r + 1) * CELL - 4, c * CELL + 4 : (c + 1) * CELL - 4]
        bits |= int(centre.mean() > 128) << b
    return bits


# Mean absolute error (0..255 scale) measured on `scene(30)` at LeRobot's defaults (crf 30, g 2), PyAV 18.1:
# av1 2.32, h264 3.36 (hevc 3.10); yuv420p alone (h264 at crf 0) costs 1.74 on the sharp red square's edges.
MAE_BOUND = 5.0


@pytest.mark.parametrize("codec", ["av1", "h264"])
def test_round_trip_within_codec_error(tmp_path, codec):
    frames = scene(30)
    path = tmp_path / "videos" / "observation.images.top" / "chunk-000" / "file-000.mp4"
    info = encode_video(path, frames, FPS, codec=codec)
    assert info == {
        "video.height": 64,
        "video.width": 64,
        "video.codec": codec,
        "video.pix_fmt": "yuv420p",
        "video.is_depth_map": False,
        "video.fps": FPS,
        "video.channels": 3,
        "has_audio": False,
    }
    out = decode_video(path, expected_frames=30)
    assert out.dtype == np.uint8 and out.shape == frames.shape
    mae = np.abs(out.astype(np.int16) - frames).mean()
    assert mae < MAE_BOUND, mae
    assert video_info(path) == {"frames": 30, "fps": FPS, "height": 64, "width": 64, "codec": codec, "pix_fmt": "yuv420p"}


def test_av1_is_decoded_by_dav1d(tmp_path):
    path = tmp_path / "a.mp4"
    encode_video(path, scene(4), FPS)  # the default codec: av1 by libsvtav1
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "libdav1d"


@pytest.mark.parametrize("codec,g", [("av1", 2), ("av1", 12), ("h264", 2), ("h264", 12)])
def test_decode_frames_returns_the_frames_asked_for(tmp_path, codec, g):
    n = 80
    path = tmp_path / "s.mp4"
    encode_video(path, stamped(n), FPS, codec=codec, g=g)
    assert [stamp_of(f) for f in decode_video(path, n)] == list(range(n))
    rng = np.random.default_rng(g)
    idx = np.concatenate([rng.integers(0, n, 40), [n - 1, 0, n - 1, 13, 12, 11, 11, 40, 79, 1]])
    got = decode_frames(path, idx)
    assert got.shape == (len(idx), 64, 64, 3)
    assert [stamp_of(f) for f in got] == idx.tolist()
    assert [stamp_of(f) for f in decode_frames(path, [5])] == [5]
    assert decode_frames(path, []).shape == (0, 64, 64, 3)


def test_decode_frames_equals_decode_video(tmp_path):
    path = tmp_path / "s.mp4"
    encode_video(path, scene(25), FPS, codec="h264", g=6)
    full = decode_video(path)
    idx = [24, 3, 3, 17, 0, 9]
    np.testing.assert_array_equal(decode_frames(path, idx), full[idx])


@pytest.mark.parametrize("codec", ["av1", "h264"])
@pytest.mark.parametrize("fps", [15, 30, 7])
def test_frame_i_is_at_i_over_fps(tmp_path, codec, fps):
    path = tmp_path / "t.mp4"
    encode_video(path, scene(9), fps, codec=codec)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        times = [f.pts * video._fraction(s.time_base) for f in c.decode(s)]
        assert s.frames == 9
    assert times == [Fraction(i, fps) for i in range(9)]


def test_hevc_when_available(tmp_path):
    if "hevc" not in CODECS:
        pytest.skip("this FFmpeg has no libx265")
    path = tmp_path / "h.mp4"
    encode_video(path, stamped(30), FPS, codec="hevc", g=5)
    assert [stamp_of(f) for f in decode_frames(path, [9, 2, 29])] == [9, 2, 29]
    # x265 makes open GOPs: seeking to the keyframe before a frame can land past it (frames that show
    # before a keyframe are decoded after it); decode_frames then seeks again from further back
    assert [stamp_of(decode_frames(path, [i])[0]) for i in range(30)] == list(range(30))
    assert video_info(path)["codec"] == "hevc"


@pytest.mark.parametrize("codec", ["av1", "h264"])
def test_concat_appends_episodes_without_reencoding(tmp_path, codec):
    frames = stamped(60)
    bounds = [(0, 7), (7, 8), (8, 31), (31, 60)]  # a 1-frame episode: h264 reorders frames around it
    parts = []
    for k, (a, b) in enumerate(bounds):
        parts.append(tmp_path / f"ep{k}.mp4")
        encode_video(parts[-1], frames[a:b], FPS, codec=codec)
    joined = tmp_path / "file-000.mp4"
    assert concat_videos(parts, joined) == [a for a, _ in bounds]
    assert [stamp_of(f) for f in decode_video(joined, 60)] == list(range(60))
    assert [stamp_of(decode_frames(joined, [i])[0]) for i in (59, 31, 30, 8, 7, 6, 0)] == [59, 31, 30, 8, 7, 6, 0]
    with av.open(str(joined)) as c:
        s = c.streams.video[0]
        assert [f.pts * video._fraction(s.time_base) for f in c.decode(s)] == [Fraction(i, FPS) for i in range(60)]
    assert video_info(joined) == {"frames": 60, "fps": FPS, "height": 64, "width": 64, "codec": codec, "pix_fmt": "yuv420p"}
    _assert_even_rate(joined)
    # appending one episode at a time to the file itself gives the same packets
    acc = tmp_path / "acc.mp4"
    encode_video(acc, frames[:7], FPS, codec=codec)
    for part in parts[1:]:
        start = video_info(acc)["frames"]
        assert concat_videos([acc, part], acc) == [0, start]
    np.testing.assert_array_equal(decode_video(acc), decode_video(joined))
    _assert_even_rate(acc)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in parts] + ["file-000.mp4", "acc.mp4"])


def _assert_even_rate(path):
    """LeRobot's torchcodec decoder maps timestamps to frames with the container's average frame rate."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert video._fraction(s.average_rate) == video._fraction(s.guessed_rate) == FPS
        dts = [p.dts for p in c.demux(s) if p.dts is not None]
        assert len(set(np.diff(dts).tolist())) == 1


def test_concat_refuses_mismatched_videos(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    encode_video(a, stamped(4), FPS, codec="h264")
    encode_video(b, stamped(4), 15, codec="h264")
    out = tmp_path / "out.mp4"
    _raises_naming(b, concat_videos, [a, b], out, match="cannot be joined")
    encode_video(b, scene(4, 32, 32), FPS, codec="h264")
    _raises_naming(b, concat_videos, [a, b], out, match="cannot be joined")
    encode_video(b, stamped(4), FPS, codec="av1")
    _raises_naming(b, concat_videos, [a, b], out, match="cannot be joined")
    _raises_naming(out, concat_videos, [], out, match="nothing to join")
    missing = tmp_path / "missing.mp4"
    _raises_naming(missing, concat_videos, [a, missing], out, match="not found")
    assert not out.exists()


def _raises_naming(path, fn, *args, match=None, **kwargs):
    with pytest.raises(MimeticError) as e:
        fn(*args, **kwargs)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg, msg
    if match:
        assert match in msg, msg
    return msg


def test_expected_frames_mismatch(tmp_path):
    path = tmp_path / "m.mp4"
    encode_video(path, scene(5), FPS)
    _raises_naming(path, decode_video, path, expected_frames=6, match="expected 6")


@pytest.mark.parametrize("codec", ["av1", "h264"])
def test_truncated_file(tmp_path, codec):
    path = tmp_path / "full.mp4"
    encode_video(path, scene(20), FPS, codec=codec)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    for size in (len(data) // 2, len(data) - 300, 40):
        cut.write_bytes(data[:size])
        for fn, args in ((decode_video, ()), (decode_frames, ([0, 19],)), (video_info, ())):
            _raises_naming(cut, fn, cut, *args)


def test_truncated_faststart_file(tmp_path):
    """Index first (as `-movflags faststart` writes): a cut file opens, but frames are missing."""
    path = tmp_path / "fs.mp4"
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for i, f in enumerate(scene(30)):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = i
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    assert decode_video(path).shape[0] == 30
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    _raises_naming(path, decode_video, path, match="truncated")
    _raises_naming(path, decode_frames, path, [29])


def test_garbage_empty_and_missing_files(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n")
    for path in (garbage, empty, text):
        for fn in (decode_video, video_info):
            _raises_naming(path, fn, path)
        _raises_naming(path, decode_frames, path, [0])
    missing = tmp_path / "nope" / "file-000.mp4"
    for fn in (decode_video, video_info):
        _raises_naming(missing, fn, missing, match="not found")
    _raises_naming(missing, decode_frames, missing, [0], match="not found")
    _raises_naming(tmp_path, decode_video, tmp_path, match="not found")  # a folder is not a video


def test_bad_indices(tmp_path):
    path = tmp_path / "b.mp4"
    encode_video(path, scene(6), FPS, codec="h264")
    _raises_naming(path, decode_frames, path, [6], match="[0, 6)")
    _raises_naming(path, decode_frames, path, [-1])
    _raises_naming(path, decode_frames, path, [0.5])
    _raises_naming(path, decode_frames, path, [[0, 1]])


def test_bad_frames_and_settings(tmp_path):
    path = tmp_path / "x.mp4"
    good = scene(3)
    _raises_naming(path, encode_video, path, good.astype(np.float32), FPS, match="uint8")
    _raises_naming(path, encode_video, path, good[..., :1], FPS, match="(T, H, W, 3)")
    _raises_naming(path, encode_video, path, good[0], FPS)
    _raises_naming(path, encode_video, path, good[:0], FPS)
    _raises_naming(path, encode_video, path, good.tolist(), FPS, match="numpy")
    _raises_naming(path, encode_video, path, good, FPS, codec="mpeg9", match="unknown codec")
    _raises_naming(path, encode_video, path, good, 0, match="fps")
    _raises_naming(path, encode_video, path, good, 29.97, match="fps")
    _raises_naming(path, encode_video, path, good, 300, match="240 fps")
    _raises_naming(path, encode_video, path, good, FPS, g=0, match="g (frames between keyframes)")
    _raises_naming(path, encode_video, path, good, FPS, crf="best", match="libsvtav1 failed")
    _raises_naming(path, encode_video, path, good, FPS, pix_fmt="rgb24", match="pix_fmt")
    _raises_naming(path, encode_video, path, scene(3, 63, 64), FPS, match="even")
    _raises_naming(path, encode_video, path, scene(3, 64, 63), FPS, codec="h264", match="even")
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_codec_missing_from_this_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "CODECS", {k: v for k, v in CODECS.items() if k != "h264"})
    path = tmp_path / "x.mp4"
    _raises_naming(path, encode_video, path, scene(2), FPS, codec="h264", match="lacks")


def test_small_frames(tmp_path):
    path = tmp_path / "small.mp4"
    msg = _raises_naming(path, encode_video, path, np.zeros((3, 2, 2, 3), np.uint8), FPS, match="at least")
    assert "h264" in msg and "PNG" in msg
    if video.MIN_SIDE["libsvtav1"] > 4:
        pytest.skip("this PyAV's SVT-AV1 is older than the one in PyAV 18.1")
    tiny = np.zeros((3, 4, 6, 3), np.uint8) + np.arange(3, dtype=np.uint8)[:, None, None, None] * 80
    encode_video(path, tiny, FPS)  # the smallest av1 accepts
    assert np.abs(decode_video(path, 3).astype(int) - tiny).max() <= 3
    encode_video(path, tiny[:, :2, :2], FPS, codec="h264")  # h264 takes 2x2
    assert decode_video(path, 3).shape == (3, 2, 2, 3)


def test_png_round_trip_is_exact():
    frame = np.random.default_rng(1).integers(0, 256, (37, 51, 3), dtype=np.uint8)
    data = encode_png(frame)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out = decode_png(data)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, frame)
    np.testing.assert_array_equal(decode_png(encode_png(np.zeros((1, 1, 3), np.uint8))), np.zeros((1, 1, 3)))
    for bad in (b"", b"not a png", data[: len(data) // 2]):
        with pytest.raises(MimeticError, match="PNG"):
            decode_png(bad)
    for bad in (frame.astype(np.float32), frame[..., 0], frame[..., :2]):
        with pytest.raises(MimeticError, match="uint8"):
            encode_png(bad)


def test_atomic_write_leaves_old_file_and_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "v.mp4"
    encode_video(path, scene(4), FPS, codec="h264")
    before = path.read_bytes()
    # the encoder failing after the container was started
    monkeypatch.setitem(video._ENCODER_OPTIONS, "libx264", {"preset": "no-such-preset"})
    _raises_naming(path, encode_video, path, scene(8), FPS, codec="h264", match="libx264 failed")
    monkeypatch.undo()
    # the rename failing (disk full, permissions) after the bytes were written
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        encode_video(path, scene(8), FPS, codec="h264")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
    encode_video(path, scene(8), FPS, codec="h264")
    assert decode_video(path).shape[0] == 8 and sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
