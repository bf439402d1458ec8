"""WEB360 layer: every bad input is reported at once with its file; lenient mode keeps good clips."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from dvd360.cli.data import data as data_cli
from dvd360.data.video import probe_video, write_video
from dvd360.data.web360 import (Web360Index, Web360ValidationError, dataset_statistics, index_web360,
                                load_prepared, read_captions, save_index, write_captions, write_clip)
from web360_support import make_web360, panning_clip

VIDEOS, FLOWS = "videos_32x64x6", "flows_32x64x6"


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return make_web360(tmp_path_factory.mktemp("good"), clips=3)


@pytest.fixture(scope="module")
def bad(tmp_path_factory, good):
    """Clip 000 stays good; each other clip has a fault; the CSV has a malformed row."""
    root = tmp_path_factory.mktemp("bad") / "web360"
    shutil.copytree(good, root)
    captions = read_captions(good / "captions.csv")
    video = (root / VIDEOS / "001.mp4").read_bytes()
    (root / VIDEOS / "001.mp4").write_bytes(video[: len(video) * 2 // 3])  # truncated
    (root / FLOWS / "001.mp4").write_bytes(b"junk" * 64)  # and its flow unreadable: both reported
    (root / FLOWS / "002.mp4").unlink()  # missing flow
    frames, flow = panning_clip(frames=6, height=32, width=32)  # 1:1, not an ERP
    write_clip(root, "003", frames, flow, "", fps=8)
    for path in (root / "videos_32x32x6").iterdir():
        path.rename(root / VIDEOS / path.name)
    for path in (root / "flows_32x32x6").iterdir():
        path.rename(root / FLOWS / path.name)
    (root / "videos_32x32x6").rmdir()
    (root / "flows_32x32x6").rmdir()
    frames, flow = panning_clip(frames=6)
    write_clip(root, "004", frames, flow, "", fps=8)
    write_video(root / FLOWS / "004.mp4", np.zeros((5, 32, 64, 3), np.uint8))  # 5 flow frames for 6
    write_clip(root, "005", frames, flow, "", fps=8)  # its caption repeats clip 000's
    captions.update({"003": "a square video", "004": "a clip whose flow is short",
                     "005": captions["000"].upper()})
    write_captions(root / "captions.csv", captions)
    with open(root / "captions.csv", "a", encoding="utf-8") as csv_file:
        csv_file.write('006,"a caption",an extra field\n')
    return root


def test_good_folder_is_indexed(good):
    index = index_web360(good)
    assert [clip.id for clip in index.clips] == ["000", "001", "002"] and index.skipped == []
    clip = index.by_id()["001"]
    assert (clip.num_frames, clip.height, clip.width) == (6, 32, 64)
    assert clip.video_path == good / VIDEOS / "001.mp4"
    assert clip.flow_video_path == good / FLOWS / "001.mp4" and clip.flow_npz_path == good / FLOWS / "001.npz"
    assert clip.caption == "a panorama panning right at 2 pixels per frame"
    with np.load(clip.flow_npz_path) as archive:
        assert archive["flow"].shape == (6, 32, 64, 2) and archive["flow"].dtype == np.float16
    stats = dataset_statistics(index)
    assert stats["clips"] == 3 and stats["frames_total"] == 18
    assert stats["mean_flow_px"] == pytest.approx(2.0)  # speeds 1, 2, 3 px per frame


def test_every_problem_is_reported_at_once(bad):
    with pytest.raises(Web360ValidationError) as caught:
        index_web360(bad)
    message = str(caught.value)
    expected = {
        "truncated mp4": (f"{VIDEOS}/001.mp4", "truncated"),
        "unreadable flow": (f"{FLOWS}/001.mp4", "unreadable video"),
        "missing flow": (f"{FLOWS}/002.mp4", "missing flow for video 002.mp4"),
        "1:1 video": (f"{VIDEOS}/003.mp4", "not a 2:1 equirectangular frame: 32x32"),
        "frame-count mismatch": (f"{FLOWS}/004.mp4", "5 flow frames for 6 video frames"),
        "duplicate caption": ("captions.csv", "clip 005 repeats the caption of clip 000"),
        "malformed row": ("captions.csv", "line 8: malformed row, 3 fields"),
    }
    lines = message.splitlines()
    for what, (file, problem) in expected.items():
        assert any(file in line and problem in line for line in lines), f"{what} not reported:\n{message}"
    assert {p.clip_id for p in caught.value.problems} == {"001", "002", "003", "004", "005", None}


def test_lenient_mode_keeps_the_good_clip(bad):
    index = index_web360(bad, lenient=True)
    assert [clip.id for clip in index.clips] == ["000"]
    assert {p.clip_id for p in index.skipped} == {"001", "002", "003", "004", "005", None}


def test_csv_that_is_not_utf8_fails_even_when_lenient(tmp_path, good):
    root = tmp_path / "latin1"
    shutil.copytree(good, root)
    (root / "captions.csv").write_bytes("videoid,name\n000,un café\n".encode("latin-1"))
    for lenient in (False, True):
        with pytest.raises(Web360ValidationError, match=r"captions\.csv: not UTF-8 \(line 2, byte 23"):
            index_web360(root, lenient=lenient)


def test_caption_rows_and_videos_must_match(tmp_path, good):
    root = tmp_path / "unmatched"
    shutil.copytree(good, root)
    write_captions(root / "captions.csv", {"000": "one", "001": "", "009": "no such video"})
    with pytest.raises(Web360ValidationError) as caught:
        index_web360(root)
    message = str(caught.value)
    assert "captions.csv: line 3: empty caption for clip 001" in message
    assert f"{VIDEOS}/009.mp4: missing video for caption row 009" in message
    assert "captions.csv: no caption row for video 002.mp4" in message
    with pytest.raises(Web360ValidationError, match="empty caption for clip 001"):
        read_captions(root / "captions.csv")


def test_numeric_flow_shape_is_checked(tmp_path, good):
    root = tmp_path / "npz"
    shutil.copytree(good, root)
    np.savez(root / FLOWS / "001.npz", flow=np.zeros((4, 32, 64, 2), np.float16))
    with pytest.raises(Web360ValidationError, match=r"001\.npz: flow array \(4, 32, 64, 2\) does not match"):
        index_web360(root)


def test_folder_without_flows(tmp_path, good):
    root = tmp_path / "videos-only"
    shutil.copytree(good, root)
    shutil.rmtree(root / FLOWS)
    with pytest.raises(Web360ValidationError, match=f"{FLOWS}: missing flow folder"):
        index_web360(root)
    index = index_web360(root, require_flows=False)
    assert len(index.clips) == 3 and all(clip.flow_video_path is None for clip in index.clips)


def test_index_json_round_trip(tmp_path, good):
    index = index_web360(good)
    save_index(index, tmp_path / "index.json", root=str(good))
    loaded = load_prepared(tmp_path)
    assert loaded.clips == index.clips and isinstance(loaded, Web360Index)
    assert probe_video(loaded.clips[0].video_path).frames == 6
    with pytest.raises(Web360ValidationError, match="no index; run `dvc repro prepare`"):
        load_prepared(tmp_path / "nothing")


def test_cli_check(good, bad):
    runner = CliRunner()
    result = runner.invoke(data_cli, ["check", str(good)])
    assert result.exit_code == 0 and "3 valid clip(s)" in result.output
    result = runner.invoke(data_cli, ["check", str(bad)])
    assert result.exit_code == 1 and f"{VIDEOS}/001.mp4: truncated" in result.output
    result = runner.invoke(data_cli, ["check", str(bad), "--lenient"])
    assert result.exit_code == 1 and "1 valid clip(s)" in result.output
    assert "missing flow for video 002.mp4" in result.output


def test_checking_clips_on_several_processes_gives_the_same_index_and_problems(bad):
    serial = index_web360(bad, lenient=True)
    parallel = index_web360(bad, lenient=True, workers=2)
    assert parallel.to_json() == serial.to_json() and parallel.skipped
