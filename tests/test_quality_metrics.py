"""Quality metrics (VBench's imaging and aesthetic quality): VBench's code path on the ERP, an
independent projection for the views, batch invariance, the head/CLIP contract.

That the scores fall under blur and noise is a property of the trained SPAQ weights, which cannot
be downloaded here; the tiny random-weight MUSIQ has none (linear probes fitted on its features
did not rank unseen scenes either). `test_imaging_quality_falls_under_blur_and_noise` checks it
when DVD360_MUSIQ_WEIGHTS names the SPAQ file (`musiq_spaq_ckpt-358bb6af.pth`)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from geometry_support import py360_view
from torchvision import transforms

from dvd360.data.synthetic import make_scene, render_clip
from dvd360.models.clip_model import OPENAI_MEAN, OPENAI_STD, build_tiny_clip, load_clip
from dvd360.metrics.clip_similarity import VIEW_LONS
from dvd360.metrics.quality import QualityScorer, musiq_view_size
from dvd360.metrics.registry import names_needing
from dvd360.metrics.scoring import VideoInput, VideoScorer
from dvd360.models.feature_nets import QUALITY_KINDS, build_tiny_feature_net, write_paper_feature_net

QUALITY_METRICS = names_needing("quality_models")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality_models")
    build_tiny_clip(root / "clip", seed=0)
    for kind in QUALITY_KINDS:
        build_tiny_feature_net(root / kind, kind, seed=0)
    clip = load_clip(root / "clip", device="cpu")
    quality = QualityScorer(root / "musiq", root / "aesthetic", clip, device="cpu")
    return clip, quality


def _scorer(models, **kwargs) -> VideoScorer:
    clip, quality = models
    return VideoScorer(clip, flow_method=None, quality=quality, **kwargs)


def test_erp_metrics_are_vbench_imaging_and_aesthetic_quality(models):
    """The `_erp` metrics against VBench's own steps (imaging_quality.py in its default 'longer'
    mode, aesthetic_quality.py with utils.clip_transform), frame by frame as VBench loops."""
    clip, quality = models
    frames = render_clip(make_scene(0), 288, 576, 2).frames  # longer side 576 > 512: VBench resizes
    ours = _scorer(models).score(frames)["metrics"]

    video = torch.from_numpy(frames).permute(0, 3, 1, 2)  # VBench's load_video: uint8 (T, C, H, W)
    scale = 512.0 / 576
    resized = transforms.Resize(size=(int(scale * 288), int(scale * 576)))(video) / 255.0
    with torch.no_grad():
        imaging = sum(float(quality.musiq(resized[i].unsqueeze(0))) for i in range(len(resized))) / len(resized)
        clip_transform = transforms.Compose([
            transforms.Resize(clip.image_size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(clip.image_size), transforms.Lambda(lambda x: x.float().div(255.0)),
            transforms.Normalize(OPENAI_MEAN, OPENAI_STD)])
        embeddings = F.normalize(clip.model.encode_image(clip_transform(video)).float(), dim=-1, p=2)
        aesthetic = float((quality.head.float()(embeddings).squeeze() / 10).mean())
        quality.head.double()
    assert ours["imaging_quality_erp"] == pytest.approx(imaging / 100.0, rel=1e-5)
    assert ours["aesthetic_quality_erp"] == pytest.approx(aesthetic, rel=1e-5)


def test_view_metrics_match_views_from_py360convert(models):
    clip, quality = models
    frames = render_clip(make_scene(1), 64, 128, 2).frames
    ours = _scorer(models).score(frames)["metrics"]
    size = musiq_view_size(128)
    erp = torch.from_numpy(frames).permute(0, 3, 1, 2).double() / 255.0

    def views(side: int) -> torch.Tensor:
        return torch.stack([torch.from_numpy(py360_view(erp[f], lon, 0.0, 90.0, (side, side))).permute(2, 0, 1)
                            for f in range(len(frames)) for lon in VIEW_LONS]).float().clamp(0, 1)

    with torch.no_grad():
        imaging = float(torch.cat([quality.musiq(v[None]) for v in views(size)]).mean()) / 100.0
        embeddings = clip.encode_images(views(clip.image_size))
    assert size == 32
    assert ours["imaging_quality_views"] == pytest.approx(imaging, rel=1e-3)
    assert ours["aesthetic_quality_views"] == pytest.approx(quality.aesthetic(embeddings), rel=1e-3)


def test_scores_do_not_depend_on_the_batch_or_the_order(models):
    videos = [render_clip(make_scene(seed), 64, 128, 2).frames for seed in range(3)]
    videos.append(render_clip(make_scene(3), 32, 64, 2).frames)  # another size: its own forward passes
    one = [_scorer(models).score(v)["metrics"] for v in videos]
    streamed = [s.result["metrics"] for s in _scorer(models).score_stream(VideoInput(v) for v in reversed(videos))][::-1]
    for a, b in zip(one, streamed):
        assert {k: a[k] for k in QUALITY_METRICS} == {k: b[k] for k in QUALITY_METRICS}


def test_the_aesthetic_head_must_fit_the_clip(tmp_path, models):
    clip, _ = models
    build_tiny_feature_net(tmp_path / "musiq", "musiq", seed=0)
    head = torch.nn.Linear(768, 1)
    from safetensors.torch import save_file

    from dvd360.atomic import write_json

    (tmp_path / "aesthetic").mkdir()
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp_path / "aesthetic" / "model.safetensors"))
    write_json(tmp_path / "aesthetic" / "features.json",
               {"kind": "aesthetic", "architecture": "nn.Linear", "weights": "model.safetensors",
                "random_weights": True, "config": {"features": 768}, "source": "test"})
    with pytest.raises(ValueError, match=r"aesthetic head takes 768-d embeddings.*gives 64-d"):
        QualityScorer(tmp_path / "musiq", tmp_path / "aesthetic", clip, device="cpu")


@pytest.mark.skipif(not os.environ.get("DVD360_MUSIQ_WEIGHTS"), reason="needs the real MUSIQ-SPAQ weights "
                    "(DVD360_MUSIQ_WEIGHTS=path/to/musiq_spaq_ckpt-358bb6af.pth)")
def test_imaging_quality_falls_under_blur_and_noise(tmp_path, models):
    import cv2

    clip, _ = models
    write_paper_feature_net(tmp_path / "musiq", "musiq", os.environ["DVD360_MUSIQ_WEIGHTS"])
    build_tiny_feature_net(tmp_path / "aesthetic", "aesthetic", seed=0)
    scorer = VideoScorer(clip, flow_method=None, quality=QualityScorer(tmp_path / "musiq", tmp_path / "aesthetic",
                                                                       clip, device="cpu"))
    frames = render_clip(make_scene(0), 256, 512, 2).frames
    rng = np.random.default_rng(0)
    degraded = {"blur": [np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames]) for sigma in (1, 2, 4)],
                "noise": [np.clip(frames + rng.normal(0, sigma, frames.shape), 0, 255).astype(np.uint8)
                          for sigma in (10, 25, 50)]}
    for name in ("imaging_quality_erp", "imaging_quality_views"):
        clean = scorer.score(frames)["metrics"][name]
        for kind, levels in degraded.items():
            scores = [clean] + [scorer.score(video)["metrics"][name] for video in levels]
            assert all(a > b for a, b in zip(scores, scores[1:])), (name, kind, scores)
