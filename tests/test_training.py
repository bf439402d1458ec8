"""Training: the latitude-aware loss, the sample schedule, augmentation through the data layer,
the motion-condition index, overfitting one clip, and exact resume from a checkpoint."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from unittest import mock
import torch

from dvd360.training.config import TrainConfig, TrainSettings
from dvd360.training.loss import diffusion_loss, latitude_aware_mse, row_weights
from dvd360.training.schedule import SeededSamples, StepBatches, clip_for_sample


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on 2 shared cores, more threads only contend (steps run 10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def prepared(tiny_web360, tmp_path_factory):
    """A prepared-index folder (what the `prepare` stage writes) over the tiny synthetic set."""
    from dvd360.data.web360 import index_web360, save_index

    folder = tmp_path_factory.mktemp("prepared")
    save_index(index_web360(tiny_web360), folder / "index.json")
    return folder


def tiny_config(tmp_path, models, data, **changes) -> TrainConfig:
    """Small and fast: 64x128, 2 frames, a few steps, float32, no validation."""
    settings = dict(models_dir=str(models), data_dir=str(data), captions="dataset", conditions=None,
                    height=64, width=128, frames=2, stride=4, steps=4, lr=1e-3, mixed_precision="no",
                    checkpoint_every=0, log_every=1, validation_every=0, seed=0)
    settings.update(changes)
    return TrainConfig.for_variant(settings.pop("variant", "full"), TrainSettings(**settings),
                                   out_dir=str(tmp_path / "out"), checkpoint_dir=str(tmp_path / "ckpt"),
                                   report_dir=str(tmp_path / "report"))


# ----------------------------------------------------------------------------------- loss
def test_latitude_weights_follow_the_reference_formula():
    for h in (1, 4, 8, 64):
        expected = [abs(math.cos(((2 * i - h + 1) / (2 * h)) * math.pi)) for i in range(h)]
        np.testing.assert_allclose(row_weights(h).flatten().numpy(), expected, rtol=1e-6, atol=1e-7)
    # about 2/pi on average at the paper's latent height, and not normalised
    assert abs(float(row_weights(64).mean()) - 2 / math.pi) < 1e-3


def test_latitude_loss_equals_a_hand_computation():
    # h = 4 latent rows: w = |cos(-3pi/8)|, |cos(-pi/8)|, |cos(pi/8)|, |cos(3pi/8)|
    a, b = math.cos(3 * math.pi / 8), math.cos(math.pi / 8)   # 0.38268, 0.92388
    error = torch.tensor([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0], [-1.0, 2.0]])  # (h=4, w=2)
    pred = error.reshape(1, 1, 1, 4, 2)
    target = torch.zeros_like(pred)
    by_hand = (a * (1 + 4) + b * (0.25 + 0) + b * (9 + 1) + a * (1 + 4)) / 8
    assert float(latitude_aware_mse(pred, target)) == pytest.approx(by_hand, rel=1e-6)
    assert float(diffusion_loss(pred, target, latitude_aware=True)) == pytest.approx(by_hand, rel=1e-6)
    plain = (1 + 4 + 0.25 + 0 + 9 + 1 + 1 + 4) / 8
    assert float(diffusion_loss(pred, target, latitude_aware=False)) == pytest.approx(plain, rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        latitude_aware_mse(pred, target[..., :1])


# ------------------------------------------------------------------------------- schedule
def test_samples_split_over_processes_like_one_big_batch():
    single = StepBatches(5, seed=3, start=0, stop=6, batch=2)
    ranks = [StepBatches(5, seed=3, start=0, stop=6, batch=1, rank=r, world=2) for r in (0, 1)]
    for step, batch in enumerate(single):
        assert batch == [b for rank in ranks for b in list(rank)[step]]
    # each epoch visits every clip once
    assert sorted(clip_for_sample(g, 5, 3) for g in range(5)) == list(range(5))
    assert sorted(clip_for_sample(g, 5, 3) for g in range(5, 10)) == list(range(5))
    # resuming at step 4 continues the same sequence
    assert list(StepBatches(5, 3, 4, 6, 2)) == list(single)[4:]


def test_flip_through_the_data_layer_negates_horizontal_flow(prepared):
    """Augmented items equal roll (+ flip) of the stored clip, and a flip negates dx."""
    from dvd360.data.clips import Web360ClipDataset
    from dvd360.data.video import read_frames
    from dvd360.data.web360 import load_prepared

    index = load_prepared(prepared)
    clip = index.clips[0]
    dataset = SeededSamples(Web360ClipDataset(index, length=2, stride=4, augment=True), seed=0)
    stored_flow = torch.from_numpy(np.load(clip.flow_npz_path)["flow"].astype(np.float32))
    width = clip.width
    flips = 0
    for g in range(8):
        item = dataset[(g, 0)]
        indices = item["indices"].numpy()
        reference = torch.from_numpy(read_frames(clip.video_path, indices)).permute(0, 3, 1, 2).float() / 127.5 - 1
        flow = stored_flow[indices]
        candidates = [(shift, flipped) for flipped in (False, True) for shift in range(width)]
        rolled = torch.stack([torch.roll(reference, shift, dims=-1) for shift in range(width)])
        transformed = torch.cat([rolled, torch.flip(rolled, dims=(-1,))])  # order of `candidates`
        gaps = (transformed - item["video"]).abs().flatten(1).amax(dim=1)
        assert float(gaps.min()) < 1e-5, f"sample {g}: not a roll/flip of the stored clip"
        shift, flipped = candidates[int(gaps.argmin())]
        expected = torch.roll(flow, shift, dims=-2)
        if flipped:
            flips += 1
            expected = torch.flip(expected, dims=(-2,))
            expected[..., 0] = -expected[..., 0]
        # dx is wrapped into [-W/2, W/2): compare modulo W
        dx_gap = torch.remainder(item["flow"][..., 0] - expected[..., 0] + width / 2, width) - width / 2
        assert float(dx_gap.abs().max()) < 1e-3
        torch.testing.assert_close(item["flow"][..., 1], expected[..., 1], atol=1e-3, rtol=0)
        moving = expected[..., 0].abs() > 0.5
        assert moving.any()
        if flipped:  # on moving pixels the sign of dx really changed w.r.t. the rolled flow
            rolled_dx = torch.flip(torch.roll(flow, shift, dims=-2), dims=(-2,))[..., 0]
            assert bool((torch.sign(item["flow"][..., 0][moving]) == -torch.sign(rolled_dx[moving])).all())
    assert 0 < flips < 8  # both cases were exercised


# ----------------------------------------------------------------------------- conditions
def test_conditions_skip_synthetic_clips_and_estimate_real_ones(tiny_web360, tmp_path):
    import dataclasses

    from dvd360.data.flow_estimation import DEFAULT_METHOD, estimate_flow
    from dvd360.data.video import read_frames
    from dvd360.data.web360 import index_web360
    from dvd360.training.conditions import FlowSettings, apply_conditions, prepare_conditions

    four = FlowSettings(max_frames=4)
    index = index_web360(tiny_web360)
    real = dataclasses.replace(index.clips[0], id="real", flow_video_path=None, flow_npz_path=None)
    broken = dataclasses.replace(real, id="broken", video_path=tmp_path / "missing.mp4")
    result = prepare_conditions([*index.clips, real, broken], tmp_path / "flows", four)
    assert result["counts"] == {"exact": len(index.clips), "released": 0, "estimated": 1}
    assert [f["videoid"] for f in result["failures"]] == ["broken"]
    assert (tmp_path / "flows" / "index.json").is_file()
    entry = result["clips"]["real"]
    written = np.load(entry["flow_npz"])["flow"].astype(np.float32)
    expected = estimate_flow(read_frames(real.video_path, indices=list(range(4))))
    np.testing.assert_allclose(written, expected, atol=0.02)
    assert read_frames(entry["flow_video"]).shape == (4, real.height, real.width, 3)
    stamp = (tmp_path / "flows" / DEFAULT_METHOD / "real.npz").stat().st_mtime_ns
    prepare_conditions([real], tmp_path / "flows", four)                  # resumes: not estimated again
    assert (tmp_path / "flows" / DEFAULT_METHOD / "real.npz").stat().st_mtime_ns == stamp
    other = dataclasses.replace(real, video_path=index.clips[1].video_path)  # same id, other video bytes
    prepare_conditions([other], tmp_path / "flows", four)                  # stale: estimated again
    again = np.load(tmp_path / "flows" / DEFAULT_METHOD / "real.npz")["flow"].astype(np.float32)
    np.testing.assert_allclose(again, estimate_flow(read_frames(other.video_path, indices=list(range(4)))), atol=0.02)
    prepare_conditions([real], tmp_path / "flows", four)
    applied = apply_conditions(dataclasses.replace(index, clips=[real]), result)
    assert applied.clips[0].num_frames == 4 and str(applied.clips[0].flow_video_path) == entry["flow_video"]


def test_the_flow_index_names_files_relative_to_the_repository(tiny_web360, tmp_path, monkeypatch):
    """Two clones in two places write the same index bytes, and the trainer finds each one's files."""
    from dvd360.data.web360 import index_web360
    from dvd360.training.conditions import FlowSettings, apply_conditions, prepare_conditions

    written = []
    for place in ("here", "moved"):
        root = tmp_path / place
        shutil.copytree(tiny_web360, root / "data" / "web360")
        (root / "params.yaml").write_text("{}\n")
        monkeypatch.chdir(root)
        index = index_web360(root / "data" / "web360")
        result = prepare_conditions(index.clips, root / "data" / "flows", FlowSettings())
        written.append((root / "data" / "flows" / "index.json").read_bytes())
        assert all(entry["flow_npz"].startswith("data/web360/") for entry in result["clips"].values())
        applied = apply_conditions(index, result)
        assert all(clip.flow_npz_path.is_file() and clip.flow_npz_path.is_relative_to(root) for clip in applied.clips)
    assert written[0] == written[1]


