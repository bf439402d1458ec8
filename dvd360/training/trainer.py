"""Train the 360-Adapter on WEB360-layout clips (one variant), single process or data parallel.

One optimiser step, per sample g (see `schedule.py` for where g's randomness comes from):

    z0  = vae.encode(video).sample * scaling            (F, 4, H/8, W/8), VAE frozen
    c   = 0 with p = condition_dropout, else the flow-visualisation video in [-1, 1]
    y   = "" with p = text_dropout, else the caption;  e = text_encoder(y), frozen
    t ~ U{0, ..., 999},  eps ~ N(0, I),  zt = sqrt(abar_t) z0 + sqrt(1 - abar_t) eps
    loss = latitude-aware MSE (or plain MSE) of unet(zt, t, e; + adapter(c) after each down block) vs eps

and AdamW on the adapter only, gradients clipped to `grad_clip`. Runs under accelerate:
`accelerate launch` spreads it over GPUs (DDP, gradients averaged, each process draws its own
samples), plain `python` runs it in one process (CPU or GPU). Checkpoints every
`checkpoint_every` steps resume exactly (same weights as an uninterrupted run). Validation videos
come from a callback (`validate`; the stage passes `dvd360.sampling.validation.validation_video`), so
this module, whose import closure keys the checkpoints, holds only what shapes the adapter.

    python -m dvd360.training.trainer CONFIG.json      # a TrainConfig as JSON
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from dvd360.atomic import write_json, write_text
from dvd360.models.adapter import Adapter360, load_adapter, save_adapter
from dvd360.models.injection import FeatureInjection
from dvd360.provenance import device_name, git_commit, versions, write_record
from dvd360.training import checkpoint as ckpt
from dvd360.training.conditions import apply_conditions
from dvd360.training.config import TrainConfig
from dvd360.training.loss import diffusion_loss
from dvd360.training.schedule import SeededSamples, StepBatches, collate, sample_generator

VAE_CHUNK = 8  # frames per VAE encode call (bounds activation memory at 512x1024)


@dataclass
class TrainResult:
    """What a run did: the final step, the logged (step, mean loss) pairs, where the adapter went."""

    step: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    adapter_path: Path | None = None
    resumed_from: int | None = None
    seconds: float = 0.0
    dropped: dict = field(default_factory=dict)   # clips left out (`training_clips`)


# ----------------------------------------------------------------------------------- setup
def make_accelerator(config: TrainConfig):
    """An Accelerator; mixed precision only on GPU (CPU runs in float32)."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    if not cuda and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)  # on a few shared cores, extra threads mostly contend
    return Accelerator(mixed_precision=config.mixed_precision if cuda else "no", cpu=not cuda)


def weight_dtype(accelerator) -> torch.dtype:
    """Frozen models are stored in the autocast dtype (as AnimateDiff training does)."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


def build_adapter(unet, config: TrainConfig, init_path: Path | None) -> Adapter360:
    """Adapter360 sized to the UNet's down blocks; weights from the models folder's init when given.

    Every variant starts from the same init; `temporal=False` keeps all but the temporal convs.
    """
    channels = tuple(unet.config.block_out_channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        adapter = Adapter360(channels=channels, temporal=config.temporal)
    if init_path is not None:
        init = load_adapter(init_path)
        missing = sorted(set(adapter.state_dict()) - set(init.state_dict()))
        if missing or tuple(init.channels) != channels:
            raise ValueError(f"{init_path}: adapter init Adapter360(channels={list(init.channels)}) does not fit "
                             f"Adapter360(channels={list(channels)}, temporal={config.temporal}); missing {missing}")
        init_state = init.state_dict()
        adapter.load_state_dict({key: init_state[key] for key in adapter.state_dict()}, strict=True)
    return adapter


def load_captions(config: TrainConfig) -> dict[str, str] | None:
    """{clip id: caption} of the chosen caption set, or None for the index's own captions."""
    if config.captions == "dataset":
        return None
    from dvd360.data.web360 import read_captions

    path = Path(config.captions_dir) / f"{config.captions}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no captions; run the caption stage (dvc repro caption)")
    return read_captions(path)


