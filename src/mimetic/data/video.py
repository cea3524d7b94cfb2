"""Camera frames on disk: MP4 videos as LeRobot v3 stores them, and PNG images.

Videos are written with PyAV (FFmpeg): one MP4 holds a run of uint8 RGB frames, frame ``i`` at
timestamp exactly ``i / fps`` (pts ``i`` in a ``1/fps`` time base, rescaled by the MP4 muxer), which
is how LeRobot finds a frame: ``from_timestamp + frame_index / fps``. The defaults are LeRobot's:
AV1 (libsvtav1), yuv420p, a keyframe every 2 frames (``g=2``), ``crf=30``. AV1 files are decoded with
libdav1d, H.264 and HEVC with FFmpeg's own decoders, all with threads (``thread_type="AUTO"``).
`decode_frames` returns exact frames by index (the frame whose timestamp is index / fps), seeking to
the keyframe before each wanted frame. `concat_videos` appends episodes to a file by copying
compressed packets (no second encode, no extra loss), keeping every timestamp at ``i / fps``.

Limits of the encoders bundled with PyAV 18.1 (SVT-AV1 4.1.0, x264, x265 4.2), found by trying them:
libsvtav1 takes frames from 4x4 up (every even size from 4x4 to 32x32 round-trips) and at most
240 fps; libx265 needs at least 16x16; libx264 takes 2x2. yuv420p needs an even width and height
with every codec. The older SVT-AV1 in the PyAV 15 and 16 wheels kills the process (SIGFPE) on
frames under 26 pixels wide, so with PyAV < 18.1 av1 needs 32x32. Frames smaller than a codec takes
are refused with a MimeticError that suggests ``codec="h264"`` or PNG storage (`encode_png`), which
is lossless and takes any size.

Every problem a user can cause (missing, truncated or corrupt file, wrong frame count, bad frames,
unknown codec or one this FFmpeg lacks) raises `MimeticError` with one line naming the file.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from mimetic.data.io import atomic_write_bytes
from mimetic.errors import MimeticError

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its settings to stderr at every encode otherwise; errors only
_ENCODERS = {"av1": "libsvtav1", "h264": "libx264", "hevc": "libx265"}  # user-facing name -> encoder


def _has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


CODECS = {name: enc for name, enc in _ENCODERS.items() if _has_encoder(enc)}
DEFAULT_CODEC = "av1"
DEFAULT_PIX_FMT = "yuv420p"
DEFAULT_G = 2
DEFAULT_CRF = 30
# Smallest side and largest frame rate each encoder accepts (measured, see the module docstring).
MIN_SIDE = {"libsvtav1": 4, "libx265": 16, "libx264": 2}
if tuple(int(x) for x in av.__version__.split(".")[:2] if x.isdigit()) < (18, 1):
    # the older SVT-AV1 in PyAV 15 and 16 wheels kills the process (SIGFPE) on frames under 26 pixels wide
    MIN_SIDE["libsvtav1"] = 32
MAX_FPS = {"libsvtav1": 240}
_ENCODER_OPTIONS = {"libx265": {"x265-params": "log-level=error"}}  # x265 prints its settings otherwise
THREAD_TYPE = "AUTO"  # decoder threading: frame and slice threads, as many as FFmpeg sees cores


def _fraction(x) -> Fraction:
    """A Fraction from PyAV's rationals (Fraction up to 18, av.AVRational from 19)."""
    return Fraction(x.numerator, x.denominator)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _check_frames(path: Path, frames) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise MimeticError(f"video {path}: frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise MimeticError(
            f"video {path}: frames must be uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} {tuple(frames.shape)}"
        )
    return np.ascontiguousarray(frames)


