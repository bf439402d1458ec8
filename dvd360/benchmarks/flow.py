"""Flow estimators side by side: time per video and error on exact synthetic ground truth.

    python -m dvd360.benchmarks.flow                       # dis, ilk, tvl1; 16x512x1024; 64/128/512
    python -m dvd360.benchmarks.flow --sizes 64,128 --frames 4 --methods dis,ilk   # a quick look

Time: wall seconds to estimate the wrap-aware flow of one `--frames` x H x 2H video (rigid
rotation, `rigid_rotation_clip`), the frame pairs on `--workers` processes (1: in this process,
one thread per pair). Error, per size: `flow_epe_deg` and `flow_direction_agreement` on the rigid
rotation (4 frames, seed 0; what `estimator_error` reports) and on `synthetic.render_clip`
worlds with moving objects (seeds 0-2, 4 frames), all measured in this one run. Ratios are
against iLK (time ilk / method, EPE method / ilk).
"""

from __future__ import annotations

import argparse
import time

from tqdm.auto import tqdm

from dvd360.data.flow_estimation import METHODS, describe, estimate_flow, flow_pool
from dvd360.metrics.flow_agreement import flow_agreement, rigid_rotation_clip
from dvd360.provenance import device_name, versions

WORLD_SEEDS = (0, 1, 2)
ERROR_FRAMES = 4


def ground_truth(height: int) -> dict[str, tuple]:
    """{clip name: (frames, exact flow)} at height x 2 height: the rigid rotation and the worlds."""
    from dvd360.data.synthetic import make_scene, render_clip

    clips = {"rigid": rigid_rotation_clip(height, 2 * height, ERROR_FRAMES, seed=0)}
    for seed in WORLD_SEEDS:
        clip = render_clip(make_scene(seed), height, 2 * height, ERROR_FRAMES)
        clips[f"world{seed}"] = (clip.frames, clip.flow)
    return clips


def run(methods: list[str], frames: int, time_height: int, sizes: list[int], workers: int) -> dict:
    pool = flow_pool(workers) if workers > 1 else None
    try:
        video = rigid_rotation_clip(time_height, 2 * time_height, frames, seed=0)[0]
        seconds = {}
        for method in tqdm(methods, desc=f"time per {frames}x{time_height}x{2 * time_height} video"):
            start = time.perf_counter()
            estimate_flow(video, method, pool=pool)
            seconds[method] = time.perf_counter() - start
        errors: dict[str, dict[str, dict]] = {method: {} for method in methods}
        for height in tqdm(sizes, desc="error per size"):
            for name, (clip, truth) in ground_truth(height).items():
                for method in methods:
                    errors[method][f"{name}_{height}"] = flow_agreement(estimate_flow(clip, method, pool=pool), truth)
    finally:
        if pool is not None:
            pool.shutdown()
    return {"device": device_name(), "workers": workers, "video": f"{frames}x{time_height}x{2 * time_height}",
            "estimators": {method: describe(method) for method in methods}, "seconds_per_video": seconds,
            "errors": errors, "versions": versions()}


def print_report(report: dict) -> None:
    methods = list(report["seconds_per_video"])
    print(f"{report['device']}, {report['workers']} worker process(es); "
          + "; ".join(f"{m}: {d}" for m, d in report["estimators"].items()))
    print(f"seconds per {report['video']} video: "
          + ", ".join(f"{m} {s:.2f}" for m, s in report["seconds_per_video"].items()))
    keys = list(report["errors"][methods[0]])
    print("flow_epe_deg / flow_direction_agreement on exact ground truth (4 frames):")
    print("  " + "clip".ljust(12) + "".join(m.rjust(18) for m in methods))
    for key in keys:
        cells = "".join(f"{report['errors'][m][key]['flow_epe_deg']:8.3f} / {report['errors'][m][key]['flow_direction_agreement']:5.3f}".rjust(18)
                        for m in methods)
        print("  " + key.ljust(12) + cells)
    if "ilk" in methods:
        ilk_time = report["seconds_per_video"]["ilk"]
        for method in methods:
            if method == "ilk":
                continue
            worse = [k for k in keys if report["errors"][method][k]["flow_epe_deg"] > report["errors"]["ilk"][k]["flow_epe_deg"]]
            ratio = max(report["errors"][method][k]["flow_epe_deg"] / report["errors"]["ilk"][k]["flow_epe_deg"] for k in keys)
            print(f"{method} vs ilk: {ilk_time / report['seconds_per_video'][method]:.1f}x faster; "
                  f"EPE at most {ratio:.2f}x iLK's; worse than iLK on: {', '.join(worse) or 'none'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="dis,ilk,tvl1", help=f"comma-separated, of {', '.join(METHODS[:3])}")
    parser.add_argument("--frames", type=int, default=16, help="frames of the timed video")
    parser.add_argument("--height", type=int, default=512, help="height of the timed video (width = 2 height)")
    parser.add_argument("--sizes", default="64,128,512", help="heights at which errors are measured")
    parser.add_argument("--workers", type=int, default=1, help="processes for the frame pairs (1: this one)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS or m == "raft"]
    if unknown:
        parser.error(f"unknown or unsupported method(s) {', '.join(unknown)} (raft needs local weights)")
    report = run(methods, args.frames, args.height, [int(s) for s in args.sizes.split(",")], args.workers)
    print_report(report)
    if args.json:
        from dvd360.atomic import write_json

        write_json(args.json, report)


if __name__ == "__main__":
    main()