def training_clips(config: TrainConfig):
    """The prepared index cut to the clips to train on, and the clips dropped on the way.

    A clip is dropped when the flow stage's index has no condition for it (`no_condition`) or
    the chosen caption set has no caption for it (`no_caption`, a caption failure). Dropped
    clips are printed and returned (count, total, fraction, {reason: ids}); more than
    `max_dropped_fraction` of them fails the run before any compute.
    """
    import dataclasses

    from dvd360.data.web360 import load_prepared

    index = load_prepared(config.data_dir)
    clips = index.clips
    if config.clip_ids is not None:
        known = {clip.id for clip in clips}
        unknown = sorted(set(config.clip_ids) - known)
        if unknown:
            raise KeyError(f"{config.data_dir}: no clips {unknown}")
        clips = [clip for clip in clips if clip.id in set(config.clip_ids)]
    if config.hold_out_reference:  # the set metrics' reference videos are never trained on
        from dvd360.data.reference_split import is_reference_clip

        held_out = [clip.id for clip in clips if is_reference_clip(clip.id)]
        clips = [clip for clip in clips if not is_reference_clip(clip.id)]
        print(f"[train] {len(held_out)} clips held out as the set metrics' reference split")
    total, dropped = len(clips), {}
    if config.conditions is not None:
        conditioned = apply_conditions(dataclasses.replace(index, clips=clips),
                                       json.loads(Path(config.conditions).read_text(encoding="utf-8"))).clips
        dropped["no_condition"] = sorted({c.id for c in clips} - {c.id for c in conditioned})
        clips = conditioned
    captions = load_captions(config)
    if captions is not None:
        dropped["no_caption"] = sorted(clip.id for clip in clips if clip.id not in captions)
        clips = [clip for clip in clips if clip.id in captions]
    count = sum(len(ids) for ids in dropped.values())
    for reason, ids in dropped.items():
        if ids:
            print(f"[train] {len(ids)} of {total} clips dropped ({reason}): {ids}")
    fraction = count / total if total else 1.0
    if fraction > config.max_dropped_fraction or not clips:
        raise ValueError(f"{config.data_dir}: {count} of {total} clips dropped ({fraction:.1%}) "
                         f"> max_dropped_fraction {config.max_dropped_fraction:.1%} (params.yaml train): "
                         f"{ {k: v for k, v in dropped.items() if v} }")
    return dataclasses.replace(index, clips=clips), {"count": count, "total": total, "fraction": fraction,
                                                     "by_reason": dropped}


def build_dataset(config: TrainConfig, *, height: int, width: int, frames: int, augment: bool):
    """The data layer's clip dataset over `training_clips`, with the chosen captions and the flow
    stage's conditions; returns (dataset, dropped clips)."""
    from dvd360.data.clips import Web360ClipDataset

    index, dropped = training_clips(config)
    dataset = Web360ClipDataset(index, length=frames, stride=config.stride, height=height, width=width,
                                augment=augment, captions=load_captions(config))
    return dataset, dropped


# The code that shapes the trained weights (its transitive dvd360 imports count too).
TRAINING_CODE = ("dvd360.training.trainer",)


def resume_fingerprint(config: TrainConfig, clips) -> str:
    """Content fingerprint of a training run: the weight-shaping settings, the content of the
    models (manifest, which holds every piece's sha256), the chosen captions, the condition
    index and every training clip's video and flow files, and the training code. A checkpoint
    is resumed only under the same fingerprint."""
    from dvd360.fingerprint import fingerprint

    inputs = {"models": Path(config.models_dir) / "manifest.json",
              "captions": None if config.captions == "dataset" else Path(config.captions_dir) / f"{config.captions}.csv",
              "conditions": config.conditions}
    for clip in clips:
        for kind in ("video_path", "flow_video_path", "flow_npz_path"):
            inputs[f"clip/{clip.id}/{kind}"] = getattr(clip, kind)
    return fingerprint(config.shaping_settings(), inputs, TRAINING_CODE)


def encode_text(components, captions: list[str], device) -> torch.Tensor:
    """CLIP text embeddings (B, 77, D) of the captions."""
    tokenizer = components.tokenizer
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids.to(device)
    return components.text_encoder(ids)[0]


