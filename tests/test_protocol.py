"""The scoring protocol's streaming reader: selection and resize against an independent
computation, memory that does not grow with the video's length, named errors for unbounded
inputs; reference flows read as a stream; a speed factor of 0 named, not scored."""

from __future__ import annotations

import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

from dvd360.data import video as video_module
from dvd360.data.flow_encoding import decode_flow, encode_flow
from dvd360.data.flow_estimation import resize_flow
from dvd360.data.protocol import ScoringProtocol, parse_protocol, read_video
from dvd360.data.repeats import detect_repeats
from dvd360.data.video import VideoError, write_video
from dvd360.metrics.flow_agreement import ZERO_SCALE, absent_reasons, flow_agreement, rigid_rotation_clip
from dvd360.metrics.scoring import VideoScorer, read_reference_flow, stride_flow
from web360_support import panning_clip


@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    """A turning 64x128 clip of 8 pictures, each shown twice (16 frames), as H.264."""
    frames = rigid_rotation_clip(64, 128, 8, yaw_deg=6.0, pitch_deg=0.0, roll_deg=0.0, seed=2)[0]
    return write_video(tmp_path_factory.mktemp("protocol") / "repeated.mp4", np.repeat(frames, 2, axis=0))


def decoded(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.mark.parametrize("sample,frames,keep", [("first", 5, False), ("uniform", 4, False), ("stride:2", 3, False),
                                                ("first", None, True), ("uniform", 5, True)])
def test_selection_and_resize_equal_an_independent_computation(repeated, sample, frames, keep):
    protocol = ScoringProtocol(frames=frames, sample=sample, size="32x64")
    scored = read_video(repeated, protocol, keep_repeats=keep)
    # independently: every frame decoded, area-resized with OpenCV, repeats found on the whole video
    every = np.stack([cv2.resize(f, (64, 32), interpolation=cv2.INTER_AREA) for f in decoded(repeated)])
    distinct = list(range(len(every))) if keep else list(detect_repeats(every).kept)
    count = frames or len(distinct)
    if sample == "first":
        expected = distinct[:count]
    elif sample == "stride:2":
        expected = distinct[::2][:count]
    else:
        expected = [distinct[i] for i in np.round(np.linspace(0, len(distinct) - 1, count)).astype(int)]
    assert not keep and len(distinct) == 8 or keep
    assert scored.indices == expected
    np.testing.assert_array_equal(scored.frames, every[expected])
    entry = scored.detections["protocol"]
    assert entry["scored_frames"] == expected and (entry["scored_height"], entry["scored_width"]) == (32, 64)
    assert "INTER_AREA from 64x128" in entry["summary"]


def test_smaller_sources_are_not_upsampled_and_first_stops_reading(repeated):
    scored = read_video(repeated, ScoringProtocol(frames=3))
    assert scored.frames.shape == (3, 64, 128, 3) and scored.indices == [0, 2, 4]
    assert scored.detections["protocol"]["frames_read"] == 5  # the third distinct frame is frame 4
    assert "reading stopped there" in scored.detections["repeats"]["summary"]


def test_a_still_video_keeps_every_frame(tmp_path):
    still = write_video(tmp_path / "still.mp4", np.repeat(panning_clip(1, 32, 64)[0], 6, axis=0))
    scored = read_video(still, ScoringProtocol(frames=4))
    assert scored.indices == [0, 1, 2, 3] and scored.detections["repeats"]["still"]


MEMORY_PROBE = """
import sys, tracemalloc
from dvd360.data.protocol import ScoringProtocol, read_video
read_video(sys.argv[1], ScoringProtocol(frames=8, sample=sys.argv[2], size="64x128"))  # imports, codec set-up
tracemalloc.start()
read_video(sys.argv[1], ScoringProtocol(frames=8, sample=sys.argv[2], size="64x128"))
print(tracemalloc.get_traced_memory()[1])
"""


def _peak_bytes(path, sample: str) -> int:
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path), sample], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.parametrize("sample", ["first", "uniform"])
def test_memory_of_a_long_video_equals_that_of_a_short_one(tmp_path, sample):
    """Peak traced memory (numpy arrays included) reading 8 frames at 64x128 from 12 and from 240
    frames of 128x256: equal within 64 KiB plus 10% (a working frame is 24 KiB, a source frame 96 KiB;
    the 240 frames would be 22.5 MiB at the source size)."""
    clip = panning_clip(frames=12, height=128, width=256)[0]
    short = write_video(tmp_path / "short.mp4", clip)
    long = write_video(tmp_path / "long.mp4", np.concatenate([np.roll(clip, 3 * k, axis=2) for k in range(20)]))
    peaks = [_peak_bytes(short, sample), _peak_bytes(long, sample)]
    assert abs(peaks[1] - peaks[0]) <= 64 * 1024 + 0.1 * peaks[0], peaks
    assert max(peaks) < 2 * 2**20


