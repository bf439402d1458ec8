"""Clip sampling, joint roll and flip (flip negates dx), and the training Dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dvd360.data.clips import Web360ClipDataset, flip, roll, sample_indices
from dvd360.data.flow_encoding import decode_flow
from dvd360.data.web360 import index_web360
from web360_support import make_web360, panning_clip


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return index_web360(make_web360(tmp_path_factory.mktemp("clips"), clips=2, frames=12))


def test_sample_indices_follow_the_release():
    np.testing.assert_array_equal(sample_indices(100, 16, 4), np.arange(0, 61, 4))
    # a short video: the window shrinks to the video, indices spread over it
    np.testing.assert_array_equal(sample_indices(24), np.linspace(0, 23, 16, dtype=int))
    starts = set()
    for seed in range(20):
        indices = sample_indices(100, 16, 4, torch.Generator().manual_seed(seed))
        assert np.all(np.diff(indices) == 4) and 0 <= indices[0] <= 40
        starts.add(int(indices[0]))
    assert len(starts) > 5
    first = sample_indices(100, 16, 4, torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(first, sample_indices(100, 16, 4, torch.Generator().manual_seed(3)))


def test_roll_is_joint():
    video = torch.zeros(2, 3, 4, 8)
    flow = torch.zeros(2, 4, 8, 2)
    condition = torch.zeros(2, 3, 4, 8)
    video[..., 1], flow[:, :, 1, 0], condition[..., 1] = 1.0, 5.0, 1.0  # a marker in column 1
    video, flow, condition = roll(video, flow, 3, condition)
    assert video[..., 4].eq(1).all() and video.sum() == video[..., 4].sum()
    assert flow[:, :, 4, 0].eq(5).all() and flow.abs().sum() == 5 * 2 * 4
    assert condition[..., 4].eq(1).all()
    # wrapping: rolled by the full width minus one, column 4 goes to 3
    assert roll(video, flow, 7)[0][..., 3].eq(1).all()


def test_flip_negates_dx_and_matches_the_flipped_motion():
    frames, flow = panning_clip(frames=3, height=16, width=32, speed=2)
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    flipped_video, flipped_flow = flip(video, torch.from_numpy(flow))
    assert torch.equal(flipped_video, torch.flip(video, dims=(-1,)))
    assert flipped_flow[..., 0].eq(-2).all() and flipped_flow[..., 1].eq(0).all()
    # the flipped video really moves left by 2 px per frame: frame 1 = frame 0 rolled by -2
    assert torch.equal(flipped_video[1], torch.roll(flipped_video[0], -2, dims=-1))
    # positional: column j -> W-1-j, dx wrapped into [-W/2, W/2)
    field = torch.zeros(1, 16, 32, 2)
    field[0, :, 5, 0], field[0, :, 5, 1], field[0, :, 9, 0] = 3.0, 1.5, -16.0
    _, mirrored = flip(torch.zeros(1, 3, 16, 32), field)
    assert mirrored[0, :, 26, 0].eq(-3).all() and mirrored[0, :, 26, 1].eq(1.5).all()
    assert mirrored[0, :, 22, 0].eq(-16).all()  # +16 is out of range, wraps to -16


def test_item_without_augmentation(index):
    dataset = Web360ClipDataset(index, length=4, stride=2, augment=False)
    item = dataset[1]
    assert item["video"].shape == item["condition"].shape == (4, 3, 32, 64)
    assert item["flow"].shape == (4, 32, 64, 2)
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    assert item["indices"].tolist() == [0, 2, 4, 6]
    assert item["clip_id"] == "001" and item["caption"] == index.clips[1].caption
    assert torch.allclose(item["flow"][..., 0], torch.tensor(2.0)) and item["flow"][..., 1].eq(0).all()
    # the condition is the stored flow visualisation: it decodes back to the flow
    images = ((item["condition"].permute(0, 2, 3, 1) + 1) * 127.5).round().byte().numpy()
    assert np.abs(decode_flow(images) - item["flow"].numpy()).mean() < 0.3


def test_resize_rescales_the_numeric_flow(index):
    item = Web360ClipDataset(index, length=4, stride=2, height=16, width=32, augment=False)[1]
    assert item["video"].shape == (4, 3, 16, 32) and item["flow"].shape == (4, 16, 32, 2)
    assert torch.allclose(item["flow"][..., 0], torch.tensor(1.0))  # 2 px at 64 wide -> 1 px at 32


def test_augmentation_keeps_video_flow_and_condition_together(index):
    dataset = Web360ClipDataset(index, length=4, stride=2, augment=True)
    torch.manual_seed(0)
    first = [dataset[1] for _ in range(6)]
    torch.manual_seed(0)
    again = [dataset[1] for _ in range(6)]
    assert all(torch.equal(a["video"], b["video"]) for a, b in zip(first, again))  # seeded
    signs = set()
    for item in first:
        dx = item["flow"][..., 0]
        signs.add(float(dx.mean().sign()))
        assert torch.allclose(dx.abs(), torch.tensor(2.0))
        images = ((item["condition"].permute(0, 2, 3, 1) + 1) * 127.5).round().byte().numpy()
        assert np.abs(decode_flow(images) - item["flow"].numpy()).mean() < 0.3
        # the video moves the way its flow says: frame k+1 = frame k rolled by dx per frame
        step = int(dx.mean().sign()) * 2 * 2  # 2 px per frame, stride 2
        shifted = torch.roll(item["video"][0], step, dims=-1)
        assert (shifted - item["video"][1]).abs().mean() < 0.05
    assert signs == {1.0, -1.0}  # both flipped and unflipped items were drawn


def test_caption_override(index):
    captions = {"000": "first", "001": "second"}
    assert Web360ClipDataset(index, length=2, augment=False, captions=captions)[0]["caption"] == "first"
    with pytest.raises(KeyError, match="no caption for 1 clip"):
        Web360ClipDataset(index, length=2, augment=False, captions={"000": "only one"})