def encode_video(vae, video: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Latents (B, 4, F, h, w) = (mean + std * eps) * scaling of frames (B, F, 3, H, W) in [-1, 1]."""
    b, f = video.shape[:2]
    frames = video.flatten(0, 1).to(vae.dtype)
    means, stds = [], []
    for chunk in frames.split(VAE_CHUNK):
        dist = vae.encode(chunk).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    latents = torch.cat(means) + torch.cat(stds) * eps.flatten(0, 1).to(frames)
    latents = latents * vae.config.scaling_factor
    return latents.unflatten(0, (b, f)).transpose(1, 2).float()


# ------------------------------------------------------------------------------ one step
def sample_draws(config: TrainConfig, samples: list[int], latent_shape: tuple[int, ...], train_steps: int):
    """Per-sample timestep, dropout flags, diffusion noise and VAE noise, from (seed, g) only."""
    t, drop_c, drop_y, noise, eps = [], [], [], [], []
    channels, frames, h, w = latent_shape
    for g in samples:
        gen = sample_generator(config.seed, g)
        t.append(int(torch.randint(0, train_steps, (1,), generator=gen)))
        drop_c.append(bool(torch.rand((), generator=gen) < config.condition_dropout))
        drop_y.append(bool(torch.rand((), generator=gen) < config.text_dropout))
        noise.append(torch.randn(latent_shape, generator=gen))
        eps.append(torch.randn((frames, channels, h, w), generator=gen))
    return torch.tensor(t), drop_c, drop_y, torch.stack(noise), torch.stack(eps)


def training_loss(batch: dict, components, adapter, injection: FeatureInjection, config: TrainConfig,
                  accelerator) -> torch.Tensor:
    """The loss of one batch (see the module docstring)."""
    device = accelerator.device
    video, condition = batch["video"].to(device), batch["condition"].to(device)
    b, f, _, height, width = video.shape
    latent_channels = components.vae.config.latent_channels
    t, drop_c, drop_y, noise, eps = sample_draws(
        config, batch["sample"], (latent_channels, f, height // 8, width // 8),
        components.scheduler.config.num_train_timesteps)
    t, noise = t.to(device), noise.to(device)
    keep = torch.tensor([0.0 if d else 1.0 for d in drop_c], device=device).view(b, 1, 1, 1, 1)
    captions = ["" if d else caption for d, caption in zip(drop_y, batch["caption"])]
    with torch.no_grad():
        latents = encode_video(components.vae, video, eps.to(device))
        text = encode_text(components, captions, device).repeat_interleave(f, dim=0)
        noisy = components.scheduler.add_noise(latents, noise, t)
    with accelerator.autocast():
        injection.set_features(adapter(condition * keep))
        pred = components.unet(noisy.to(text.dtype), t, encoder_hidden_states=text).sample
        injection.set_features(None)
    return diffusion_loss(pred, noise, latitude_aware=config.latitude_loss)


# ------------------------------------------------------------------------------ reporting
def write_loss_table(path: Path, losses: list[tuple[int, float]]) -> None:
    """`step<TAB>loss` rows (the DVC plot of this variant), atomically."""
    write_text(path, "step\tloss\n" + "".join(f"{step}\t{loss:.6g}\n" for step, loss in losses))


# ----------------------------------------------------------------------------------- train
# validate(components, adapter, condition (F, 3, H, W) in [-1, 1], mp4 path) -> the written path
Validate = Callable[[object, Adapter360, torch.Tensor, Path], Path]


def train(config: TrainConfig, *, accelerator=None, on_log: Callable[[int, dict], None] | None = None,
          on_artifact: Callable[[Path], None] | None = None, validate: Validate | None = None) -> TrainResult:
    """Train (or resume) one variant; the main process writes the adapter, record and loss table.

    Every `validation_every` steps the main process calls `validate` on the first validation clip's
    condition (config.validation's size); `validation_every > 0` needs it.
    """
    from dvd360.models.materialize import load_components

    if config.validation_every and validate is None:
        raise ValueError(f"validation_every={config.validation_every} needs a validate callback "
                         "(dvd360.sampling.validation.validation_video); 0 writes no validation videos")
    started = time.perf_counter()
    accelerator = accelerator or make_accelerator(config)
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    components = load_components(config.models_dir, device=accelerator.device, dtype=weight_dtype(accelerator))
    if config.gradient_checkpointing:
        components.unet.enable_gradient_checkpointing()
    data, dropped = build_dataset(config, height=config.height, width=config.width, frames=config.frames,
                                  augment=config.augment)
    dataset = SeededSamples(data, config.seed)
    adapter = build_adapter(components.unet, config, components.adapter_init_path).to(accelerator.device)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=config.lr, betas=config.betas,
                                  weight_decay=config.weight_decay)
    fingerprint = resume_fingerprint(config, data.clips)
    checkpoint_dir = Path(config.checkpoint_dir)
    resume = ckpt.latest(checkpoint_dir, fingerprint)
    if main:
        stale = ckpt.set_aside_stale(checkpoint_dir, fingerprint)
        if stale:
            print(f"[train] {len(stale)} checkpoint(s) written from other inputs, settings or code: "
                  f"moved to {stale[0].parent}")
    accelerator.wait_for_everyone()
    start, losses = 0, []
    if resume is not None:
        ckpt.restore(resume, adapter, optimizer, rank)
        start, losses = resume.step, [tuple(pair) for pair in resume.state["losses"]]
        if (resume.state["world"], resume.state["batch_size"]) != (world, config.batch_size):
            print(f"[train] resuming {resume.path} written with world={resume.state['world']}, "
                  f"batch={resume.state['batch_size']}: the sample order changes from here")
        if main:
            print(f"[train] resuming from {resume.path} (step {start})")
    adapter, optimizer = accelerator.prepare(adapter, optimizer)
    adapter.train()
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=StepBatches(len(dataset), config.seed, start, config.steps, config.batch_size,
                                           rank, world, config.overfit_batches),
        collate_fn=collate, num_workers=config.num_workers)
    validation_data = None
    if main and config.validation_every:
        v = config.validation
        validation_data, _ = build_dataset(config, height=v.height, width=v.width, frames=v.frames,
                                           augment=False)
    validation_dir = checkpoint_dir / "validation"
    window: list[float] = []
    step = start
    with FeatureInjection(components.unet) as injection:
        progress = tqdm(loader, desc=f"train {config.variant}", initial=start, total=config.steps, disable=not main)
        for batch in progress:
            loss = training_loss(batch, components, adapter, injection, config, accelerator)
            accelerator.backward(loss)
            grad_norm = accelerator.clip_grad_norm_(adapter.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window.append(float(accelerator.reduce(loss.detach(), reduction="mean")))
            if step % config.log_every == 0 or step == config.steps:
                mean = sum(window) / len(window)
                losses.append((step, mean))
                window = []
                progress.set_postfix(loss=f"{mean:.4f}")
                if main and on_log is not None:
                    on_log(step, {"train_loss": mean, "grad_norm": float(grad_norm)})
                if main and config.report_dir:
                    write_loss_table(Path(config.report_dir) / "loss.tsv", losses)
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                save_checkpoint(accelerator, adapter, optimizer, config, step, losses, fingerprint)
            if main and validation_data is not None and step % config.validation_every == 0:
                injection.set_features(None)
                path = validate(components, accelerator.unwrap_model(adapter), validation_data[0]["condition"],
                                validation_dir / f"step-{step:08d}.mp4")
                if on_artifact is not None:
                    on_artifact(path)
            accelerator.wait_for_everyone()
    result = TrainResult(step=step, losses=losses, resumed_from=resume.step if resume else None,
                         seconds=time.perf_counter() - started, dropped=dropped)
    if main:
        result.adapter_path = write_outputs(accelerator.unwrap_model(adapter), config, result, world,
                                            validation_dir, fingerprint)
    accelerator.wait_for_everyone()
    return result


def save_checkpoint(accelerator, adapter, optimizer, config: TrainConfig, step: int,
                    losses: list[tuple[int, float]], fingerprint: str) -> None:
    """All processes: main writes weights/optimiser/state, each its RNG states; then main publishes."""
    folder = Path(config.checkpoint_dir)
    if accelerator.is_main_process:
        ckpt.write_main(folder, step, accelerator.unwrap_model(adapter), optimizer,
                        {"fingerprint": fingerprint, "world": accelerator.num_processes,
                         "batch_size": config.batch_size, "losses": losses, "config": config.to_dict()})
    accelerator.wait_for_everyone()
    ckpt.write_rng(folder, step, accelerator.process_index)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ckpt.publish(folder, step, config.keep_checkpoints)


# What a training run measured rather than what it made: in training.run.json (`write_record`).
MEASURED = ("resumed_from", "seconds_this_run", "git_commit")


def write_outputs(adapter: Adapter360, config: TrainConfig, result: TrainResult, world: int,
                  validation_dir: Path, fingerprint: str) -> Path:
    """`{out_dir}/adapter.safetensors` (+ .json config), `training.json` (+ .run.json), validation videos, loss.tsv."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if validation_dir.is_dir():
        shutil.copytree(validation_dir, out / "validation", dirs_exist_ok=True)
    if config.report_dir:
        write_loss_table(Path(config.report_dir) / "loss.tsv", result.losses)
    write_record(out / "training.json", {
        "variant": config.variant, "config": config.to_dict(), "fingerprint": fingerprint,
        "seed": config.seed, "steps": result.step, "resumed_from": result.resumed_from,
        "dropped_clips": result.dropped,
        "world_size": world, "effective_batch": world * config.batch_size,
        "final_loss": result.losses[-1][1] if result.losses else None,
        "seconds_this_run": round(result.seconds, 2), "device": device_name(),
        "git_commit": git_commit(), "versions": versions()}, MEASURED)
    return save_adapter(adapter, out / "adapter.safetensors")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the 360-Adapter from a TrainConfig JSON file.")
    parser.add_argument("config", type=Path, help="JSON object of TrainConfig fields")
    args = parser.parse_args(argv)
    train(TrainConfig.model_validate_json(args.config.read_text(encoding="utf-8")))


if __name__ == "__main__":
    main()
