"""The per-video metrics' names, directions, scales and results-page groups: plain data, so
tables and pages (`dvd360.compare`, `dvd360.report`) read them without loading any model code.
The set-level metrics' entries live in `dvd360.metrics.set_metrics.SET_METRICS`."""

from __future__ import annotations

# name -> (better, scale); order = column order of every table.
METRICS: dict[str, tuple[str, str]] = {
    "clip_similarity_erp": ("higher", "100 * max(cos, 0), 0..100"),
    "clip_similarity_views": ("higher", "100 * max(cos, 0), 0..100"),
    "frame_consistency_erp": ("higher", "100 * cos of consecutive frames, -100..100"),
    "frame_consistency_views": ("higher", "100 * cos of consecutive frames, -100..100"),
    "end_continuity": ("lower", "mean |last - first column|, pixel values in [0, 1], rows plain"),
    "seam_ratio": ("lower", "EC / interior EC, unitless (1 = no visible seam), rows plain"),
    "end_continuity_coslat": ("lower", "as end_continuity, rows weighted by cos(latitude)"),
    "seam_ratio_coslat": ("lower", "as seam_ratio, rows weighted by cos(latitude)"),
    "seam_ratio_codec": ("lower", "EC / EC of the block-edge column pairs (16k-1, 16k), unitless, rows plain"),
    "seam_ratio_codec_coslat": ("lower", "as seam_ratio_codec, rows weighted by cos(latitude)"),
    "flow_epe_deg": ("lower", "degrees on the sphere, cos-latitude weighted"),
    "flow_epe_deg_scaled": ("lower", "as flow_epe_deg after the least-squares speed factor s >= 0 of the "
                                     "estimate (per video: flow_scale)"),
    "flow_direction_agreement": ("higher", "cos-latitude weighted mean direction cosine, -1..1"),
    "imaging_quality_views": ("higher", "MUSIQ-SPAQ / 100 on 4 horizontal views per frame, 0..1 (VBench's scale)"),
    "imaging_quality_erp": ("higher", "MUSIQ-SPAQ / 100 on the ERP frame, VBench's imaging_quality exactly, 0..1"),
    "aesthetic_quality_views": ("higher", "LAION aesthetic / 10 on 4 horizontal views per frame, ~0..1 "
                                          "(VBench's scale)"),
    "aesthetic_quality_erp": ("higher", "LAION aesthetic / 10 on the centre crop, VBench's aesthetic_quality "
                                        "exactly, ~0..1"),
}
METRIC_NAMES = tuple(METRICS)
# name -> the group the results page files it under; every metric, per-video and set-level, has one.
METRIC_GROUP_ORDER = ("panorama", "video", "distribution", "quality")
METRIC_GROUPS: dict[str, str] = {
    **dict.fromkeys(("end_continuity", "seam_ratio", "end_continuity_coslat", "seam_ratio_coslat",
                     "seam_ratio_codec", "seam_ratio_codec_coslat"), "panorama"),
    **dict.fromkeys(("frame_consistency_erp", "frame_consistency_views", "flow_epe_deg", "flow_epe_deg_scaled",
                     "flow_direction_agreement"), "video"),
    **dict.fromkeys(("fvd_erp", "fvd_cubemap", "fid_views", "kid_views"), "distribution"),
    **dict.fromkeys(("clip_similarity_erp", "clip_similarity_views", "imaging_quality_views", "imaging_quality_erp",
                     "aesthetic_quality_views", "aesthetic_quality_erp"), "quality"),
}