def _check_settings(path: Path, codec: str, pix_fmt: str, fps, g, height: int, width: int) -> str:
    """The encoder name, after checking that it exists and accepts these settings."""
    if codec not in _ENCODERS:
        raise MimeticError(f"video {path}: unknown codec {codec!r}; choose one of {sorted(CODECS)}")
    encoder = _ENCODERS[codec]
    if codec not in CODECS:
        raise MimeticError(
            f"video {path}: codec {codec!r} needs the encoder {encoder}, which this FFmpeg (PyAV {av.__version__}) "
            f"lacks; choose one of {sorted(CODECS)}"
        )
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or fps <= 0:
        raise MimeticError(f"video {path}: fps must be a positive integer, got {fps!r}")
    if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1:
        raise MimeticError(f"video {path}: g (frames between keyframes) must be a positive integer, got {g!r}")
    if fps > MAX_FPS.get(encoder, fps):
        raise MimeticError(f"video {path}: {encoder} takes at most {MAX_FPS[encoder]} fps, got {fps}; use codec='h264'")
    formats = [f.name for f in av.Codec(encoder, "w").video_formats or ()]
    if pix_fmt not in formats:
        raise MimeticError(f"video {path}: {encoder} cannot write pix_fmt {pix_fmt!r}; it takes {formats}")
    if ("420" in pix_fmt and (height % 2 or width % 2)) or ("422" in pix_fmt and width % 2):
        raise MimeticError(
            f"video {path}: {pix_fmt} needs an even width and height, got {width}x{height}; "
            f"crop or pad the frames, or use pix_fmt='yuv444p' with codec='h264'"
        )
    if min(height, width) < MIN_SIDE.get(encoder, 1):
        raise MimeticError(
            f"video {path}: {encoder} takes frames of at least {MIN_SIDE[encoder]}x{MIN_SIDE[encoder]}, "
            f"got {width}x{height}; use codec='h264' or store the frames as PNG images (encode_png)"
        )
    return encoder


