"""Panorama360Pipeline: determinism, LoRA weight, rotation bookkeeping, condition rotation, checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from dvd360.models.adapter import Adapter360, load_adapter
from dvd360.models.materialize import load_components
from dvd360.sampling.pipeline import Panorama360Pipeline, net_rotation_degrees

PROMPT = "a panoramic view of a volcano at sunset"
SMALL = dict(steps=1, height=64, width=128, num_frames=2)
# Rotation needs the latent width (32) / 4 = 8 columns, a multiple of the UNet's downsampling (8),
# for the rolled and un-rolled runs to be exactly comparable. 5 steps: features at steps 0-3
# (5//4*3 = 3), so at rotated positions too; net turn 450 = 90 mod 360, as for the paper's 25.
WIDE = dict(steps=5, height=64, width=256, num_frames=2)


@pytest.fixture(scope="module")
def setup(tiny_models):
    components = load_components(tiny_models)
    pipe = Panorama360Pipeline.from_components(components)
    pipe.set_progress_bar_config(disable=True)
    return pipe, components


def test_same_seed_same_frames_and_lora_weight(setup):
    pipe, components = setup
    base = pipe(PROMPT, seed=3, **SMALL)
    assert base.frames.dtype == np.uint8 and base.frames.shape == (2, 64, 128, 3)
    again = pipe(PROMPT, seed=3, **SMALL)
    assert np.array_equal(base.frames, again.frames)
    record = base.record
    assert record["seed"] == 3 and record["timesteps"] == [1]
    assert set(record["timings_s"]) >= {"text_encoding", "denoising", "decoding", "total"}
    assert record["peak_memory"]["gib"] > 0 and "torch" in record["versions"]

    try:
        pipe.set_panorama_lora(components.lora_path, weight=0.0)
        assert torch.equal(pipe(PROMPT, seed=3, **SMALL).latents, base.latents)
        pipe.set_panorama_lora(components.lora_path, weight=1.0)
        with_lora = pipe(PROMPT, seed=3, **SMALL)
        assert (with_lora.latents - base.latents).abs().max() > 1e-3
        assert with_lora.record["lora"]["weight"] == 1.0
        assert with_lora.record["lora"]["path"] == str(components.lora_path)  # outside the repository: as given
    finally:
        pipe.set_panorama_lora(None)
    assert torch.equal(pipe(PROMPT, seed=3, **SMALL).latents, base.latents)


def test_rotation_turns_the_result_by_the_documented_net_angle(setup):
    """With an exactly roll-equivariant UNet (circular padding from step 0), rotating the latent
    by 90 degrees after every step and the adapter features with it gives the un-rotated result
    turned by steps*90 mod 360 degrees; the release (features fixed) does not."""
    pipe, components = setup
    adapter = load_adapter(components.adapter_init_path)
    condition = torch.rand(2, 3, 64, 256) * 2 - 1
    common = dict(WIDE, adapter=adapter, condition=condition, circular_padding=True,
                  circular_padding_start=0)
    still = pipe(PROMPT, seed=0, **common)
    turned = pipe(PROMPT, seed=0, latent_rotation=True, **common)
    release = pipe(PROMPT, seed=0, latent_rotation=True, rotate_condition=False, **common)

    assert turned.record["latent_rotation_net_degrees"] == 90
    columns = still.latents.shape[-1] // 4  # 90 degrees
    expected = torch.roll(still.latents, columns, dims=-1)
    assert (turned.latents - expected).abs().max() < 1e-3
    assert (release.latents - expected).abs().max() > 1e-2
    # the decoded video is turned by the same angle: W/4 pixel columns
    difference = np.abs(turned.frames.astype(int) - np.roll(still.frames, 256 // 4, axis=2).astype(int))
    assert difference.max() <= 1


def test_net_rotation_of_the_paper_setting():
    assert net_rotation_degrees(25) == 90  # 25 x 90 = 2250 = 6 x 360 + 90
    assert net_rotation_degrees(4) == 0 and net_rotation_degrees(3) == 270


def test_refusals_before_compute(setup):
    pipe, components = setup
    adapter = load_adapter(components.adapter_init_path)
    with pytest.raises(ValueError, match="multiples of 64"):
        pipe(PROMPT, seed=0, steps=2, height=60, width=128, num_frames=2)
    with pytest.raises(ValueError, match="no adapter"):
        pipe(PROMPT, seed=0, condition=torch.zeros(2, 3, 64, 128), **SMALL)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        pipe(PROMPT, seed=0, adapter=adapter, condition=torch.full((2, 3, 64, 128), 255.0), **SMALL)
    with pytest.raises(ValueError, match="do not match the UNet"):
        pipe(PROMPT, seed=0, adapter=Adapter360((32, 64, 64, 128)), **SMALL)
    with pytest.raises(ValueError, match="multiple of 256"):
        pipe(PROMPT, seed=0, adapter=adapter, latent_rotation=True, **SMALL)
    scheduler = pipe.scheduler
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(scheduler.config)
    try:
        with pytest.raises(ValueError, match="DPMSolverMultistepScheduler"):
            pipe(PROMPT, seed=0, latent_rotation=True, **SMALL)
    finally:
        pipe.scheduler = scheduler


def test_lora_is_recorded_by_its_repository_relative_path(setup, tiny_models, monkeypatch):
    """Inside the repository the record names the LoRA relative to its root: a moved clone's
    records have the same bytes."""
    import dvd360.config

    pipe, components = setup
    monkeypatch.setattr(dvd360.config, "repo_root", lambda: tiny_models.parent)
    try:
        pipe.set_panorama_lora(components.lora_path, weight=0.5)
        relative = components.lora_path.relative_to(tiny_models.parent).as_posix()
        assert pipe(PROMPT, seed=3, **SMALL).record["lora"] == {"path": relative, "weight": 0.5}
    finally:
        pipe.set_panorama_lora(None)
