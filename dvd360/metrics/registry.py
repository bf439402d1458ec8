"""Every metric's spec, in one place: its name, how it ranks, its scale, its results-page group,
what it needs, the published definition it equals (if any) and the function that computes it.

Plain data (nothing here loads a model), so tables, the results page, MLflow/DVC names and
`--help` read it without importing any metric code. Scoring and the set metrics resolve
`compute` (a "module:function" reference, which `dvd360.code_deps` counts as an import, so every
content key covering this module covers the compute code too).

Direction: "higher" or "lower" is better, or "target": an ideal value `target`, a method ranked by
its distance from it, d(x) = |ln(x / target)| (every seam ratio: target 1, no visible seam; a
ratio of 0.5 and one of 2 are equally far). Tables, paired deltas, p-values and stars use
`rank_key`, so a defect never ranks as a win.

Adding a per-video metric: a module with `fn(frames) -> {name: value}` (frames (F, H, W, 3) RGB in
[0, 1]) and one `MetricSpec(..., needs=("frames",), compute="dvd360.metrics.module:fn")` line.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Callable, Literal

Direction = Literal["higher", "lower", "target"]
GROUP_ORDER = ("panorama", "video", "distribution", "quality")
# What a metric can need: the frames alone are enough for the generic per-video path.
NEEDS = ("frames", "prompt", "reference_flow", "clip", "quality_models", "set_features")


@dataclass(frozen=True)
class MetricSpec:
    """One metric. `kind`: "video" (a value per video; a method's figure is the mean over videos)
    or "set" (one value per set of videos against a reference set). `published`: the published
    definition this one equals exactly, else None. `comparable`: how it compares with the
    literature. `features`: the set features a set metric reads (`SetFeatureExtractor`)."""

    name: str
    direction: Direction
    scale: str
    group: str
    needs: tuple[str, ...]
    compute: str
    kind: Literal["video", "set"] = "video"
    target: float | None = None
    published: str | None = None
    comparable: str = "no published figure uses this definition"
    features: str | None = None

    def __post_init__(self):
        if (self.direction == "target") != (self.target is not None):
            raise ValueError(f"{self.name}: a target value goes with direction 'target' only")
        if self.group not in GROUP_ORDER or not set(self.needs) <= set(NEEDS):
            raise ValueError(f"{self.name}: unknown group {self.group!r} or needs {self.needs}")

    @property
    def better(self) -> str:
        """The direction as tables say it: "higher", "lower", or "closer to 1"."""
        return f"closer to {self.target:g}" if self.direction == "target" else self.direction

    def rank_key(self, value: float) -> float:
        """A number that is smaller the better `value` is: -x, x, or |ln(x / target)| (x <= 0 for a
        positive target: infinitely far)."""
        if self.direction == "higher":
            return -value
        if self.direction == "lower":
            return value
        if self.target > 0:
            return abs(math.log(value / self.target)) if value > 0 else math.inf
        return abs(value - self.target)

    def function(self) -> Callable:
        """The compute function named by `compute`."""
        module, _, name = self.compute.partition(":")
        return getattr(importlib.import_module(module), name)

    def describe(self) -> dict:
        """What every output says of the metric beside its figures."""
        info = {"better": self.better, "scale": self.scale, "published": self.published or "none",
                "comparable_with": self.comparable}
        if self.target is not None:
            info["target"] = self.target
        return info


_SEAM = "dvd360.metrics.seam:seam_metrics"
_POLES = "dvd360.metrics.poles:pole_continuity"
_FLOW = "dvd360.metrics.flow_agreement:flow_agreement"
_FLOW_SCALED = "dvd360.metrics.flow_agreement:flow_agreement_unknown_speed"
_CLIP = "dvd360.metrics.clip_similarity:clip_similarity"
_CONSISTENCY = "dvd360.metrics.frame_consistency:frame_consistency"
_QUALITY = "dvd360.metrics.quality:QualityScorer"
_FRECHET = "dvd360.metrics.set_metrics:frechet_set_metric"
_FRECHET_FACES = "dvd360.metrics.set_metrics:cubemap_frechet_set_metric"
_KID = "dvd360.metrics.set_metrics:kid_set_metric"
_OMNIFID = "dvd360.metrics.set_metrics:omnifid_set_metric"
_SPHERE = ("14 FoV-90 views per frame at the 6 cube-face centres and 8 cube corners (poles included; every "
           "direction within 36.2 deg of a view centre)")
_CLIP_NEEDS = ("frames", "prompt", "clip")
_OURS_SEAM_RATIO = "ours; no peer reports a seam ratio"
_OURS_VIEWS = "ours (4 horizontal FoV-90 views); peers report it on the ERP or on centre crops"

SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("clip_similarity_erp", "higher", "100 * max(cos, 0), 0..100", "quality", _CLIP_NEEDS, _CLIP,
               comparable="CLIP score on the whole ERP frame resized without cropping; DynamicScaler's CLIP "
                          "0.293 is on another scale and preprocessing"),
    MetricSpec("clip_similarity_views", "higher", "100 * max(cos, 0), 0..100", "quality", _CLIP_NEEDS, _CLIP,
               comparable=_OURS_VIEWS),
    MetricSpec("frame_consistency_erp", "higher", "100 * cos of consecutive frames, -100..100", "video",
               ("frames", "clip"), _CONSISTENCY,
               comparable="PanFlow's consecutive-frame CLIP centre-crops (half the longitudes); ours does not"),
    MetricSpec("frame_consistency_views", "higher", "100 * cos of consecutive frames, -100..100", "video",
               ("frames", "clip"), _CONSISTENCY, comparable=_OURS_VIEWS),
    MetricSpec("end_continuity", "lower", "mean |last - first column|, pixel values in [0, 1], rows plain",
               "panorama", ("frames",), _SEAM, published="End Continuity (PanFlow finetune/evaluate.py; PanoWan Tab. 1)",
               comparable="exactly PanFlow's and PanoWan's End Continuity (360DVD: 0.0323 in PanoWan's table)"),
    MetricSpec("seam_ratio", "target", "EC / interior EC, unitless (1 = no visible seam), rows plain", "panorama",
               ("frames",), _SEAM, target=1.0, comparable=_OURS_SEAM_RATIO),
    MetricSpec("end_continuity_coslat", "lower", "as end_continuity, rows weighted by cos(latitude)", "panorama",
               ("frames",), _SEAM, comparable="ours: End Continuity with cos-latitude row weights"),
    MetricSpec("seam_ratio_coslat", "target", "as seam_ratio, rows weighted by cos(latitude)", "panorama",
               ("frames",), _SEAM, target=1.0, comparable=_OURS_SEAM_RATIO),
    MetricSpec("seam_ratio_codec", "target", "EC / EC of the block-edge column pairs (16k-1, 16k), unitless, "
               "rows plain", "panorama", ("frames",), _SEAM, target=1.0, comparable=_OURS_SEAM_RATIO),
    MetricSpec("seam_ratio_codec_coslat", "target", "as seam_ratio_codec, rows weighted by cos(latitude)",
               "panorama", ("frames",), _SEAM, target=1.0, comparable=_OURS_SEAM_RATIO),
    MetricSpec("pole_continuity", "lower", "mean |cap row - its mean colour| within 5 deg of both poles, pixel "
               "values in [0, 1] (0 = one colour per cap row)", "panorama", ("frames",), _POLES),
    MetricSpec("pole_continuity_north", "lower", "as pole_continuity, north cap only", "panorama", ("frames",), _POLES),
    MetricSpec("pole_continuity_south", "lower", "as pole_continuity, south cap only", "panorama", ("frames",), _POLES),
    MetricSpec("flow_epe_deg", "lower", "degrees on the sphere, cos-latitude weighted", "video",
               ("frames", "reference_flow"), _FLOW,
               comparable="PanFlow's flow EPE is in pixels, unweighted and not wrap-aware: not comparable"),
    MetricSpec("flow_epe_deg_scaled", "lower", "as flow_epe_deg after the least-squares speed factor s >= 0 of "
               "the estimate (per video: flow_scale; absent, with the reason, when s = 0)", "video",
               ("frames", "reference_flow"), _FLOW_SCALED),
    MetricSpec("flow_direction_agreement", "higher", "cos-latitude weighted mean direction cosine, -1..1", "video",
               ("frames", "reference_flow"), _FLOW),
    MetricSpec("imaging_quality_views", "higher", "MUSIQ-SPAQ / 100 on 4 horizontal views per frame, 0..1 "
               "(VBench's scale)", "quality", ("frames", "quality_models"), _QUALITY, comparable=_OURS_VIEWS),
    MetricSpec("imaging_quality_erp", "higher", "MUSIQ-SPAQ / 100 on the ERP frame, VBench's imaging_quality "
               "exactly, 0..1", "quality", ("frames", "quality_models"), _QUALITY,
               published="VBench imaging_quality (MUSIQ-SPAQ, longer side 512)",
               comparable="exactly VBench's imaging quality on the ERP (DynamicScaler 0.436, Imagine360 0.5537 "
                          "for 360DVD)"),
    MetricSpec("aesthetic_quality_views", "higher", "LAION aesthetic / 10 on 4 horizontal views per frame, ~0..1 "
               "(VBench's scale)", "quality", ("frames", "clip", "quality_models"), _QUALITY, comparable=_OURS_VIEWS),
    MetricSpec("aesthetic_quality_erp", "higher", "LAION aesthetic / 10 on the centre crop, VBench's "
               "aesthetic_quality exactly, ~0..1", "quality", ("frames", "clip", "quality_models"), _QUALITY,
               published="VBench aesthetic_quality (LAION head on CLIP ViT-L/14, centre crop)",
               comparable="exactly VBench's aesthetic quality (Imagine360 0.4745 for 360DVD)"),
    MetricSpec("fvd_erp", "lower", "Frechet distance of 400-d I3D logits, ERP squashed to 224x224, 16 frames",
               "distribution", ("set_features",), _FRECHET, kind="set", features="i3d_erp",
               published="FVD (StyleGAN-V / cd-fvd I3D protocol, ERP squashed to 224x224, as PanFlow)",
               comparable="the standard FVD protocol as PanFlow's (same I3D file, 16 frames, 224x224 squash); "
                          "FVD falls with n, so compare only at equal set sizes"),
    MetricSpec("fvd_cubemap", "lower", "FD_sides/3 + FD_top/3 + FD_bottom/3 of I3D face clips (224x224, FoV 90)",
               "distribution", ("set_features",), _FRECHET_FACES, kind="set", features="i3d_cube",
               comparable="PanoWan's cubemap FVD weighting (top, bottom 1/3, each side 1/12; sides pooled as "
                          "samples); PanoWan released no code, so face orientation and face size (224) are ours"),
    MetricSpec("fid_views", "lower", "Frechet distance of 2048-d Inception pool3, 4 horizontal FoV-90 views per "
               "frame", "distribution", ("set_features",), _FRECHET, kind="set", features="inception_views",
               comparable="torchmetrics / torch-fidelity FID features on perspective views (not PanFlow's "
                          "whole-ERP FID)"),
    MetricSpec("kid_views", "lower", "KID (poly kernel MMD^2) of 2048-d Inception pool3, 4 horizontal views per "
               "frame", "distribution", ("set_features",), _KID, kind="set", features="inception_views",
               comparable="torchmetrics / torch-fidelity KID on the same views; trust it over FID for small sets"),
    MetricSpec("fid_sphere", "lower", f"Frechet distance of 2048-d Inception pool3, {_SPHERE}", "distribution",
               ("set_features",), _FRECHET, kind="set", features="inception_sphere",
               comparable="like PanFusion's crop_FID (FoV-90 views at directions uniform on the sphere, poles "
                          "included) but on video frames, at 14 fixed directions instead of 20 random ones: not "
                          "numerically comparable"),
    MetricSpec("kid_sphere", "lower", f"KID (poly kernel MMD^2) of 2048-d Inception pool3, {_SPHERE}",
               "distribution", ("set_features",), _KID, kind="set", features="inception_sphere",
               comparable="torchmetrics / torch-fidelity KID on the fid_sphere views; trust it over FID for small "
                          "sets"),
    MetricSpec("fid_seam", "lower", "Frechet distance of 2048-d Inception pool3, 3 FoV-90 views per frame centred on "
               "the seam (lon 180; lat 45, 0, -45)", "distribution", ("set_features",), _FRECHET, kind="set",
               features="inception_seam",
               comparable="like PanFusion's seam_FID (views centred on the seam, panorama images) on video frames "
                          "at 3 fixed latitudes, against the reference's views at the same places"),
    MetricSpec("omnifid", "lower", "(FD_U + FD_D + FD_F) / 3 of 2048-d Inception pool3 on every frame's cube faces "
               "(FoV 90, 299x299; F: the 4 side faces pooled as samples)", "distribution", ("set_features",),
               _OMNIFID, kind="set", features="inception_sphere",
               comparable="OmniFID as defined in arXiv 2407.18207, per video frame; no official code (face size and "
                          "orientation ours); not the third-party variants that average the side faces as pixels"),
)

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in SPECS}
VIDEO_METRICS: dict[str, MetricSpec] = {s.name: s for s in SPECS if s.kind == "video"}
SET_METRICS: dict[str, MetricSpec] = {s.name: s for s in SPECS if s.kind == "set"}
METRIC_NAMES = tuple(VIDEO_METRICS)  # the per-video names, the column order of every table
SET_METRIC_NAMES = tuple(SET_METRICS)


def frame_metrics() -> dict[str, list[str]]:
    """compute reference -> the per-video metric names it returns, for the metrics that need only
    the frames (computed on the CPU for every video, in registry order)."""
    out: dict[str, list[str]] = {}
    for spec in VIDEO_METRICS.values():
        if spec.needs == ("frames",):
            out.setdefault(spec.compute, []).append(spec.name)
    return out


def names_needing(need: str) -> tuple[str, ...]:
    """The per-video metric names whose `needs` include `need`, in registry order."""
    return tuple(name for name, spec in VIDEO_METRICS.items() if need in spec.needs)


def help_text() -> str:
    """One line per metric for `--help`: name (direction): scale."""
    return "; ".join(f"{s.name} ({s.better}): {s.scale}" for s in SPECS)