def encode_video(
    path,
    frames: np.ndarray,
    fps: int,
    *,
    codec: str = DEFAULT_CODEC,
    pix_fmt: str = DEFAULT_PIX_FMT,
    g: int = DEFAULT_G,
    crf: int = DEFAULT_CRF,
) -> dict:
    """Write uint8 frames (T, H, W, 3) to an MP4 at `path`, atomically; return LeRobot's video info block.

    The file is encoded in memory (it is far smaller than `frames`) and then written to a temporary name
    in the same folder, fsynced and renamed, so `path` holds either its old content or the whole new video.
    Frame ``i`` gets timestamp ``i / fps`` exactly.
    """
    path = Path(path)
    frames = _check_frames(path, frames)
    n, height, width, _ = frames.shape
    encoder = _check_settings(path, codec, pix_fmt, fps, g, height, width)
    fps = int(fps)
    buf = io.BytesIO()
    try:
        with av.open(buf, "w", format="mp4") as container:
            stream = container.add_stream(encoder, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            stream.codec_context.time_base = Fraction(1, fps)
            stream.options = {"g": str(g), "crf": str(crf), **_ENCODER_OPTIONS.get(encoder, {})}
            for i in range(n):
                frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    except (av.FFmpegError, ValueError) as e:
        hint = ""
        if codec == "av1" and min(height, width) < 64:  # SVT-AV1 before 1.x took nothing under 64x64
            hint = "; small frames: use codec='h264' or store the frames as PNG images (encode_png)"
        raise MimeticError(
            f"video {path}: {encoder} failed on {n} frames of {width}x{height} at {fps} fps "
            f"(g={g}, crf={crf}, {pix_fmt}): {_one_line(e)}{hint}"
        ) from None
    atomic_write_bytes(path, buf.getvalue())
    return {
        "video.height": int(height),
        "video.width": int(width),
        "video.codec": codec,
        "video.pix_fmt": pix_fmt,
        "video.is_depth_map": False,
        "video.fps": fps,
        "video.channels": 3,
        "has_audio": False,
    }


class _Reader:
    """An open MP4 with its video stream, frame count, and frame index <-> pts conversion."""

    def __init__(self, path, thread_type: str = THREAD_TYPE, threads: int = 0):
        self.path = Path(path)
        if not self.path.is_file():
            raise MimeticError(f"video {self.path} not found")
        try:
            self.container = av.open(str(self.path), "r")
        except (av.FFmpegError, OSError, ValueError) as e:
            raise MimeticError(f"video {self.path} is not a readable video file: {_one_line(e)}") from None
        try:
            if not self.container.streams.video:
                raise MimeticError(f"video {self.path} has no video stream")
            self.stream = self.container.streams.video[0]
            self.stream.codec_context.thread_type = thread_type
            if threads:
                self.stream.codec_context.thread_count = threads  # 0: as many as FFmpeg sees cores
            # guessed_rate: r_frame_rate, from the timestamps, as ffprobe reports it
            rate = self.stream.guessed_rate or self.stream.base_rate or self.stream.average_rate
            if not rate or not self.stream.time_base:
                raise MimeticError(f"video {self.path} has no frame rate")
            self.fps = _fraction(rate)
            self.time_base = _fraction(self.stream.time_base)
            self.start = self.stream.start_time or 0
            self.frames = int(self.stream.frames or 0)  # the MP4 sample count; 0 if the container lacks it
            self.gop, self.last_key = 0, None  # keyframe spacing seen while decoding, last keyframe decoded
            self._reformatter = None
            if "mp4" in self.container.format.name:
                self._check_index()
        except BaseException:
            self.container.close()
            raise

    def _check_index(self) -> None:
        """An MP4 indexes every frame: a cut index or frames past the end of the file mean damage."""
        entries = getattr(self.stream, "index_entries", None)  # PyAV >= 17; older ones find damage when decoding
        if entries is None:
            return
        if len(entries) != self.frames:
            raise MimeticError(f"video {self.path} is corrupt: its index locates {len(entries)} of its {self.frames} frames")
        if entries:
            last, size = entries[len(entries) - 1], self.path.stat().st_size
            if last.pos + last.size > size:
                raise MimeticError(f"video {self.path} is truncated: its frames end at byte {last.pos + last.size}, the file has {size}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.container.close()

    def index(self, frame) -> int:
        if frame.pts is None:
            raise MimeticError(f"video {self.path} has a frame without a timestamp")
        return round((frame.pts - self.start) * self.time_base * self.fps)

    def pts(self, index: int) -> int:
        return self.start + round(Fraction(index) / self.fps / self.time_base)

    def decode(self):
        """Decoded frames from the current position; any FFmpeg failure becomes a MimeticError."""
        try:
            yield from self.container.decode(self.stream)
        except av.FFmpegError as e:
            raise MimeticError(f"video {self.path} is corrupt: {_one_line(e)}") from None

    def rgb(self, frame) -> np.ndarray:
        # one reformatter per file: VideoFrame.to_ndarray(format=...) builds a new conversion context per
        # frame, which made the RGB conversion, not the decoding, the bottleneck (~2.5x slower, same output)
        if self._reformatter is None:
            self._reformatter = av.video.reformatter.VideoReformatter()
        return self._reformatter.reformat(frame, format="rgb24").to_ndarray()


def decode_video(path, expected_frames: int | None = None) -> np.ndarray:
    """All frames of the video at `path`, uint8 (T, H, W, 3), in presentation order."""
    with _Reader(path) as r:
        images = (r.rgb(frame) for frame in r.decode())
        if not r.frames:  # a container that does not count its frames
            out = list(images)
            out = np.stack(out) if out else np.zeros((0, r.stream.height, r.stream.width, 3), np.uint8)
        else:  # fill in place: no second copy of a long video
            out = np.empty((r.frames, r.stream.height, r.stream.width, 3), np.uint8)
            n = 0
            for n, image in enumerate(images, 1):
                if n > r.frames:
                    raise MimeticError(f"video {r.path} is corrupt: it decodes to more than its {r.frames} frames")
                out[n - 1] = image
            if n != r.frames:
                raise MimeticError(f"video {r.path} is truncated or corrupt: decoded {n} of its {r.frames} frames")
    if expected_frames is not None and len(out) != expected_frames:
        raise MimeticError(f"video {r.path} has {len(out)} frames, expected {expected_frames}")
    if not len(out):
        raise MimeticError(f"video {r.path} has no frames")
    return out


def decode_frames(path, indices) -> np.ndarray:
    """The frames at `indices` (any order, repeats allowed), uint8 (len(indices), H, W, 3).

    A frame's index is its timestamp times fps. For each wanted frame the reader seeks to the keyframe
    at or before it and decodes forward (or keeps decoding when the frame is a few frames ahead):
    `RandomAccess`, which lazy datasets keep open.
    """
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise MimeticError(f"video {path}: frame indices must be a 1-d sequence of integers, got {idx.dtype} {idx.shape}")
    idx = idx.astype(np.int64)
    reader = RandomAccess(path, thread_type=THREAD_TYPE, threads=0)
    try:
        r = reader.r
        if idx.size and (idx.min() < 0 or (r.frames and idx.max() >= r.frames)):
            raise MimeticError(f"video {r.path} has {r.frames} frames; frame indices must be in [0, {r.frames}), got {idx.min()}..{idx.max()}")
        if not idx.size:
            return np.zeros((0, r.stream.height, r.stream.width, 3), np.uint8)
        got: dict[int, np.ndarray] = {}
        reader.read(np.unique(idx).tolist(), got.__setitem__, en_route=False)
    finally:
        reader.close()
    return np.stack([got[t] for t in idx.tolist()])


class _Overshot(Exception):
    """Decoding after a seek began past the wanted frame (the keyframe found was after it)."""


class RandomAccess:
    """One MP4 kept open and read by frame index, its decoder kept between calls (`mimetic.data.lazy`).

    `read(wanted, keep)` decodes the frames at `wanted` (sorted, unique) exactly as `decode_frames` finds
    them: seek to the keyframe at or before a frame and decode forward, or keep decoding from the last
    frame when the wanted one is at most a keyframe interval ahead (so in-order reads, as validation
    batches make, never seek). `keep(index, rgb)` receives every frame decoded on the way as well: the
    rest of a keyframe interval costs nothing more to keep than to throw away (`en_route=False`: only the
    wanted frames). One decoder thread by default: threaded decoders (dav1d's, FFmpeg's frame threads)
    decode several frames past the one asked for after every seek: random reads of an open AV1 file
    went 1.8x faster with one (96x96, 2 cores; H.264 the same either way). MP4 seeking goes by decode timestamps, which can precede presentation
    timestamps (H.264 B-frames): if the first frame decoded lies past the wanted one, it seeks again
    from further back.
    """

    def __init__(self, path, thread_type: str = "SLICE", threads: int = 1):
        self.r = _Reader(path, thread_type=thread_type, threads=threads)
        self._it, self._last = None, -1

    @property
    def frames(self) -> int:
        return self.r.frames

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.r.stream.height), int(self.r.stream.width), 3)

    def close(self) -> None:
        self._it = None
        self.r.container.close()

    def read(self, wanted, keep, en_route: bool = True) -> None:
        r, seen = self.r, set()
        for t in wanted:
            t = int(t)
            if t in seen:
                continue
            if r.frames and not 0 <= t < r.frames:
                raise _frame_error(MimeticError(f"video {r.path} has {r.frames} frames, not a frame {t}"), t)
            try:
                if self._it is not None and self._last < t <= self._last + max(r.gop, 2):
                    try:
                        self._run(t, keep, seen, en_route)
                        continue
                    except _Overshot:
                        pass
                self._seek(t, keep, seen, en_route)
            except MimeticError as e:
                self._it = None
                raise _frame_error(e, t) from None

    def _run(self, t: int, keep, seen: set, en_route: bool) -> None:
        r = self.r
        for frame in self._it:
            k = r.index(frame)
            if frame.key_frame:
                if r.last_key is not None:
                    r.gop = max(r.gop, k - r.last_key)
                r.last_key = k
            if k > t:
                self._it = None
                raise _Overshot(k)
            self._last = k
            if k not in seen and (k == t or en_route):
                seen.add(k)
                keep(k, r.rgb(frame))
            if k == t:
                return
        self._it = None
        raise MimeticError(f"video {r.path} ends before frame {t} (truncated or corrupt)")

    def _seek(self, t: int, keep, seen: set, en_route: bool) -> None:
        r, back = self.r, 0
        while True:
            start = max(t - back, 0)
            try:
                r.container.seek(r.pts(start), stream=r.stream, backward=True, any_frame=False)
            except av.FFmpegError as e:
                raise MimeticError(f"video {r.path}: cannot seek to frame {t}: {_one_line(e)}") from None
            self._it, self._last, r.last_key = r.decode(), -1, None
            try:
                return self._run(t, keep, seen, en_route)
            except _Overshot as e:
                if start == 0:
                    raise MimeticError(f"video {r.path} has no frame {t} (next frame is {e.args[0]})") from None
                back = max(2 * back, 1)


