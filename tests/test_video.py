"""Video I/O: round trips, browser-friendly deterministic H.264, clear errors naming the file."""

from __future__ import annotations

import hashlib

import av
import numpy as np
import pytest
from PIL import Image

from dvd360.data.video import VideoError, probe_video, read_frames, write_video
from web360_support import panning_clip


@pytest.fixture(scope="module")
def clip():
    return panning_clip(frames=8, height=32, width=64)[0]


@pytest.fixture(scope="module")
def mp4(tmp_path_factory, clip):
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", clip, fps=8)


def test_round_trip_and_probe(mp4, clip, tmp_path):
    info = probe_video(mp4, verify=True)
    assert (info.frames, info.height, info.width, info.fps) == (8, 32, 64, 8.0)
    frames = read_frames(mp4)
    assert frames.shape == clip.shape and frames.dtype == np.uint8
    # luma is kept at full resolution: grey content survives crf 18 almost unchanged
    grey = clip.mean(axis=-1, keepdims=True).repeat(3, axis=-1).astype(np.uint8)
    back = read_frames(write_video(tmp_path / "grey.mp4", grey)).astype(int)
    assert np.abs(back - grey).mean() < 1.5
    # flat colours come back in RGB order at the right level (BT.601, limited range)
    colours = np.array([[200, 50, 50], [50, 200, 50], [50, 50, 200], [250, 250, 10]], np.uint8)
    flat = np.broadcast_to(colours[:, None, None, :], (4, 16, 32, 3)).copy()
    back = read_frames(write_video(tmp_path / "flat.mp4", flat)).astype(int)
    assert np.abs(back - flat).max() <= 3


def test_selected_indices_in_any_order(mp4):
    every = read_frames(mp4)
    picked = read_frames(mp4, [5, 1, 5])
    np.testing.assert_array_equal(picked, every[[5, 1, 5]])
    with pytest.raises(VideoError, match="clip.mp4.*frame 9"):
        read_frames(mp4, [9])


def test_browser_friendly_h264(mp4):
    data = mp4.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: index first
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
    assert b"Lavf" not in data  # bit-exact: no library version strings


def test_same_frames_give_identical_bytes(tmp_path, clip, mp4):
    again = write_video(tmp_path / "again.mp4", clip, fps=8)
    assert again.read_bytes() == mp4.read_bytes()
    # widths that are not multiples of 128: with x264's macroblock tree on, 30 writes of each of
    # the first three gave several different files
    for height, width in ((32, 64), (64, 160), (96, 192), (64, 128), (128, 256)):
        frames = panning_clip(frames=8, height=height, width=width)[0]
        target = tmp_path / f"{width}.mp4"
        written = {hashlib.sha256(write_video(target, frames).read_bytes()).hexdigest() for _ in range(30)}
        assert len(written) == 1, f"{height}x{width}: {len(written)} different files from the same frames"
        target.unlink()
    other = clip.copy()
    other[0, 0, 0] = 255 - other[0, 0, 0]
    assert write_video(tmp_path / "other.mp4", other, fps=8).read_bytes() != mp4.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.mp4", "other.mp4"]  # no temporaries


def test_truncated_mp4_is_named(tmp_path, mp4):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mp4.read_bytes()[: int(mp4.stat().st_size * 0.7)])
    with pytest.raises(VideoError, match=r"cut\.mp4: truncated"):
        probe_video(cut, verify=True)
    with pytest.raises(VideoError, match=r"cut\.mp4: truncated"):
        read_frames(cut)


def test_unreadable_and_empty_inputs(tmp_path, clip):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError, match=r"junk\.mp4: unreadable"):
        probe_video(junk)
    with pytest.raises(VideoError, match=r"absent\.mp4: no such file"):
        read_frames(tmp_path / "absent.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="empty: folder holds no frames"):
        read_frames(tmp_path / "empty")
    with pytest.raises(VideoError, match=r"zero\.mp4: frames must be"):
        write_video(tmp_path / "zero.mp4", clip[:0])
    with pytest.raises(VideoError, match=r"odd\.mp4: yuv420p needs even"):
        write_video(tmp_path / "odd.mp4", clip[:, :31])


def test_folder_of_frames_and_gif(tmp_path, clip):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(clip):
        Image.fromarray(frame).save(folder / f"{index:04d}.png")
    np.testing.assert_array_equal(read_frames(folder), clip)
    assert probe_video(folder).frames == len(clip)
    flat = np.zeros((4, 16, 32, 3), np.uint8)
    flat[:, :, :, 0] = np.arange(4)[:, None, None] * 60  # one palette colour per frame
    images = [Image.fromarray(frame) for frame in flat]
    images[0].save(tmp_path / "a.gif", save_all=True, append_images=images[1:], duration=125, loop=0)
    np.testing.assert_array_equal(read_frames(tmp_path / "a.gif"), flat)
    assert probe_video(tmp_path / "a.gif").frames == 4


def test_npz_of_frames_reads_like_a_video(tmp_path):
    frames = np.random.default_rng(3).integers(0, 256, size=(4, 8, 16, 3), dtype=np.uint8)
    np.savez_compressed(tmp_path / "clip.npz", frames=frames)
    np.testing.assert_array_equal(read_frames(tmp_path / "clip.npz"), frames)
    np.testing.assert_array_equal(read_frames(tmp_path / "clip.npz", [3, 1]), frames[[3, 1]])
    np.savez_compressed(tmp_path / "other.npz", video=frames)
    with pytest.raises(VideoError, match="other.npz: no 'frames' array"):
        read_frames(tmp_path / "other.npz")
    np.savez_compressed(tmp_path / "float.npz", frames=frames / 255.0)
    with pytest.raises(VideoError, match="must be uint8"):
        read_frames(tmp_path / "float.npz")