def test_unbounded_inputs_get_a_named_error_before_memory_grows(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.mp4", panning_clip(frames=6, height=32, width=64)[0])
    monkeypatch.setattr(video_module, "MAX_FRAME_PIXELS", 32 * 63)
    with pytest.raises(VideoError, match=r"clip\.mp4: frame size 64x32 in the header is over the limit"):
        read_video(path)
    monkeypatch.undo()
    endless = tmp_path / "endless.mkv"  # Matroska gives no frame count: the stream's bound applies
    with av.open(str(endless), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        for frame in panning_clip(frames=12, height=32, width=64)[0]:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    monkeypatch.setattr(video_module, "MAX_STREAM_FRAMES", 8)
    with pytest.raises(VideoError, match=r"endless\.mkv: decodes more than 8 frames .* does not end"):
        read_video(endless, ScoringProtocol(sample="uniform"))
    assert read_video(endless, ScoringProtocol(frames=4)).indices == [0, 1, 2, 3]  # it stops before the bound


def test_protocol_text_is_checked_naming_the_option():
    assert parse_protocol("all", "stride:3", "256x512") == ScoringProtocol(frames=None, sample="stride:3",
                                                                             size="256x512")
    for args, option in ((("0", "first", "512x1024"), "--frames"), (("16", "random", "512x1024"), "--sample"),
                         (("16", "first", "512"), "--size")):
        with pytest.raises(ValueError, match=option):
            parse_protocol(*args)


def test_flow_video_is_read_as_a_stream_of_the_frames_needed(tmp_path, monkeypatch):
    from dvd360.data import flow_encoding

    flows = rigid_rotation_clip(32, 64, 12, yaw_deg=5.0, pitch_deg=2.0, roll_deg=0.0, seed=0)[1]
    path = write_video(tmp_path / "flow.mp4", encode_flow(flows), crf=18)
    whole = decode_flow(decoded(path))
    indices = [2, 4, 5, 8]
    expected = stride_flow(whole, indices)
    calls = []
    original = flow_encoding.decode_encoded
    monkeypatch.setattr(flow_encoding, "decode_encoded", lambda image, *a: calls.append(1) or original(image, *a))
    flow, note = read_reference_flow(path, "encoded", indices=indices, encoding="released")
    assert len(calls) == 6 and note["encoding"] == "released"  # flow frames 2..7 only
    np.testing.assert_allclose(flow, expected, atol=1e-4)
    small, note = read_reference_flow(path, "encoded", indices=indices, size=(16, 32))
    assert note["chosen"] == "auto" and small.shape == (4, 16, 32, 2)
    np.testing.assert_allclose(small, resize_flow(flow, 16, 32), atol=1e-5)  # step by step = all at once
    with pytest.raises(ValueError, match=r"flow\.mp4: has 12 flow frames, the frames scored need 20"):
        read_reference_flow(path, "encoded", indices=[0, 20])


def test_a_speed_factor_of_zero_is_named_not_scored():
    frames, flow = rigid_rotation_clip(32, 64, 5, yaw_deg=6.0, pitch_deg=0.0, roll_deg=0.0, seed=3)
    opposed = flow_agreement(-flow, flow)
    assert opposed["flow_scale"] == 0 and np.isnan(opposed["flow_epe_deg_scaled"])
    assert opposed["flow_direction_agreement"] < -0.99
    assert absent_reasons(opposed) == {"flow_epe_deg_scaled": ZERO_SCALE}
    # a video scored against the reverse of its own motion: absent, with the reason, in the result
    result = VideoScorer(None, "dis").score(frames, reference_flow=-flow)
    assert "flow_epe_deg_scaled" not in result["metrics"] and result["absent"] == {"flow_epe_deg_scaled": ZERO_SCALE}
    assert result["metrics"]["flow_direction_agreement"] < -0.5
    followed = VideoScorer(None, "dis").score(frames, reference_flow=flow)
    assert "flow_epe_deg_scaled" in followed["metrics"] and followed["absent"] == {}
