"""Throughput of the metrics: seconds per video (default 16 frames, 512x1024) for each metric.

    python -m dvd360.benchmarks.metrics            # ViT-L-14-quickgelu, random weights (no download)
    python -m dvd360.benchmarks.metrics --tiny     # tiny CLIP, 8 frames of 64x128: a quick check

CLIP runs on --device (default: cuda when available, else cpu; pass --device cpu on a GPU box for
the CPU figures); the flow estimator (scikit-image) and the seam and flow-agreement arithmetic run
on the CPU. Frame consistency reuses the CLIP embeddings of the similarity metrics, so its row is
the arithmetic only. The video is a textured sphere turning rigidly (`rigid_rotation_clip`).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from dvd360.data.flow_estimation import estimate_flow
from dvd360.metrics.clip_model import build_tiny_clip, load_clip
from dvd360.metrics.clip_similarity import clip_similarity, erp_embeddings, view_embeddings
from dvd360.metrics.flow_agreement import estimator_error, flow_agreement, rigid_rotation_clip
from dvd360.metrics.frame_consistency import frame_consistency
from dvd360.metrics.seam import seam_metrics
from dvd360.provenance import device_name, versions

PAPER_ARCH = "ViT-L-14-quickgelu/random"
PROMPT = "a panoramic view of a beach at sunset with waves rolling in"


def _timed(fn, device: torch.device, repeats: int):
    """(best seconds over `repeats` runs after one warm-up, last result)."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, result


def run(frames: int, height: int, width: int, device: str, tiny: bool, flow_method: str, repeats: int,
        flow_workers: int = 1) -> dict:
    device = torch.device(device)
    with tempfile.TemporaryDirectory() as tmp:
        clip = load_clip(build_tiny_clip(f"{tmp}/clip") if tiny else PAPER_ARCH, device=device)
    video, truth = rigid_rotation_clip(height, width, frames, seed=0)
    rows = {}
    rows["clip_similarity_erp (embed frames + text)"], erp = _timed(
        lambda: (erp_embeddings(clip, video), clip.encode_texts([PROMPT])[0]), device, repeats)
    rows["clip_similarity_views (render 4 views + embed)"], views = _timed(
        lambda: view_embeddings(clip, video), device, repeats)
    rows["clip_similarity formula (both)"], _ = _timed(
        lambda: (clip_similarity(erp[0], erp[1]), clip_similarity(views, erp[1])), device, repeats)
    rows["frame_consistency (erp + views, from embeddings)"], _ = _timed(
        lambda: (frame_consistency(erp[0]), frame_consistency(views)), device, repeats)
    cpu = torch.device("cpu")
    rows["seam (EC, SR, SR codec, both row weightings)"], _ = _timed(lambda: seam_metrics(video), cpu, repeats)
    rows[f"flow estimation ({flow_method}, wrap-aware, CPU, {flow_workers or 'all'} worker(s))"], estimated = _timed(
        lambda: estimate_flow(video, flow_method, workers=flow_workers), cpu, max(1, repeats // 2))
    rows["flow agreement (EPE + direction, CPU)"], agreement = _timed(
        lambda: flow_agreement(estimated, truth), cpu, repeats)
    rows["estimator error (once per size, 4 frames)"], error = _timed(
        lambda: estimator_error(height, width, flow_method), cpu, 1)
    return {"clip": clip.name, "clip_device": str(device), "device": device_name(),
            "video": f"{frames} frames {height}x{width}", "threads": torch.get_num_threads(),
            "seconds": rows, "flow_agreement_on_benchmark_video": agreement,
            "estimator_error": {k: v for k, v in error.items()}, "versions": versions()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny CLIP, 8 frames of 64x128 (quick check)")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--height", type=int, default=None, help="ERP height; width = 2 * height")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--flow-method", default="ilk", choices=("ilk", "tvl1"))
    parser.add_argument("--flow-workers", type=int, default=1,
                        help="processes estimating frame pairs in parallel (0: every core)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs after one warm-up (best is kept)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    frames = args.frames or (8 if args.tiny else 16)
    height = args.height or (64 if args.tiny else 512)
    report = run(frames, height, 2 * height, args.device, args.tiny, args.flow_method, args.repeats, args.flow_workers)
    width = max(len(k) for k in report["seconds"])
    print(f"{report['clip']} on {report['clip_device']} ({report['device']}), {report['video']}, "
          f"{report['threads']} CPU threads")
    for name, seconds in report["seconds"].items():
        print(f"  {name.ljust(width)}  {seconds:8.3f} s/video")
    print(f"  estimator error at this size: {report['estimator_error']['flow_epe_deg']:.3f} deg, "
          f"direction {report['estimator_error']['flow_direction_agreement']:.3f}")
    if args.json:
        from dvd360.atomic import write_json

        write_json(args.json, report)


if __name__ == "__main__":
    main()