# --------------------------------------------------------------------------------- training
def test_overfitting_one_clip_lowers_the_loss(tiny_models, prepared, tmp_path):
    """One clip, one repeated sample, no dropout: 30 steps must cut the loss by >= 1.4x
    (measured: 0.758 -> 0.486, 1.56x, with the tiny models' random frozen UNet)."""
    from dvd360.training.trainer import train

    config = tiny_config(tmp_path, tiny_models, prepared, clip_ids=["00000"], overfit_batches=1, steps=30,
                         lr=1e-2, augment=False, condition_dropout=0.0, text_dropout=0.0)
    result = train(config)
    first, last = result.losses[0][1], result.losses[-1][1]
    print(f"overfit: loss {first:.4f} -> {last:.4f}, factor {first / last:.2f}")
    assert last < first / 1.4, f"loss {first:.4f} -> {last:.4f}"
    from dvd360.models.adapter import load_adapter

    adapter = load_adapter(tmp_path / "out" / "adapter.safetensors")
    assert adapter.temporal and (tmp_path / "out" / "training.json").is_file()
    assert (tmp_path / "report" / "loss.tsv").read_text().splitlines()[0] == "step\tloss"


def test_resume_reproduces_the_uninterrupted_run_exactly(tiny_models, prepared, tmp_path):
    """Uninterrupted 4 steps vs. 2 steps + resume from the step-2 checkpoint: identical weights.
    Augmentation and both dropouts are on, so every source of randomness is exercised."""
    from safetensors.torch import load_file

    from dvd360.training import checkpoint as ckpt
    from dvd360.training.trainer import train

    whole = tiny_config(tmp_path / "a", tiny_models, prepared, checkpoint_every=2, keep_checkpoints=5)
    train(whole)
    saved = ckpt.list_checkpoints(tmp_path / "a" / "ckpt")
    assert [p.name for p in saved] == ["checkpoint-00000002", "checkpoint-00000004"]
    assert {p.name for p in saved[0].iterdir()} >= {"adapter.safetensors", "optimizer.pt", "rng-0.pt", "state.json"}

    (tmp_path / "b" / "ckpt").mkdir(parents=True)
    shutil.copytree(saved[0], tmp_path / "b" / "ckpt" / saved[0].name)  # as if stopped after step 2
    resumed = train(tiny_config(tmp_path / "b", tiny_models, prepared, checkpoint_every=2))
    assert resumed.resumed_from == 2 and resumed.step == 4
    from dvd360.training.trainer import MEASURED

    records, runs = ([json.loads((tmp_path / run / "out" / name).read_text()) for run in "ab"]
                     for name in ("training.json", "training.run.json"))
    assert [r["resumed_from"] for r in runs] == [None, 2] and all(set(r) == set(MEASURED) for r in runs)
    # the resumed run's record is the uninterrupted one's (only the folders in its config differ)
    assert [{k: v for k, v in r.items() if k != "config"} for r in records[1:]] == [
        {k: v for k, v in records[0].items() if k != "config"}]
    a = load_file(tmp_path / "a" / "out" / "adapter.safetensors")
    b = load_file(tmp_path / "b" / "out" / "adapter.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    init = load_file(tiny_models / "adapter_init" / "adapter.safetensors")
    assert any(not torch.equal(a[k], init[k]) for k in a)  # it did train
    # a checkpoint of other settings is never resumed, and is set aside rather than mixed in
    assert ckpt.latest(tmp_path / "a" / "ckpt", "another-fingerprint") is None
    moved = ckpt.set_aside_stale(tmp_path / "a" / "ckpt", "another-fingerprint")
    assert [p.name for p in moved] == ["checkpoint-00000002", "checkpoint-00000004"]
    assert ckpt.list_checkpoints(tmp_path / "a" / "ckpt") == [] and all(p.parent.name == "stale" for p in moved)


def test_validation_videos_come_from_the_callback(tiny_models, prepared, tmp_path):
    """`validate` (the stage's `validation_video`) writes `step-N.mp4` every validation_every steps,
    from the first validation clip's condition at the validation size; without it the run refuses."""
    from dvd360.data.video import read_frames
    from dvd360.sampling.validation import validation_video
    from dvd360.training.trainer import train

    config = tiny_config(tmp_path, tiny_models, prepared, steps=2, validation_every=2, validation=dict(
        prompt="a street", steps=1, guidance=7.5, height=64, width=256, frames=2, seed=0))
    with pytest.raises(ValueError, match="validate callback"):
        train(config)
    conditions = []

    def validate(components, adapter, condition, path):
        conditions.append(condition.shape)
        return validation_video(config.validation.model_dump(), components, adapter, condition, path)

    train(config, validate=validate)
    assert conditions == [(2, 3, 64, 256)]
    assert read_frames(tmp_path / "out" / "validation" / "step-00000002.mp4").shape == (2, 64, 256, 3)


def test_resume_fingerprint_covers_clip_content_captions_models_and_settings(tiny_models, prepared, tmp_path):
    """Changed data under the same paths (the issue's new dataset seed) is a different run."""
    import dataclasses

    from dvd360.data.web360 import load_prepared
    from dvd360.training.trainer import resume_fingerprint

    clips = []
    for clip in load_prepared(prepared).clips[:2]:  # copies, so their bytes can be changed
        copy = tmp_path / clip.video_path.name
        shutil.copy(clip.video_path, copy)
        clips.append(dataclasses.replace(clip, video_path=copy))
    config = tiny_config(tmp_path, tiny_models, prepared)
    base = resume_fingerprint(config, clips)
    assert resume_fingerprint(tiny_config(tmp_path, tiny_models, prepared, steps=99), clips) == base
    assert resume_fingerprint(tiny_config(tmp_path, tiny_models, prepared, lr=0.5), clips) != base
    assert resume_fingerprint(config, clips[:1]) != base
    with clips[0].video_path.open("ab") as handle:
        handle.write(b"\0")
    assert resume_fingerprint(config, clips) != base
    captions = tmp_path / "captions"
    captions.mkdir()
    (captions / "fused.csv").write_text("videoid,name\n")
    fused = tiny_config(tmp_path, tiny_models, prepared, captions="fused", captions_dir=str(captions))
    before = resume_fingerprint(fused, clips)
    (captions / "fused.csv").write_text("videoid,name\nx,a caption\n")
    assert resume_fingerprint(fused, clips) != before


def test_variants_change_what_they_name():
    def variant(name, **settings):
        return TrainConfig.for_variant(name, TrainSettings(**settings), out_dir=f"out/{name}", checkpoint_dir="ckpt")

    full = variant("full")
    assert (full.captions, full.temporal, full.latitude_loss) == ("fused", True, True)
    assert variant("no_360tf").captions == "erp"
    assert variant("no_pseudo3d").temporal is False
    assert variant("no_latloss").latitude_loss is False
    assert variant("no_latloss").out_dir == "out/no_latloss"
    assert full.shaping_settings() == variant("full", steps=5, log_every=1).shaping_settings()
    assert full.shaping_settings() != variant("full", lr=1e-4).shaping_settings()
    with pytest.raises(ValueError, match=r"train\.variant: Input should be a variant of eval/methods\.yaml: full, "):
        variant("no_adapter")


def test_dropped_clips_are_counted_and_too_many_fail_the_run(tiny_models, prepared, tmp_path):
    """Clips without a caption (caption failures) or a condition are listed; past
    max_dropped_fraction the run stops before any compute."""
    from dvd360.data.web360 import load_prepared, write_captions
    from dvd360.training.trainer import training_clips

    ids = [clip.id for clip in load_prepared(prepared).clips]
    write_captions(tmp_path / "captions" / "fused.csv", {i: "a caption" for i in ids[1:]})
    config = tiny_config(tmp_path, tiny_models, prepared, captions="fused", captions_dir=str(tmp_path / "captions"),
                         max_dropped_fraction=0.5)
    index, dropped = training_clips(config)
    assert [c.id for c in index.clips] == ids[1:]
    assert dropped == {"count": 1, "total": len(ids), "fraction": 1 / len(ids), "by_reason": {"no_caption": [ids[0]]}}
    strict = tiny_config(tmp_path, tiny_models, prepared, captions="fused", captions_dir=str(tmp_path / "captions"),
                         max_dropped_fraction=0.0)
    with pytest.raises(ValueError, match=r"1 of 4 clips dropped \(25.0%\) > max_dropped_fraction 0.0%.*no_caption"):
        training_clips(strict)


def test_the_held_out_reference_split_is_never_trained_on(tiny_models, prepared, tmp_path):
    """With hold_out_reference (the paper profile), exactly the clips of the set metrics'
    reference split are left out; the split is the hash rule of dvd360.data.reference_split."""
    from dvd360.data.web360 import load_prepared
    from dvd360.data.reference_split import is_reference_clip
    from dvd360.training.trainer import training_clips

    ids = [clip.id for clip in load_prepared(prepared).clips]
    held = [i for i in ids if is_reference_clip(i, fraction=0.5)]
    assert 0 < len(held) < len(ids)  # the test's fraction splits these ids both ways
    config = tiny_config(tmp_path, tiny_models, prepared, hold_out_reference=True)
    with mock.patch("dvd360.data.reference_split.is_reference_clip",
                    lambda clip_id: is_reference_clip(clip_id, fraction=0.5)):
        index, _ = training_clips(config)
    assert [c.id for c in index.clips] == [i for i in ids if i not in held]
