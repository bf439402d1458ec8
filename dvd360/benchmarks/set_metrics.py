"""Cost of the set metrics: seconds per video of each feature set, and of the set statistics.

    python -m dvd360.benchmarks.set_metrics            # real architectures (random weights, no download):
                                                       # one 16x512x1024 video, device auto
    python -m dvd360.benchmarks.set_metrics --quick    # the tiny stand-ins on one 6x128x256 video (the
                                                       # tiny profile's generations)
    python -m dvd360.benchmarks.set_metrics --device cpu --only inception_sphere,inception_seam \
        --network-sample 16                            # two feature sets on a CPU, the network timed on 16
                                                       # inputs each and scaled (its cost per input is fixed)

Per video, each measured alone (after one warm-up call on the same video): `i3d_erp` (what
fvd_erp adds), `i3d_cube` (fvd_cubemap: 6 faces rendered + 6 I3D clips), `inception_views`
(shared by fid_views and kid_views: 4F views rendered + Inception), `inception_sphere` (fid_sphere,
kid_sphere, omnifid: 14F views, of which 10F rendered, 4F copied from inception_views),
`inception_seam` (fid_seam: 3F views, 2F rendered); rendering and network shown apart (on a GPU:
rendered there, with the largest feature difference against CPU rendering). Then the set
statistics from random features of the real dimensions (`--generated` generated vs `--reference`
reference videos): each metric's value with `--resamples` bootstrap resamples.
Random weights cost what real weights cost (same architecture, same shapes).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from dvd360.benchmarks.timing import Clock
from dvd360.data.synthetic import make_scene, render_clip
from dvd360.metrics import set_features as sf
from dvd360.metrics.set_metrics import SET_METRIC_NAMES, set_metrics
from dvd360.models.feature_nets import SET_KINDS, build_stand_in_feature_nets
from dvd360.provenance import device_name


def _timed(fn, repeats: int = 1) -> tuple[float, object]:
    """Seconds per call of fn() over `repeats` calls after one warm-up, and the last result."""
    fn()  # warm-up

    def run():
        for _ in range(repeats):
            out = fn()
        return out

    seconds, out = Clock(torch.device("cuda" if torch.cuda.is_available() else "cpu"))(run)
    return seconds / repeats, out


def _rendered(centres):
    """The views of a view set that are rendered (the others are copied from inception_views)."""
    return [centre for centre in centres if centre not in sf.SIDE_CENTRES]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny stand-in nets on a 6x128x256 video")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--generated", type=int, default=16, help="generated videos of the set statistics")
    parser.add_argument("--reference", type=int, default=200, help="reference videos of the set statistics")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples (FVD/FID)")
    parser.add_argument("--only", default=None,
                        help="comma-separated feature sets and set metrics to measure (default: all)")
    parser.add_argument("--network-sample", type=int, default=0,
                        help="time the network on this many inputs per feature set and scale to all (its cost per "
                             "input is constant; 0: all inputs). For the real architectures on a CPU")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    frames, height = (6, 128) if args.quick else (16, 512)
    video = render_clip(make_scene(0), height, 2 * height, frames).frames
    print(f"device {device_name() if device != 'cpu' else 'cpu'} ({torch.get_num_threads()} threads); "
          f"video {frames}x{height}x{2 * height}; nets: {'tiny stand-ins' if args.quick else 'real architectures'}")
    with tempfile.TemporaryDirectory() as tmp:
        root = build_stand_in_feature_nets(tmp, SET_KINDS, tiny=args.quick)
        extractor = sf.SetFeatureExtractor(root / "i3d", root / "inception", cache=None, device=device)
        steps = {"i3d_erp": (lambda: sf.i3d_input(sf.erp_clip(video)), "i3d"),
                 "i3d_cube": (lambda: sf.i3d_input(sf.cube_clips(video, device)), "i3d"),
                 "inception_views": (lambda: sf.view_images(video, device), "inception"),
                 **{name: (lambda centres=centres: sf.view_set_images(video, _rendered(centres), device), "inception")
                    for name, centres in sf.VIEW_SETS.items()}}
        steps = {name: step for name, step in steps.items() if only is None or name in only}
        total = 0.0
        for name, (prepare, kind) in steps.items():
            prep_s, inputs = _timed(prepare)
            sample = inputs[:args.network_sample] if 0 < args.network_sample < len(inputs) else inputs
            net_s, out = _timed(lambda: extractor._run(kind, sample))
            net_s *= len(inputs) / len(sample)
            total += prep_s + net_s
            scaled = f", timed on {len(sample)} of {len(inputs)} inputs" if len(sample) < len(inputs) else ""
            print(f"{name:16s} {prep_s + net_s:8.2f} s/video  (rendering {prep_s:.2f} s, network {net_s:.2f} s"
                  f"{scaled}; inputs {tuple(inputs.shape)})")
        print(f"{'all features':16s} {total:8.2f} s/video")
        if device != "cpu":  # the renderings on the GPU against those on the CPU, through the same network
            for name, (prepare, kind) in steps.items():
                on_device = extractor._run(kind, prepare())
                on_cpu = extractor._run(kind, sf.i3d_input(sf.cube_clips(video)) if name == "i3d_cube"
                                        else sf.view_images(video) if name == "inception_views"
                                        else sf.view_set_images(video, _rendered(sf.VIEW_SETS[name]))
                                        if name in sf.VIEW_SETS else prepare())
                gap = np.abs(on_device - on_cpu).max() / max(np.abs(on_cpu).max(), 1e-12)
                print(f"{name:16s} features rendered on {device} vs cpu: largest difference {gap:.2e} of the largest")
    rng = np.random.default_rng(0)

    def videos(n):
        return [{"i3d_erp": rng.normal(size=(1, 400)), "i3d_cube": rng.normal(size=(6, 400)),
                 "inception_views": rng.normal(size=(4 * frames, 2048)),
                 **{name: rng.normal(size=(len(centres) * frames, 2048)) for name, centres in sf.VIEW_SETS.items()}}
                for _ in range(n)]

    from torchmetrics.image.kid import KernelInceptionDistance  # noqa: F401  (imported before KID is timed)

    generated, reference = videos(args.generated), videos(args.reference)
    for name in (n for n in SET_METRIC_NAMES if only is None or n in only):
        start = time.perf_counter()
        set_metrics(generated, reference, n_resamples=args.resamples, names=(name,))
        print(f"{name:16s} set statistic {time.perf_counter() - start:8.2f} s per method "
              f"({args.generated} vs {args.reference} videos, {args.resamples} resamples)")


if __name__ == "__main__":
    main()
