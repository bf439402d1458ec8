"""The models stage: tiny build (deterministic, loadable, LoRA in Kohya format) and the paper loader
on fixtures written in the real formats (diffusers folder, Kohya LoRA, AnimateDiff mm checkpoint,
LDM single-file checkpoint), plus the missing-pieces message."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from dvd360.models import kohya_lora
from dvd360.models.materialize import build_tiny, load_components, sha256_of
from dvd360.models.tiny_configs import tiny_config


def test_build_tiny_is_deterministic(tiny_models, tmp_path):
    first = json.loads((tiny_models / "manifest.json").read_text())
    second = build_tiny(tmp_path / "again", seed=0)
    assert first["seed"] == 0 and first["profile"] == "tiny"
    assert set(first["pieces"]) >= {"unet", "vae", "text_encoder", "tokenizer", "scheduler",
                                    "motion_adapter", "lora", "adapter_init", "clip"}
    for name, piece in first["pieces"].items():
        assert piece["sha256"] == second["pieces"][name]["sha256"], name
        assert piece["sha256"] == sha256_of(tiny_models / piece["path"]), name
    size = sum(f.stat().st_size for f in tiny_models.rglob("*") if f.is_file() and "clip" not in f.parts)
    assert size < 20e6


def test_load_components_round_trip(tiny_models):
    from diffusers import DDIMScheduler, UNetMotionModel

    comps = load_components(tiny_models)
    assert isinstance(comps.unet, UNetMotionModel)
    assert list(comps.unet.config.block_out_channels) == tiny_config("unet")["block_out_channels"]
    assert comps.unet.config.motion_max_seq_length == 24 and comps.unet.mid_block.motion_modules is None
    # the saved UNet and motion weights are the ones in the UNetMotionModel
    unet2d = load_file(str(tiny_models / "sd/unet/diffusion_pytorch_model.safetensors"))
    motion = load_file(str(tiny_models / "motion_adapter/diffusion_pytorch_model.safetensors"))
    state = comps.unet.state_dict()
    for key in ("conv_in.weight", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"):
        assert torch.equal(state[key], unet2d[key])
    key = "down_blocks.1.motion_modules.0.transformer_blocks.0.attn1.to_q.weight"
    assert torch.equal(state[key], motion[key])
    assert not any(p.requires_grad for p in comps.unet.parameters())
    # the DDIM settings of REFERENCE.md
    assert isinstance(comps.scheduler, DDIMScheduler)
    comps.scheduler.set_timesteps(25)
    assert comps.scheduler.timesteps[0] == 961 and comps.scheduler.timesteps[-1] == 1
    assert comps.scheduler.config.clip_sample is False
    # the tokenizer pads to 77 and the text encoder feeds the UNet's cross-attention
    ids = comps.tokenizer("a panoramic view of the sea", padding="max_length",
                          max_length=comps.tokenizer.model_max_length, return_tensors="pt").input_ids
    assert ids.shape == (1, 77) and comps.tokenizer.unk_token_id not in ids[0, 1:7].tolist()
    hidden = comps.text_encoder(ids)[0]
    sample = torch.randn(1, 4, 3, 8, 16, generator=torch.Generator().manual_seed(0))
    out = comps.unet(sample, 500, encoder_hidden_states=hidden.repeat_interleave(3, 0)).sample
    assert out.shape == sample.shape and torch.isfinite(out).all()
    assert comps.lora_path.is_file() and comps.adapter_init_path.is_file() and comps.clip_dir.is_dir()
    with pytest.raises(KeyError, match="no personalised checkpoint 'toonyou'; available: none"):
        load_components(tiny_models, personalised="toonyou")


def test_kohya_lora_loads_in_diffusers_and_changes_the_unet(tiny_models):
    from diffusers import AnimateDiffPipeline

    comps = load_components(tiny_models)
    summary = kohya_lora.check_kohya_lora(comps.lora_path)
    assert summary["unet_modules"] > 0 and summary["text_encoder_modules"] > 0
    keys = load_file(str(comps.lora_path))
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" in keys
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha" in keys
    pipe = AnimateDiffPipeline(vae=comps.vae, text_encoder=comps.text_encoder, tokenizer=comps.tokenizer,
                               unet=comps.unet, scheduler=comps.scheduler, motion_adapter=None)
    sample = torch.randn(1, 4, 2, 8, 16, generator=torch.Generator().manual_seed(0))
    hidden = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(1))

    def unet_out():
        with torch.no_grad():
            return pipe.unet(sample, 500, encoder_hidden_states=hidden).sample

    base = unet_out()
    pipe.load_lora_weights(str(comps.lora_path), adapter_name="pano")
    assert pipe.get_list_adapters() == {"unet": ["pano"], "text_encoder": ["pano"]}
    assert (unet_out() - base).abs().max() > 1e-3
    pipe.set_adapters(["pano"], adapter_weights=[0.0])
    assert torch.equal(unet_out(), base)


def test_check_kohya_lora_refuses_other_layouts(tmp_path):
    peft_style = tmp_path / "peft.safetensors"
    save_file({"unet.down_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 8)}, str(peft_style))
    with pytest.raises(kohya_lora.KohyaLoraError, match="peft.safetensors: key .* is not in the Kohya layout"):
        kohya_lora.check_kohya_lora(peft_style)
    incomplete = tmp_path / "incomplete.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(4, 8)}, str(incomplete))
    with pytest.raises(kohya_lora.KohyaLoraError, match="lora_unet_x: has"):
        kohya_lora.check_kohya_lora(incomplete)
    with pytest.raises(kohya_lora.KohyaLoraError, match="no such LoRA file"):
        kohya_lora.check_kohya_lora(tmp_path / "absent.safetensors")
