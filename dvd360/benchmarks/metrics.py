"""Throughput of scoring: seconds per video for each metric, and the whole loop at steady state.

    python -m dvd360.benchmarks.metrics            # ViT-L-14-quickgelu (random weights: no download),
                                                   # 32 videos of 16 frames 512x1024, device auto
    python -m dvd360.benchmarks.metrics --quick    # tiny CLIP, 32 videos of 8 frames 64x128 (2 cores: minutes)

What it measures, in one run on one machine:
- load: the CLIP model's load, and the first batched pass (warm-up), shown apart;
- the quality metrics' models: MUSIQ and the LAION head at full size with random weights (tiny
  ones with --quick), so the timings are the real architectures';
- per metric (each alone, over a few videos after a warm-up, seconds per video): decoding and the
  reference flow (shared by all), CLIP on the ERP and on the views, the CLIP formulas, seam, flow
  estimation, flow agreement (on CPU, and on the GPU with the largest CPU-GPU difference); the estimator's self-check (once per size) apart;
- steady state: the engine (`VideoScorer.score_stream`: prefetching CPU workers, CLIP and MUSIQ
  batched over videos) over all the videos, seconds per video and videos per hour; the same
  without the flow metrics (what the GPU side alone sustains); against the per-video loop
  (decode, then score one video, one at a time) over the same videos, side by side, with the
  largest score difference between the two (0: batching changes no score);
- the set metrics' features (I3D on ERP and cube faces, Inception on views; full-size random
  weights, tiny with --quick) of every video alone; then the total per video as a scoring run
  computes it: the engine with these features extracted at the same time (`SetScorer.start`);
- CLIP alone batched over videos vs one video per forward; on CUDA the CLIP scores at fp16 and bf16
  against fp32 (the tolerance of reduced precision); the default flow estimator against iLK
  (time and error on the rigid-rotation ground truth) when both exist.

Videos: textured spheres turning rigidly (`rigid_rotation_clip`, exact flow), 4 distinct mp4 files
(rolled copies of 2 clips) cycled through the jobs, so decoding is real and setup stays short.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from dvd360.benchmarks.timing import Clock
from dvd360.data import flow_estimation
from dvd360.data.video import read_frames, write_video
from dvd360.geometry.rotation import roll_longitude
from dvd360.models.clip_model import build_tiny_clip, load_clip
from dvd360.metrics.clip_similarity import ClipImages, clip_similarity, erp_embeddings, view_embeddings
from dvd360.metrics.engine import cpu_executor, extract_many
from dvd360.metrics.flow_agreement import estimator_error, flow_agreement, rigid_rotation_clip
from dvd360.metrics.frame_consistency import frame_consistency
from dvd360.metrics.quality import QualityScorer
from dvd360.metrics.scoring import VideoInput, VideoScorer, align_reference_flow
from dvd360.metrics.seam import seam_metrics
from dvd360.models.feature_nets import QUALITY_KINDS, SET_KINDS, build_stand_in_feature_nets
from dvd360.provenance import device_name, versions

PAPER_ARCH = "ViT-L-14-quickgelu/random"
PROMPT = "a panoramic view of a beach at sunset with waves rolling in"
DISTINCT_FILES = 4
CLIP_METRICS = ("clip_similarity_erp", "clip_similarity_views", "frame_consistency_erp", "frame_consistency_views")


def load_job(job: tuple[str, str]) -> VideoInput:
    """A benchmark job (video path, flow .npz path) -> its frames, prompt and reference flow."""
    video, flow = job
    with np.load(flow) as data:
        return VideoInput(read_frames(video), PROMPT, data["flow"])


def write_videos(folder: Path, count: int, frames: int, height: int, width: int) -> list[tuple[str, str]]:
    """`count` jobs over DISTINCT_FILES mp4 files (2 clips, each also rolled by half a turn)."""
    files = []
    for k in range(DISTINCT_FILES):
        if k % 2 == 0:
            video, flow = rigid_rotation_clip(height, width, frames, yaw_deg=2.0 + k, seed=k)
        else:
            video, flow = roll_longitude(video, 180.0, dim=2), roll_longitude(flow, 180.0, dim=2)
        write_video(folder / f"v{k}.mp4", video)
        np.savez(folder / f"v{k}.npz", flow=flow)
        files.append((str(folder / f"v{k}.mp4"), str(folder / f"v{k}.npz")))
    return [files[i % DISTINCT_FILES] for i in range(count)]


def quality_scorer(folder: Path, clip, quick: bool, device: torch.device) -> QualityScorer:
    """MUSIQ and the LAION head: tiny (--quick) or full size with random weights in the real files' layout."""
    build_stand_in_feature_nets(folder, QUALITY_KINDS, tiny=quick)
    return QualityScorer(folder / "musiq", folder / "aesthetic", clip, device)


