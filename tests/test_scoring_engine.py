"""The batched, prefetching scoring loop: no score depends on order, grouping or batch size;
reduced precision stays within its stated tolerance; extractors plug in; sharding and prefetch."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from dvd360.models.clip_model import build_tiny_clip, load_clip
from dvd360.device import device_label, fixed_batches, resolve_device
from dvd360.distributed import shard
from dvd360.metrics.engine import JobError, extract_many, prefetch
from dvd360.metrics.flow_agreement import rigid_rotation_clip
from dvd360.metrics.scoring import VideoInput, VideoScorer

# Measured with the tiny CLIP on these clips (CPU, one thread): batch size 1 vs 32 moves the CLIP
# scores by at most 6e-7 points (of 100); bf16 autocast against fp32 by at most 0.21 points.
BATCH_SIZE_TOLERANCE = 1e-4
BF16_TOLERANCE = 1.0
CLIP_METRICS = ("clip_similarity_erp", "clip_similarity_views", "frame_consistency_erp", "frame_consistency_views")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "clip", seed=0)


@pytest.fixture(scope="module")
def videos():
    """Five videos of different lengths, with and without a prompt and a reference flow."""
    out = []
    for k in range(5):
        frames, flow = rigid_rotation_clip(32, 64, 3 + k % 2, yaw_deg=2.0 + k, seed=k)
        out.append(VideoInput(frames, f"prompt {k % 3}" if k != 2 else None, flow if k % 2 == 0 else None))
    return out


def _scores(scorer, videos):
    return [scored.result for scored in scorer.score_stream(videos)]


def test_order_and_grouping_do_not_change_any_score(clip_dir, videos):
    scorer = VideoScorer(load_clip(clip_dir, batch_size=8), "ilk", {"radius": 4, "num_warp": 3})
    alone = [scorer.score(v.frames, v.prompt, v.reference_flow) for v in videos]  # one video per forward
    together = _scores(scorer, videos)  # 5 videos of 3-4 frames x 5 images share forward passes
    backwards = _scores(scorer, videos[::-1])[::-1]
    assert together == alone and backwards == alone  # exactly, not approximately
    assert "flow_epe_deg" in alone[0]["metrics"] and "flow_epe_deg" not in alone[1]["metrics"]
    assert "clip_similarity_erp" not in alone[2]["metrics"] and "frame_consistency_views" in alone[2]["metrics"]


def test_flow_agreement_in_the_main_process_gives_the_workers_figures(clip_dir, videos):
    """With a GPU the workers send both flows back and the main process computes agreement on the
    GPU; the figures are those computed beside the estimate (here both on CPU: exactly)."""
    scorer = VideoScorer(load_clip(clip_dir), "ilk", {"radius": 4, "num_warp": 3})
    assert scorer.cpu.agree and scorer.flow_device.type == "cpu"
    in_workers = _scores(scorer, videos)
    scorer.cpu = dataclasses.replace(scorer.cpu, agree=False)
    assert _scores(scorer, videos) == in_workers
    assert "(float64)" in scorer.describe()["flow_epe_deg"]["agreement_device"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_flow_agreement_on_the_gpu_matches_the_cpu_within_float64_rounding(videos):
    on_cpu = _scores(VideoScorer(None, "ilk", {"radius": 4, "num_warp": 3}), videos)
    scorer = VideoScorer(None, "ilk", {"radius": 4, "num_warp": 3}, flow_device="cuda")
    assert not scorer.cpu.agree
    for a, b in zip(on_cpu, _scores(scorer, videos)):
        assert a["metrics"].keys() == b["metrics"].keys()
        for name in a["metrics"]:
            assert a["metrics"][name] == pytest.approx(b["metrics"][name], rel=1e-9, abs=1e-9), name


def test_batch_size_changes_scores_only_within_rounding(clip_dir, videos):
    small = _scores(VideoScorer(load_clip(clip_dir, batch_size=1), None), videos)
    large = _scores(VideoScorer(load_clip(clip_dir, batch_size=32), None), videos)
    for a, b in zip(small, large):
        assert a["metrics"].keys() == b["metrics"].keys()
        for name in a["metrics"]:
            assert a["metrics"][name] == pytest.approx(b["metrics"][name], abs=BATCH_SIZE_TOLERANCE), name


def test_bf16_stays_within_the_stated_tolerance_of_fp32(clip_dir, videos):
    fp32 = _scores(VideoScorer(load_clip(clip_dir, precision="fp32"), None), videos)
    bf16 = _scores(VideoScorer(load_clip(clip_dir, precision="bf16"), None), videos)
    gaps = [abs(a["metrics"][n] - b["metrics"][n]) for a, b in zip(fp32, bf16) for n in CLIP_METRICS
            if n in a["metrics"]]
    assert 0 < max(gaps) <= BF16_TOLERANCE  # bf16 really ran, and stayed close


class MeanColour:
    """A trivial frame model: the mean RGB of each frame (an independent check of the plumbing)."""

    name, batch_size = "mean_colour", 3

    def content_key(self) -> dict:
        return {"model": "mean colour"}

    def inputs(self, frames):
        return torch.from_numpy(np.asarray(frames, dtype=np.float32))

    def extract(self, inputs):
        return fixed_batches(lambda batch: batch.mean(dim=(1, 2)), inputs, self.batch_size)


def test_a_plugged_in_extractor_gets_its_features_per_video(clip_dir, videos):
    scorer = VideoScorer(load_clip(clip_dir), None, extractors=[MeanColour()])
    for video, scored in zip(videos, scorer.score_stream(videos)):
        expected = video.frames.astype(np.float32).mean(axis=(1, 2))
        np.testing.assert_allclose(scored.result["features"]["mean_colour"].numpy(), expected, rtol=1e-6)
        assert scored.shape == video.frames.shape[:3]


def test_fixed_batches_run_one_shape_and_drop_the_padding():
    shapes = []
    items = torch.arange(10.0).reshape(5, 2)
    out = fixed_batches(lambda batch: shapes.append(tuple(batch.shape)) or batch * 2, items, 4)
    assert shapes == [(4, 2), (4, 2)]
    torch.testing.assert_close(out, items * 2)
    split = extract_many(MeanColour(), [torch.ones(2, 4, 4, 3), torch.zeros(3, 4, 4, 3)])
    assert [tuple(x.shape) for x in split] == [(2, 3), (3, 3)] and float(split[0].sum()) == 6.0


def test_prefetch_keeps_order_bounds_the_lookahead_and_names_failures():
    running, peak, lock = [0], [0], threading.Lock()

    def work(job):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01 * (5 - job % 5))  # later jobs finish first
        with lock:
            running[0] -= 1
        if job == 7:
            raise ValueError("broken")
        return job * job

    with ThreadPoolExecutor(4) as executor:
        assert [r for _, r in prefetch(work, range(7), executor, depth=3)] == [j * j for j in range(7)]
        assert peak[0] <= 3
        with pytest.raises(JobError) as failure:
            list(prefetch(work, range(10), executor, depth=3))
    assert failure.value.job == 7 and "broken" in str(failure.value)


def test_shards_are_by_index_modulo_the_world_size():
    jobs = list("abcdefg")
    parts = [shard(jobs, rank, 3) for rank in range(3)]
    assert parts[1] == [(1, "b"), (4, "e")]
    assert sorted(i for part in parts for i, _ in part) == list(range(7))


def test_auto_device_and_every_metric_says_where_it_ran(clip_dir):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert device_label("cpu") == "cpu"
    clip = load_clip(clip_dir, device="auto")
    info = VideoScorer(clip, "ilk").describe()
    assert all(entry["device"].startswith(expected if name.startswith(("clip", "frame")) else "cpu")
               for name, entry in info.items() if name in CLIP_METRICS or "seam" in name or "flow" in name)
    assert info["clip_similarity_erp"]["precision"] == ("fp16" if expected == "cuda" else "fp32")


@pytest.mark.slow
def test_metrics_benchmark_runs_and_batching_changes_no_score(tmp_path):
    from dvd360.benchmarks.metrics import main

    out = tmp_path / "bench.json"
    main(["--quick", "--videos", "4", "--frames", "3", "--height", "32", "--workers", "1", "--samples", "1",
          "--loop-videos", "2", "--device", "cpu", "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["steady_state"]["largest score difference engine vs per-video loop"] == 0
    assert report["steady_state"]["engine_seconds_per_video"] > 0
    parts = report["per_metric_seconds_per_video"]
    for metric in ("clip_similarity_erp", "clip_similarity_views", "end_continuity", "flow_epe_deg",
                   "imaging_quality_views", "imaging_quality_erp", "aesthetic_quality_erp"):
        assert any(metric in part and seconds > 0 for part, seconds in parts.items()), metric
