"""The models stage: tiny build (deterministic, loadable, LoRA in Kohya format) and the paper loader
on fixtures written in the real formats (diffusers folder, Kohya LoRA, AnimateDiff mm checkpoint,
LDM single-file checkpoint), plus the missing-pieces message."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from dvd360.benchmarks.paper_path import ldm_unet_state, ldm_vae_state, original_motion_state
from dvd360.models import kohya_lora
from dvd360.models.feature_nets import random_paper_state
from dvd360.models.materialize import PaperModelsSettings, build_tiny, load_components
from dvd360.models.tiny_configs import tiny_config
from dvd360.provenance import sha256_of


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
    assert comps.unet.config.motion_max_seq_length == 24
    assert not any(key.startswith("mid_block.motion_modules") for key in comps.unet.state_dict())  # like v1.4
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
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(4, 8), "lora_unet_x.alpha": torch.tensor(4.0),
               "lora_unet_y.lora_down.weight": torch.zeros(4, 8), "lora_unet_y.lora_up.weight": torch.zeros(8, 2)},
              str(incomplete))
    with pytest.raises(kohya_lora.KohyaLoraError, match=r"lora_unet_x: has only \['.alpha', '.lora_down.weight'\]"
                       r"(.|\n)*lora_unet_y: up \(8, 2\) does not match down \(4, 8\)"):
        kohya_lora.check_kohya_lora(incomplete)
    with pytest.raises(kohya_lora.KohyaLoraError, match="no such LoRA file"):
        kohya_lora.check_kohya_lora(tmp_path / "absent.safetensors")


# -- paper profile: fixtures in the real formats ------------------------------------------------
@pytest.fixture(scope="module")
def paper_sources(tiny_models, tmp_path_factory):
    """Local files in the paper formats, made from the tiny models."""
    root = tmp_path_factory.mktemp("paper_sources")
    unet = load_file(str(tiny_models / "sd/unet/diffusion_pytorch_model.safetensors"))
    vae = load_file(str(tiny_models / "sd/vae/diffusion_pytorch_model.safetensors"))
    single = {**ldm_unet_state(unet, tiny_config("unet")),
              **ldm_vae_state(vae, len(tiny_config("vae")["block_out_channels"]))}
    save_file({k: v.contiguous() for k, v in single.items()}, str(root / "toon.safetensors"))
    motion = load_file(str(tiny_models / "motion_adapter/diffusion_pytorch_model.safetensors"))
    torch.save(original_motion_state(motion), root / "mm_sd_v14.ckpt")
    adapter = load_file(str(tiny_models / "adapter_init/adapter.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in adapter.items()}}, root / "360Adapter_flow_v1.ckpt")
    torch.save(random_paper_state("i3d"), root / "i3d_pretrained_400.pt")
    torch.save(random_paper_state("inception"), root / "pt_inception.pth")
    torch.save(random_paper_state("musiq"), root / "musiq_spaq.pth")
    torch.save(random_paper_state("aesthetic"), root / "sa_0_4_vit_l_14_linear.pth")
    settings = {"sd15": str(tiny_models / "sd"), "motion_adapter": str(root / "mm_sd_v14.ckpt"),
                "motion_adapter_config": None,
                "lora": str(tiny_models / "lora/panorama_lora.safetensors"),
                "personalised": {"toon": str(root / "toon.safetensors")},
                "adapter_checkpoint": str(root / "360Adapter_flow_v1.ckpt"),
                "clip": str(tiny_models / "clip"), "i3d": str(root / "i3d_pretrained_400.pt"),
                "inception": str(root / "pt_inception.pth"), "musiq": str(root / "musiq_spaq.pth"),
                "aesthetic": str(root / "sa_0_4_vit_l_14_linear.pth"), "seed": 0}
    return PaperModelsSettings(**settings)


def test_paper_loader_reads_the_real_formats(paper_sources, tiny_models, tmp_path):
    from dvd360.models.materialize import materialize_paper
    from dvd360.models.tiny_configs import TINY_DIR

    settings = paper_sources.model_copy(update={"motion_adapter_config": str(TINY_DIR / "motion_adapter.json")})
    manifest = materialize_paper(tmp_path / "models", settings)
    assert manifest["profile"] == "paper"
    assert {"personalised.toon", "adapter_released", "motion_adapter", "lora", "clip", "i3d",
            "inception", "musiq", "aesthetic"} <= set(manifest["pieces"])
    comps = load_components(tmp_path / "models", personalised="toon")
    reference = load_components(tiny_models)
    # the LDM single file, converted by diffusers, gives back the tiny UNet; mm ckpt the motion weights
    ours, theirs = comps.unet.state_dict(), reference.unet.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    vae_ours, vae_theirs = comps.vae.state_dict(), reference.vae.state_dict()
    assert all(torch.equal(vae_ours[k], vae_theirs[k]) for k in vae_theirs)
    released = load_file(str(tmp_path / "models/adapter_released/adapter.safetensors"))
    initial = load_file(str(tiny_models / "adapter_init/adapter.safetensors"))
    assert all(torch.equal(released[k], initial[k]) for k in initial)
    assert manifest["pieces"]["lora"]["sha256"] == sha256_of(tiny_models / "lora/panorama_lora.safetensors")


def test_paper_missing_pieces_are_listed_in_one_message(tmp_path, monkeypatch):
    import socket

    from dvd360.config import load_params
    from dvd360.models.materialize import MissingPiecesError, ModelsSettings, check_paper_sources
    from dvd360.params_schema import validated_stage_params

    settings = validated_stage_params("models", {**load_params(), "profile": "paper"}, ModelsSettings)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # the relative weights/ paths of params.yaml do not exist here
    settings = settings.model_copy(update={"sd15": "nobody-b2/not-a-cached-model"})
    attempts = []

    def no_network(sock, address, *args):
        attempts.append(address)
        raise OSError(f"the test forbids network access ({address})")

    monkeypatch.setattr(socket.socket, "connect", no_network)  # checking sources must not try the network
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: no_network(None, address))
    with pytest.raises(MissingPiecesError) as error:
        check_paper_sources(settings)
    assert attempts == []
    text = str(error.value)
    names = ["sd15", "motion_adapter", "lora", "clip", "i3d", "inception", "musiq", "aesthetic"] + [
        f"personalised.{n}" for n in settings.personalised]
    assert f"missing {len(names)} piece(s)" in text
    for name in names:
        assert f"- {name}:" in text
    assert text.count("get it:") == len(names)
    assert "HF_HUB_OFFLINE is set" in text and "LatentLabs360" in text and "weights/LatentLabs360.safetensors" in text


def test_mm_checkpoint_with_wrong_layout_is_refused(paper_sources, tmp_path):
    from dvd360.models.materialize import motion_adapter_from_original

    state = torch.load(paper_sources.motion_adapter, weights_only=True)
    state.pop(next(k for k in state if k.endswith("to_q.weight")))
    torch.save(state, tmp_path / "broken.ckpt")
    with pytest.raises(ValueError, match="broken.ckpt: does not match MotionAdapter.*1 missing"):
        motion_adapter_from_original(tmp_path / "broken.ckpt", tiny_config("motion_adapter"))


def test_manifest_records_only_the_versions_that_shape_the_files(tiny_models):
    """mlflow, dvc or the Python patch release must not change the models folder's bytes."""
    from dvd360.provenance import MODEL_FILE_PACKAGES

    recorded = json.loads((tiny_models / "manifest.json").read_text())["versions"]
    assert set(recorded) <= set(MODEL_FILE_PACKAGES) and "torch" in recorded