def per_metric(clip, quality: QualityScorer, jobs, flow_method: str, clock: Clock,
               samples: int) -> dict[str, float]:
    """Seconds per video of each part, alone, averaged over `samples` videos after one warm-up."""
    parts: dict[str, float] = {}
    musiq_views, musiq_erp, crops = quality.extractors

    def add(name, seconds):
        parts[name] = parts.get(name, 0.0) + seconds / samples

    for k, job in enumerate(jobs[:samples + 1]):
        seconds, video = clock(load_job, job)
        text_seconds, text = clock(lambda: clip.encode_texts([PROMPT])[0])
        erp_seconds, erp = clock(erp_embeddings, clip, video.frames)
        views_seconds, views = clock(view_embeddings, clip, video.frames)
        formula_seconds, _ = clock(lambda: (clip_similarity(erp, text), clip_similarity(views, text)))
        consistency_seconds, _ = clock(lambda: (frame_consistency(erp), frame_consistency(views)))
        seam_seconds, _ = clock(seam_metrics, video.frames)
        reference = align_reference_flow(video.reference_flow, *video.frames.shape[:3])
        flow_seconds, estimated = clock(flow_estimation.estimate_flow, video.frames, flow_method)
        agreement_seconds, on_cpu = clock(flow_agreement, estimated, reference)
        if clip.device.type != "cpu":  # where the engine computes it with a GPU (float64 there too)
            device_seconds, on_device = clock(flow_agreement, estimated, reference, device=clip.device)
            gap = max(abs(on_cpu[n] - on_device[n]) for n in on_cpu)
            parts["flow agreement: largest |CPU - GPU| difference"] = max(gap, parts.get(
                "flow agreement: largest |CPU - GPU| difference", 0.0))
        quality_seconds = {e.name: clock(lambda e=e: e.extract(e.inputs(video.frames)))[0]
                           for e in quality.extractors}
        if k == 0:
            continue  # warm-up
        add("decode video + reference flow (all metrics)", seconds)
        add("clip_similarity_erp: embed ERP frames + text + formula", erp_seconds + text_seconds + formula_seconds / 2)
        add("clip_similarity_views: render 4 views + embed + formula", views_seconds + formula_seconds / 2)
        add("frame_consistency_erp + _views (from the embeddings)", consistency_seconds)
        add("end_continuity, seam_ratio (+ _coslat), CPU", seam_seconds)
        add(f"flow_epe_deg, flow_direction_agreement: estimation ({flow_method}, 1 process)", flow_seconds)
        add(f"flow_epe_deg, flow_direction_agreement: agreement, CPU ({torch.get_num_threads()} threads)",
            agreement_seconds)
        if clip.device.type != "cpu":
            add(f"flow_epe_deg, flow_direction_agreement: agreement, {clip.device.type}", device_seconds)
        add("imaging_quality_views: render 4F views + MUSIQ", quality_seconds[musiq_views.name])
        add("imaging_quality_erp: VBench resize + MUSIQ", quality_seconds[musiq_erp.name])
        add("aesthetic_quality_erp: VBench centre crops + CLIP (views: the CLIP view embeddings)",
            quality_seconds[crops.name])
    return parts


def scores_of(scored) -> list[dict]:
    return [s.result["metrics"] for s in scored]


def largest_difference(a: list[dict], b: list[dict], names=None) -> float:
    return max(abs(x[n] - y[n]) for x, y in zip(a, b) for n in (names or x) if n in x and n in y)


def steady_state(clip, quality: QualityScorer, jobs, flow_method: str, workers: int, clock: Clock,
                 loop_videos: int) -> dict:
    """The engine over every job (with and without the flow metrics) and the per-video loop over
    the first `loop_videos`, side by side."""
    scorer = VideoScorer(clip, flow_method, quality=quality)
    frame_models = VideoScorer(clip, None, quality=quality)
    scorer.estimator_error(*read_frames(jobs[0][0]).shape[1:3])  # once per size, timed apart
    with cpu_executor(workers) as executor:  # once per run, as in the CLI and the stage
        warm_seconds, _ = clock(lambda: list(scorer.score_stream(jobs[:DISTINCT_FILES], load_job, workers,
                                                                 executor=executor)))
        engine_seconds, batched = clock(lambda: list(scorer.score_stream(jobs, load_job, workers,
                                                                         executor=executor)))
        models_seconds, _ = clock(lambda: list(frame_models.score_stream(jobs, load_job, workers,
                                                                        executor=executor)))

    def one_by_one():
        out = []
        for job in jobs[:loop_videos]:
            video = load_job(job)
            out.append(scorer.score(video.frames, video.prompt, video.reference_flow))
        return out

    loop_seconds, single = clock(one_by_one)
    return {"videos": len(jobs), "workers": workers,
            "warm_up_seconds (worker start, first batch)": warm_seconds,
            "engine_seconds_per_video": engine_seconds / len(jobs),
            "engine_videos_per_hour": 3600 * len(jobs) / engine_seconds,
            "engine without flow metrics (decode, seam, CLIP, quality) seconds_per_video": models_seconds / len(jobs),
            "per_video_loop_videos": loop_videos,
            "per_video_loop_seconds_per_video": loop_seconds / loop_videos,
            "per_video_loop_videos_per_hour": 3600 * loop_videos / loop_seconds,
            "speed-up engine vs per-video loop": (loop_seconds / loop_videos) / (engine_seconds / len(jobs)),
            "largest score difference engine vs per-video loop": largest_difference(
                scores_of(batched), [r["metrics"] for r in single])}


