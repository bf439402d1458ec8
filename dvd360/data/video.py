"""Video files in and out: mp4/gif/folders of frames read as uint8 RGB, H.264 mp4 written.

Frames are numpy uint8 arrays (F, H, W, 3), RGB. Reading and writing go through PyAV
(FFmpeg's libraries; its wheels ship libx264). Every reader goes through `stream_frames`: one
frame decoded at a time, converted to RGB only when asked (`StreamedFrame.rgb`), so memory
does not grow with the video's length; a header whose frame is over `MAX_FRAME_PIXELS`, or a
bitstream that goes on past its bound (`frame_limit`), is a `VideoError` before anything
grows. Two kinds of mp4 are written, both with
`+faststart` (the index first) and bytes that depend only on the frames, fps and encoder
settings (single-threaded x264, FFmpeg's bit-exact mode: no library version strings, no
creation times; see `_mbtree_option` for the one setting that depends on the width):

- browser (the default): H.264 High, yuv420p (BT.601, limited range), `crf` quality. Every
  browser plays it; chroma is halved and blocks are quantised, which adds a seam at the ERP
  edge (seam ratio 1.1-3.9 for seamless content at crf 18-28, see `metrics.seam`).
- lossless: H.264 High 4:4:4 Predictive in RGB (libx264rgb, qp 0): decodes to the very
  frames written, so a seamless render stays seamless as stored. Browsers do not all play
  it: it is for data that is read back and scored (the synthetic dataset), not for viewing.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import av
import numpy as np

from dvd360.atomic import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".gif", ".webm", ".mkv", ".mov", ".avi")  # containers PyAV opens
DEFAULT_CRF = 18
FRAMES_KEY = "frames"  # the array of an .npz of frames
MAX_FRAME_PIXELS = 12_288 * 6_144  # a 12K ERP frame (75.5 Mpx; rgb24 226 MB): larger headers are refused
MAX_STREAM_FRAMES = 100_000  # frames decoded at most when the header gives no count (55 min at 30 fps)


class VideoError(Exception):
    """A video that cannot be read or written; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says: frame count, frame size in pixels, frames per second."""

    frames: int
    height: int
    width: int
    fps: float


def _frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise VideoError(folder, f"folder holds no frames ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _open(path: Path):
    if not path.exists():
        raise VideoError(path, "no such file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:  # damaged metadata: UnicodeDecodeError
        raise VideoError(path, f"unreadable video ({error})") from error
    if not container.streams.video:
        container.close()
        raise VideoError(path, "holds no video stream")
    return container


def probe_video(path: str | Path, verify: bool = False) -> VideoInfo:
    """Frame count, size and fps from the header (a folder: its image files and the first one's size).

    `verify=True` also demuxes every packet (no decoding, so it stays cheap) and raises
    `VideoError` when fewer complete packets than the header promises are present: that is
    how a truncated mp4 whose index survived shows itself.
    """
    path = Path(path)
    if path.is_dir():
        from PIL import Image

        files = _frame_files(path)
        try:
            with Image.open(files[0]) as image:
                width, height = image.size
        except OSError as error:
            raise VideoError(files[0], f"unreadable image ({error})") from error
        return VideoInfo(frames=len(files), height=height, width=width, fps=0.0)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        declared = stream.frames
        if verify or declared == 0:
            complete = 0
            try:
                for packet in container.demux(stream):
                    complete += bool(packet.size) and not packet.is_corrupt
                    if complete > frame_limit(declared):
                        raise VideoError(path, f"holds more than {frame_limit(declared)} frames (the header lists "
                                               f"{declared or 'none'}): a bitstream that does not end is refused")
            except av.error.FFmpegError as error:
                raise VideoError(path, f"unreadable video data ({error})") from error
            if declared and complete < declared:
                raise VideoError(path, f"truncated: header lists {declared} frames, "
                                       f"only {complete} are complete")
            declared = declared or complete
        if declared == 0:
            raise VideoError(path, "holds zero frames")
        return VideoInfo(frames=declared, height=stream.codec_context.height,
                         width=stream.codec_context.width, fps=float(rate) if rate else 0.0)
    finally:
        container.close()


def _check_frame_size(path: Path, height: int, width: int) -> None:
    if height * width > MAX_FRAME_PIXELS:
        raise VideoError(path, f"frame size {width}x{height} in the header is over the limit of "
                               f"{MAX_FRAME_PIXELS / 1e6:.1f} Mpx (12288x6144); refused before decoding")


def frame_limit(declared: int) -> int:
    """Frames a stream may decode before it is refused as never-ending: 2 x the header's count + 16
    (a count slightly off, as variable frame rate gives, passes), `MAX_STREAM_FRAMES` without one."""
    return 2 * declared + 16 if declared else MAX_STREAM_FRAMES


@dataclass(frozen=True)
class StreamedFrame:
    """One frame of a stream: its index in the video and `rgb()`, its uint8 (H, W, 3) RGB pixels
    (converted on the call: a frame never asked for is only decoded)."""

    index: int
    rgb: Callable[[], np.ndarray]


def stream_frames(path: str | Path) -> tuple[VideoInfo, Iterator[StreamedFrame]]:
    """(what the header says, the frames one at a time) of a video file, a folder of PNG/JPG frames
    or an `.npz` of frames (uint8 array `frames`, as the generate stage writes beside its mp4s).

    The header's frame count is 0 when it gives none. The iterator raises `VideoError` naming the
    file when the data is corrupt, when it ends before the header's count (truncated), when it
    goes past `frame_limit` (never-ending), or when a folder's image is unreadable or of another
    size than the first. Close the iterator (`contextlib.closing`) when stopping early.
    """
    path = Path(path)
    if path.is_dir():
        files = _frame_files(path)
        info = probe_video(path)
        _check_frame_size(path, info.height, info.width)
        return info, (StreamedFrame(i, _image_loader(file, info)) for i, file in enumerate(files))
    if path.suffix.lower() == ".npz":
        array = _npz_frames(path)
        info = VideoInfo(frames=len(array), height=array.shape[1], width=array.shape[2], fps=0.0)
        return info, (StreamedFrame(i, lambda i=i: array[i]) for i in range(len(array)))
    container = _open(path)
    stream = container.streams.video[0]
    try:
        height, width = stream.codec_context.height, stream.codec_context.width
        _check_frame_size(path, height, width)
    except VideoError:
        container.close()
        raise
    rate = stream.average_rate or stream.guessed_rate
    info = VideoInfo(frames=stream.frames, height=height, width=width, fps=float(rate) if rate else 0.0)
    return info, _decoded(path, container, stream, info.frames)


def _decoded(path: Path, container, stream, declared: int) -> Iterator[StreamedFrame]:
    stream.thread_type = "AUTO"  # frame and slice threads: the same frames, decoded sooner
    limit, count = frame_limit(declared), 0
    try:
        try:
            for frame in container.decode(stream):
                if count >= limit:
                    raise VideoError(path, f"decodes more than {limit} frames (the header lists "
                                           f"{declared or 'none'}): a bitstream that does not end is refused")
                _check_frame_size(path, frame.height, frame.width)
                yield StreamedFrame(count, lambda frame=frame: frame.to_ndarray(format="rgb24"))
                count += 1
        except av.error.FFmpegError as error:
            raise VideoError(path, f"truncated or corrupt after {count} frames ({error})") from error
        if declared and count < declared:
            raise VideoError(path, f"truncated: header lists {declared} frames, decoded {count}")
        if count == 0:
            raise VideoError(path, "holds zero frames")
    finally:
        container.close()


def _image_loader(file: Path, info: VideoInfo) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(file) as image:
                frame = np.asarray(image.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise VideoError(file, f"unreadable image ({error})") from error
        if frame.shape[:2] != (info.height, info.width):
            raise VideoError(file, f"frame of {frame.shape[1]}x{frame.shape[0]}, the folder's first frame is "
                                   f"{info.width}x{info.height}")
        return frame
    return load


def read_frames(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Decode a video (mp4, gif, ...), a folder of PNG/JPG frames or an `.npz` of frames to uint8
    (F, H, W, 3) RGB at its own size (`stream_frames`; for scoring, `data.protocol.read_video`).

    `indices` (increasing or not, repeats allowed) selects frames; decoding stops after the
    largest one. Raises `VideoError` naming the file when it is unreadable, truncated (the
    decoder fails or fewer frames than the header lists arrive) or has no frames.
    """
    path = Path(path)
    wanted = None if indices is None else set(int(i) for i in indices)
    last = None if wanted is None else max(wanted, default=-1)
    frames: dict[int, np.ndarray] = {}
    count = 0
    _, stream = stream_frames(path)
    with closing(stream):
        for frame in stream:
            if last is not None and frame.index > last:
                break
            count = frame.index + 1
            if wanted is None or frame.index in wanted:
                frames[frame.index] = frame.rgb()
    if count == 0:
        raise VideoError(path, "holds zero frames")
    if wanted is None:
        return np.stack([frames[i] for i in range(count)])
    missing = sorted(i for i in wanted if i not in frames)
    if missing:
        raise VideoError(path, f"has {count} frames; frame {missing[0]} was asked for")
    return np.stack([frames[int(i)] for i in indices])


def check_video(path: str | Path) -> VideoInfo:
    """`probe_video(verify=True)`, then decode every frame (without converting or keeping it):
    raises `VideoError` naming the file for what the header cannot show (zeroed or damaged data,
    fewer decodable frames than listed; in a folder, the first image that is unreadable or of
    another size). Costs one decode of the video.
    """
    path = Path(path)
    info = probe_video(path, verify=True)
    decoded = 0
    _, stream = stream_frames(path)
    with closing(stream):
        try:
            for frame in stream:
                if path.is_dir():
                    frame.rgb()
                decoded += 1
        except VideoError as error:
            if not isinstance(error.__cause__, av.error.FFmpegError):
                raise
            raise VideoError(path, f"corrupt: decoding fails after {decoded} of {info.frames} frames "
                                   f"({error.__cause__})") from error.__cause__
    return info


def _npz_frames(path: Path) -> np.ndarray:
    """The uint8 (F, H, W, 3) array `frames` of an npz."""
    import zipfile

    if not path.exists():
        raise VideoError(path, "no such file")
    try:
        with np.load(path) as data:
            if FRAMES_KEY not in data.files:
                raise VideoError(path, f"no '{FRAMES_KEY}' array (has {', '.join(data.files) or 'nothing'})")
            array = data[FRAMES_KEY]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise VideoError(path, f"unreadable npz ({error})") from error
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise VideoError(path, f"'{FRAMES_KEY}' must be uint8 (F, H, W, 3), got {array.dtype} {array.shape}")
    if len(array) == 0:
        raise VideoError(path, "holds zero frames")
    return array


def _to_frames(path: Path, frames: Iterable[np.ndarray] | np.ndarray) -> np.ndarray:
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] == 0:
        raise VideoError(path, f"frames must be (F>0, H, W, 3), got shape {array.shape}")
    if array.dtype != np.uint8:
        raise VideoError(path, f"frames must be uint8, got {array.dtype}")
    height, width = array.shape[1:3]
    if height % 2 or width % 2:
        raise VideoError(path, f"yuv420p needs even frame sizes, got {height}x{width}")
    return array