def _frame_error(e: MimeticError, frame: int) -> MimeticError:
    """`e`, remembering which frame of the file was being read (the caller names it)."""
    e.frame = frame
    return e


def concat_videos(paths, path) -> list[int]:
    """Join MP4s written by `encode_video` with the same settings into one at `path`, without re-encoding.

    This is how episodes are appended to a LeRobot v3 video file: encode the new episode on its own,
    then join the file and the episode (copying compressed packets loses nothing, unlike decoding and
    encoding again). Frame timestamps stay exactly ``i / fps`` over the joined file, and decode times
    stay evenly spaced, so the container's average frame rate (which LeRobot's torchcodec decoder uses
    to turn timestamps into frame indices) stays ``fps``. Every input must have the same codec, size,
    pix_fmt, fps and codec header (the same encoder settings). `path` may be one of the inputs; it is
    replaced atomically. Returns each input's first frame index in the result (its LeRobot
    ``from_timestamp`` is that index / fps).
    """
    paths, path = [Path(p) for p in paths], Path(path)
    if not paths:
        raise MimeticError(f"video {path}: nothing to join")
    # First pass, from the indexes only: check that the inputs fit together; find the largest decode
    # delay (B-frames make a file start decoding before its first frame shows).
    ref, delay = None, Fraction(0)
    for src in paths:
        with _Reader(src) as r:
            ctx = r.stream.codec_context
            sig = (ctx.codec.canonical_name, ctx.width, ctx.height, ctx.pix_fmt, r.fps, bytes(ctx.extradata or b""))
            ref = ref or sig
            if sig != ref:
                raise MimeticError(
                    f"video {src} cannot be joined to {paths[0]}: {sig[:4]} at {sig[4]} fps vs {ref[:4]} at {ref[4]} fps"
                    + (", or another encoder header" if sig[:5] == ref[:5] else "")
                )
            if "mp4" not in r.container.format.name or not r.frames:
                raise MimeticError(f"video {src} is not an MP4 with frames; only those can be joined")
            first = next((p for p in r.container.demux(r.stream) if p.dts is not None), None)
            if first is None:
                raise MimeticError(f"video {src} has no frames to join")
            delay = max(delay, (r.start - first.dts) * r.time_base)
    frame = 1 / ref[4]
    buf, starts, offset = io.BytesIO(), [], 0
    with av.open(buf, "w", format="mp4") as out:
        ostream = None
        for src in paths:
            with _Reader(src) as r:
                if ostream is None:
                    ostream = out.add_stream_from_template(r.stream, opaque=True)
                shift = r.pts(offset) - r.start  # move the input's timestamps `offset` frames on
                j = 0
                try:
                    for packet in r.container.demux(r.stream):
                        if packet.dts is None:  # the demuxer's end-of-stream marker
                            continue
                        packet.pts += shift
                        # decode times: one frame apart over the whole output, all with the largest delay
                        packet.dts = round(((offset + j) * frame - delay) / r.time_base)
                        packet.duration = round(frame / r.time_base)
                        if packet.dts > packet.pts:
                            raise MimeticError(f"video {src} cannot be joined to {paths[0]}: its decode times are uneven")
                        packet.stream = ostream
                        out.mux(packet)
                        j += 1
                except av.FFmpegError as e:
                    raise MimeticError(f"video {src} cannot be joined to {paths[0]}: {_one_line(e)}") from None
                if j != r.frames:
                    raise MimeticError(f"video {src} is truncated or corrupt: it has {j} of its {r.frames} frames")
                starts.append(offset)
                offset += r.frames
    atomic_write_bytes(path, buf.getvalue())
    return starts


def video_info(path) -> dict:
    """What the container says: frames, fps, height, width, codec, pix_fmt."""
    with _Reader(path) as r:
        s = r.stream
        ctx = s.codec_context
        return {
            "frames": r.frames,
            "fps": int(r.fps) if r.fps.denominator == 1 else float(r.fps),
            "height": int(ctx.height),
            "width": int(ctx.width),
            "codec": ctx.codec.canonical_name,
            "pix_fmt": ctx.pix_fmt,
        }


def encode_png(frame: np.ndarray) -> bytes:
    """Lossless PNG bytes of one uint8 (H, W, 3) frame."""
    from PIL import Image

    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        what = f"{frame.dtype} {tuple(frame.shape)}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise MimeticError(f"PNG image: the frame must be uint8 (H, W, 3), got {what}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """The uint8 (H, W, 3) frame in PNG bytes."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                raise MimeticError(f"PNG image: the {len(data)} bytes are a {img.format} image, not PNG")
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise MimeticError(f"PNG image: the {len(data)} bytes are not a readable PNG: {_one_line(e)}") from None