def set_features(folder: Path, jobs, quick: bool, device: torch.device, clock: Clock) -> dict:
    """The set metrics' features (I3D on the ERP and the cube faces, Inception on the views;
    `metrics.set_features`, no cache) of every video file: seconds per video after one warm-up."""
    from dvd360.metrics.set_features import SetFeatureExtractor

    build_stand_in_feature_nets(folder, SET_KINDS, tiny=quick)
    extractor = SetFeatureExtractor(folder / "i3d", folder / "inception", cache=None, device=str(device))
    warm_seconds, _ = clock(extractor.features_of_file, jobs[0][0])
    seconds, _ = clock(lambda: [extractor.features_of_file(video) for video, _ in jobs])
    return {"videos": len(jobs), "warm_up_seconds": warm_seconds, "seconds_per_video": seconds / len(jobs)}


def engine_with_set_features(clip, quality: QualityScorer, jobs, flow_method: str, workers: int, nets: Path,
                             device: torch.device, clock: Clock) -> dict:
    """Everything a scoring run computes per video, as `dvd360-eval score --reference` runs it: the
    engine with the set-metric features extracted at the same time in the background
    (`SetScorer.start`); seconds per video over every job, and the features' agreement with
    extraction alone (the largest difference; 0 expected)."""
    from dvd360.metrics.set_scoring import SetScorer

    scorer = VideoScorer(clip, flow_method, quality=quality)
    set_scorer = SetScorer(nets, None, str(device))  # in the background on CUDA only, as in the CLI
    paths = [video for video, _ in jobs]
    alone = set_scorer.features(paths[:DISTINCT_FILES])  # also loads the nets
    with cpu_executor(workers) as executor:
        list(scorer.score_stream(jobs[:DISTINCT_FILES], load_job, workers, executor=executor))  # worker start

        def both():
            set_scorer.start(paths)
            scored = list(scorer.score_stream(jobs, load_job, workers, executor=executor))
            return scored, set_scorer.features(paths)

        seconds, (_, together) = clock(both)
    gap = max(float(np.abs(a[name] - b[name]).max()) for a, b in zip(alone, together) for name in a)
    return {"videos": len(jobs), "seconds_per_video": seconds / len(jobs), "videos_per_hour": 3600 * len(jobs) / seconds,
            "largest feature difference, overlapped vs alone": gap}


def clip_batching(clip, jobs, clock: Clock) -> dict:
    """CLIP image embedding alone: every video's images in shared forwards vs one video per forward."""
    extractor = ClipImages(clip)
    frames = [load_job(job).frames for job in jobs]
    extract_many(extractor, [extractor.inputs(frames[0])])  # warm-up
    batched, _ = clock(lambda: extract_many(extractor, [extractor.inputs(f) for f in frames]))
    single, _ = clock(lambda: [extract_many(extractor, [extractor.inputs(f)]) for f in frames])
    return {"batched_seconds_per_video": batched / len(frames), "one_video_per_forward_seconds_per_video":
            single / len(frames), "speed-up": single / batched}


def precision_gaps(clip, jobs) -> dict[str, float]:
    """Largest CLIP-score difference of each reduced precision from fp32 over the videos."""
    reference = scores_of(VideoScorer(dataclasses.replace(clip, precision="fp32"), None).score_stream(jobs, load_job))
    return {precision: largest_difference(reference, scores_of(
        VideoScorer(dataclasses.replace(clip, precision=precision), None).score_stream(jobs, load_job)), CLIP_METRICS)
        for precision in ("fp16", "bf16")}


