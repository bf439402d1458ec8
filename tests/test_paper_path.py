"""CI guard of `python -m dvd360.benchmarks.paper_path`: the `--tiny` run passes its checks without
`av`, `mlflow` or `dvc`, writes its sources in the real layouts, and the full-size layouts
convert back through diffusers' own converters."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
from safetensors import safe_open

from dvd360.benchmarks import paper_path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("paper_path")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("av", "mlflow", "dvc"):  # not on the GPU machine: importing one fails here too
            patch.setitem(sys.modules, name, None)
        report = paper_path.main(["--tiny", "--workdir", str(workdir)])
    return workdir, report


def test_tiny_run_passes_every_check(tiny_run):
    _, report = tiny_run
    checks = report["checks"]
    assert len(checks) == 12 and all(checks.values()), [name for name, ok in checks.items() if not ok]
    for name in ("D", "C", f"D+{paper_path.PERSONALISED}"):
        assert checks[f"{name}: UNet, VAE, text encoder, motion module as written"]
    assert checks["D: released adapter loaded strictly"] and checks["C: LoRA changes the sample"]
    assert set(report["videos"]) == {"D", "C", f"D+{paper_path.PERSONALISED}"}
    assert report["settings"] == {"height": 64, "width": 256, "frames": 4, "steps": 3, "dtype": "float32"}
    assert all(video["peak_gib"] > 0 and video["s_per_step"] > 0 for video in report["videos"].values())


def test_tiny_sources_are_in_the_real_layouts(tiny_run):
    sources = tiny_run[0] / "sources"
    # A1111 single file: tiny UNet has 1 layer per block, so down block 0 is input block 1, its
    # downsampler input block 2, up block 0's upsampler output block 1 (no attention: index 1);
    # the decoder's up blocks are reversed (LDM up.0 is the 16-channel, full-resolution one)
    with safe_open(str(sources / "personalised.safetensors"), framework="pt") as handle:
        single = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    for key in ("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
                "model.diffusion_model.input_blocks.2.0.op.weight",
                "model.diffusion_model.output_blocks.1.1.conv.weight",
                "model.diffusion_model.middle_block.1.proj_in.weight",
                "cond_stage_model.transformer.text_model.final_layer_norm.weight"):
        assert key in single, key
    assert single["first_stage_model.decoder.up.0.block.0.conv1.weight"][0] == 16
    assert len(single["first_stage_model.encoder.mid.attn_1.q.weight"]) == 4  # a 1x1 conv in LDM
    # AnimateDiff's original motion module: original names, the position table in both attentions
    motion = torch.load(sources / "mm_sd_v14.ckpt", weights_only=True)
    assert not [k for k in motion if any(p in k for p in (".attn1.", ".norm1.", "pos_embed"))]
    block = "up_blocks.3.motion_modules.1.temporal_transformer.transformer_blocks.0"
    pe = motion[f"{block}.attention_blocks.1.pos_encoder.pe"]
    assert pe.shape == (1, 24, 32)  # v1.4: 24 positions; up block 3 has the 32 channels of level 0
    assert pe[0, 1, 0].item() == pytest.approx(math.sin(1.0)) and pe[0, 1, 1].item() == pytest.approx(math.cos(1.0))
    # the released adapter layout: only `state_dict`, DDP prefix; 1x1 in_conv only where channels change
    checkpoint = torch.load(sources / "360Adapter_flow_v1.ckpt", weights_only=True)
    assert list(checkpoint) == ["state_dict"] and all(k.startswith("module.") for k in checkpoint["state_dict"])
    assert "module.body.1.in_conv.weight" in checkpoint["state_dict"]
    assert "module.body.2.in_conv.weight" not in checkpoint["state_dict"]
    # Kohya LoRA: 10 transformer blocks x 10 Linears + 10 x (proj_in, proj_out); 2 text layers x 6
    from dvd360.models.kohya_lora import check_kohya_lora

    assert check_kohya_lora(sources / "LatentLabs360.safetensors") == {
        "unet_modules": 120, "text_encoder_modules": 12, "rank": 4}
    # the materialised models folder records where each piece came from
    manifest = json.loads((tiny_run[0] / "models" / "manifest.json").read_text())
    assert manifest["profile"] == "paper"
    assert manifest["pieces"]["motion_adapter"]["source"] == str(sources / "mm_sd_v14.ckpt")


def test_full_size_layouts_convert_back_with_diffusers():
    """At SD 1.5 / v1.4 sizes (meta tensors: no weights), diffusers' single-file converters turn
    our original-layout keys back into exactly the diffusers keys and shapes."""
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (convert_animatediff_checkpoint_to_diffusers,
                                                     convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint)

    from dvd360.benchmarks.sampler import SD15_UNET, SD_VAE
    from dvd360.models.materialize import MOTION_V14_CONFIG

    with torch.device("meta"):
        unet, vae = UNet2DConditionModel(**SD15_UNET), AutoencoderKL(**SD_VAE)
        motion = MotionAdapter(**json.loads(MOTION_V14_CONFIG.read_text()))
    unet_original = paper_path.ldm_unet_state(unet.state_dict(), dict(unet.config))
    for model, original, convert in ((unet, unet_original, convert_ldm_unet_checkpoint),
                                     (vae, paper_path.ldm_vae_state(vae.state_dict(), 4), convert_ldm_vae_checkpoint)):
        ours = model.state_dict()
        back = convert(original, dict(model.config))
        assert back.keys() == ours.keys()
        assert all(back[k].shape == ours[k].shape for k in ours)
    # names of a real SD 1.5 checkpoint: upsamplers at output blocks 2 (no attention), 5 and 8
    for key in ("input_blocks.3.0.op.weight", "output_blocks.2.1.conv.weight", "output_blocks.5.2.conv.weight",
                "output_blocks.8.2.conv.weight", "input_blocks.11.0.out_layers.3.weight"):
        assert f"model.diffusion_model.{key}" in unet_original, key
    original = paper_path.original_motion_state(motion.state_dict())
    assert sum(k.endswith("pos_encoder.pe") for k in original) == 40  # 8 down + 12 up modules x 2
    assert convert_animatediff_checkpoint_to_diffusers(original).keys() == \
        {k for k in motion.state_dict() if not k.endswith("pos_embed.pe")}