def _mbtree_option(width: int) -> dict[str, str]:
    """x264's macroblock-tree rate control, off for widths that are not a multiple of 128.

    With it on, those widths (measured: 64, 96, 112, 160 and 192 px) give 2-13 different files
    in 200 writes of the same frames (the cause is not traced in x264's source). Multiples of
    128 are deterministic (128, 256, 512 px: 200 writes each; 1024 px: 60) and keep it: it is
    x264's default and keeps repeated frames near-identical (repeat change 0.23 vs 0.43 without
    it, crf 28, `data.repeats`).
    """
    return {} if width % 128 == 0 else {"x264-params": "mbtree=0"}


def write_video(path: str | Path, frames: np.ndarray, fps: float = 8, crf: int = DEFAULT_CRF,
                lossless: bool = False) -> Path:
    """Write uint8 (F, H, W, 3) RGB frames (even H, W) as H.264 mp4, atomically.

    Browser-playable yuv420p at x264's constant rate factor `crf` (18 near-transparent, 23
    x264's default), or with `lossless=True` RGB 4:4:4 at qp 0 (bit-exact, `crf` unused).
    The same frames, fps and settings give byte-identical files on the same PyAV/FFmpeg build.
    """
    path = Path(path)
    array = _to_frames(path, frames)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp:
        try:
            with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
                container.flags |= av.container.Flags.bitexact.value
                stream = container.add_stream("libx264rgb" if lossless else "libx264", rate=rate)
                stream.width, stream.height = array.shape[2], array.shape[1]
                stream.pix_fmt = "rgb24" if lossless else "yuv420p"
                stream.codec_context.thread_count = 1
                quality = {"qp": "0"} if lossless else {"crf": str(crf), **_mbtree_option(array.shape[2])}
                stream.options = {**quality, "preset": "medium", "threads": "1"}
                for index, image in enumerate(array):
                    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                    frame.pts = index
                    container.mux(stream.encode(frame))
                container.mux(stream.encode(None))
        except av.error.FFmpegError as error:
            raise VideoError(path, f"cannot encode H.264 ({error})") from error
    return path
