"""CLIP metrics: tiny model determinism, no-crop preprocessing, truncation, formulas, and roll behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dvd360.geometry.rotation import roll_longitude
from dvd360.models.clip_model import ClipSpecError, build_tiny_clip, load_clip, parse_spec
from dvd360.metrics.clip_similarity import clip_similarity
from dvd360.metrics.flow_agreement import rigid_rotation_clip
from dvd360.metrics.frame_consistency import frame_consistency
from dvd360.metrics.scoring import VideoScorer

PROMPT = "a red tower and a blue balloon above a grassy meadow under a clear blue sky"
# Change of ERP-level scores when the video is rolled by 90 degrees, measured with the tiny model on
# textured-sphere clips with a cut (seeds 0-2): CLIP similarity up to 0.48 points (of 100),
# frame consistency up to 0.004 points. A whole ERP resized to a square is not roll-invariant for
# CLIP; the view scores are (a 90-degree roll permutes the 4 views).
ERP_CLIP_TOLERANCE = 1.0
ERP_CONSISTENCY_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "clip", seed=0)


@pytest.fixture(scope="module")
def clip(clip_dir):
    return load_clip(clip_dir)


def test_tiny_clip_is_deterministic(clip, clip_dir, tmp_path):
    from safetensors.torch import load_file

    weights = "open_clip_model.safetensors"
    first = load_file(clip_dir / weights)
    assert all(torch.equal(first[k], v) for k, v in clip.model.state_dict().items())  # load_clip reads them
    again = load_file(build_tiny_clip(tmp_path / "again", seed=0) / weights)
    other = load_file(build_tiny_clip(tmp_path / "other", seed=1) / weights)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_preprocessing_resizes_the_whole_erp_without_crop(clip):
    image = torch.rand(1, 3, 32, 64)
    expected = torch.nn.functional.interpolate(image, size=(64, 64), mode="bilinear", antialias=True)
    mean, std = torch.tensor(clip.mean).view(1, 3, 1, 1), torch.tensor(clip.std).view(1, 3, 1, 1)
    torch.testing.assert_close(clip.preprocess(image), (expected - mean) / std)
    edited = image.clone()
    edited[..., :4] = 1.0 - edited[..., :4]  # only the leftmost 1/16 of the width: a centre crop drops it
    assert not torch.allclose(clip.encode_images(image), clip.encode_images(edited))


def test_long_prompts_are_truncated_to_the_context(clip):
    long_prompt = " ".join(["panorama"] * 120)
    assert clip.is_truncated(long_prompt) and not clip.is_truncated(PROMPT)
    torch.testing.assert_close(clip.encode_texts([long_prompt]), clip.encode_texts([long_prompt + " of a cat"]))


def test_plain_vit_l_14_with_openai_weights_is_refused():
    with pytest.raises(ClipSpecError, match="quickgelu"):
        parse_spec("ViT-L-14/openai")
    assert parse_spec("ViT-L-14-quickgelu/openai") == ("ViT-L-14-quickgelu", "openai")


def test_formulas_match_independent_numpy():
    rng = np.random.default_rng(0)
    images, text = rng.normal(size=(5, 4, 8)), rng.normal(size=8)
    cos = (images @ text) / (np.linalg.norm(images, axis=-1) * np.linalg.norm(text))
    assert clip_similarity(torch.tensor(images), torch.tensor(text)) == pytest.approx(100 * np.maximum(cos, 0).mean())
    unit = images / np.linalg.norm(images, axis=-1, keepdims=True)
    expected = 100 * np.mean([(unit[t] * unit[t + 1]).sum(-1).mean() for t in range(4)])
    assert frame_consistency(torch.tensor(images)) == pytest.approx(expected)
    assert frame_consistency(torch.tensor(np.repeat(images[:1], 3, axis=0))) == pytest.approx(100.0)


def test_roll_by_90_degrees_only_moves_the_seam(clip):
    frames, flow = rigid_rotation_clip(32, 64, 3, seed=0)
    q = 16
    cut = np.concatenate([frames[:, :, q:2 * q], frames[:, :, :q], frames[:, :, 2 * q:]], axis=2)
    scorer = VideoScorer(clip, "ilk")
    before = scorer.score(cut, PROMPT, flow)["metrics"]
    after = scorer.score(roll_longitude(cut, 90.0, dim=2), PROMPT, roll_longitude(flow, 90.0, dim=2))["metrics"]
    assert abs(after["clip_similarity_erp"] - before["clip_similarity_erp"]) <= ERP_CLIP_TOLERANCE
    assert abs(after["frame_consistency_erp"] - before["frame_consistency_erp"]) <= ERP_CONSISTENCY_TOLERANCE
    for name in ("clip_similarity_views", "frame_consistency_views"):
        assert after[name] == pytest.approx(before[name], abs=1e-4)
    for name in ("flow_epe_deg", "flow_direction_agreement"):
        assert after[name] == pytest.approx(before[name], abs=1e-3)
    assert before["seam_ratio"] >= 3 and after["seam_ratio"] < 1.25  # the cut left the seam
    assert before["end_continuity"] > 3 * after["end_continuity"]


def test_scores_are_deterministic_and_absent_when_not_computable(clip, clip_dir):
    frames, _ = rigid_rotation_clip(32, 64, 3, seed=1)
    first = VideoScorer(clip, "ilk").score(frames, PROMPT)
    second = VideoScorer(load_clip(clip_dir), "ilk").score(frames, PROMPT)
    assert first == second
    assert "flow_epe_deg" not in first["metrics"]  # no reference flow: absent, not zero
    no_prompt = VideoScorer(clip, "ilk").score(frames)
    assert "clip_similarity_erp" not in no_prompt["metrics"] and "frame_consistency_erp" in no_prompt["metrics"]
    assert no_prompt["prompt_truncated"] is None