def estimators(job, height: int, width: int, flow_method: str, clock: Clock) -> dict | None:
    """The default flow estimator against iLK, one process each, on the first 4 frames of a video
    (seconds per frame pair), and their errors on the 4-frame rigid-rotation ground truth."""
    if flow_method == "ilk" or "ilk" not in flow_estimation.METHODS:
        return None
    frames = load_job(job).frames[:4]
    out = {}
    for method in (flow_method, "ilk"):
        seconds, _ = clock(flow_estimation.estimate_flow, frames, method)
        error = estimator_error(height, width, method)
        out[method] = {"seconds_per_frame_pair": seconds / (len(frames) - 1), "flow_epe_deg": error["flow_epe_deg"],
                       "flow_direction_agreement": error["flow_direction_agreement"]}
    out[f"time ratio ilk / {flow_method}"] = (out["ilk"]["seconds_per_frame_pair"]
                                             / out[flow_method]["seconds_per_frame_pair"])
    return out


def run(args) -> dict:
    device = torch.device(args.device) if args.device != "auto" else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    clock = Clock(device)
    report: dict = {}

    def put(key: str, value) -> None:  # printed as it comes: a run cut short still shows its figures
        report[key] = value
        _print({key: value})

    with tempfile.TemporaryDirectory() as tmp:
        spec = build_tiny_clip(f"{tmp}/clip") if args.quick else PAPER_ARCH
        load_seconds, clip = clock(load_clip, spec, device=device, precision=args.precision,
                                   batch_size=args.batch_size)
        jobs = write_videos(Path(tmp), args.videos, args.frames, args.height, 2 * args.height)
        for key, value in {"clip": clip.name, "clip_device": str(device), "precision": clip.precision,
                           "batch_size": clip.batch_size, "device": device_name(), "cpu_cores": os.cpu_count(),
                           "torch_threads": torch.get_num_threads(), "flow_method": args.flow_method,
                           "video": f"{args.frames} frames {args.height}x{2 * args.height}",
                           "load_seconds (CLIP model)": load_seconds}.items():
            put(key, value)
        quality = quality_scorer(Path(tmp), clip, args.quick, device)
        put("quality_models", {name: info["model"] for name, info in quality.describe().items()})
        put("per_metric_seconds_per_video", per_metric(clip, quality, jobs, args.flow_method, clock, args.samples))
        put("estimator self-check seconds (once per size)",
            clock(estimator_error, args.height, 2 * args.height, args.flow_method)[0])
        engine = steady_state(clip, quality, jobs, args.flow_method, args.workers or os.cpu_count(), clock,
                              min(args.loop_videos, len(jobs)))
        put("steady_state", engine)
        features = set_features(Path(tmp) / "set_nets", jobs, args.quick, device, clock)
        put("set_metric_features", features)
        put("sum of the two run one after the other, seconds per video",
            engine["engine_seconds_per_video"] + features["seconds_per_video"])
        put("total: engine with the set-metric features overlapped (as `score --reference` runs)",
            engine_with_set_features(clip, quality, jobs, args.flow_method, args.workers or os.cpu_count(),
                                     Path(tmp) / "set_nets", device, clock))
        put("clip_batching", clip_batching(clip, jobs, clock))
        if device.type == "cuda":
            put("precision_vs_fp32 (largest CLIP score difference, points)", precision_gaps(clip, jobs[:8]))
        put("estimators", estimators(jobs[0], args.height, 2 * args.height, args.flow_method, clock))
    report["versions"] = versions()
    return report


def _print(report: dict, indent: str = "") -> None:
    for key, value in report.items():
        if key == "versions":
            continue
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _print(value, indent + "  ")
        elif isinstance(value, float):
            print(f"{indent}{key}: {value:.4g}")
        else:
            print(f"{indent}{key}: {value}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny CLIP, 8 frames of 64x128 (2-core CPU: minutes)")
    parser.add_argument("--videos", type=int, default=32, help="videos in the steady-state run (>= 32 amortises)")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--height", type=int, default=None, help="ERP height; width = 2 * height")
    parser.add_argument("--device", default="auto", help="CLIP device: auto (CUDA when there is one), cpu, cuda")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    parser.add_argument("--batch-size", type=int, default=128, help="CLIP images per forward")
    parser.add_argument("--flow-method", default=getattr(flow_estimation, "DEFAULT_METHOD", "ilk"),
                        choices=flow_estimation.METHODS)
    parser.add_argument("--workers", type=int, default=0, help="CPU worker processes of the engine (0: every core)")
    parser.add_argument("--samples", type=int, default=3, help="videos timed per metric after a warm-up")
    parser.add_argument("--loop-videos", type=int, default=8, help="videos of the per-video loop it is compared with")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.frames = args.frames or (8 if args.quick else 16)
    args.height = args.height or (64 if args.quick else 512)
    report = run(args)
    if args.json:
        from dvd360.atomic import write_json

        write_json(args.json, report)


if __name__ == "__main__":
    main()
