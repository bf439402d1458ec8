"""LoRA files in the Kohya/A1111 layout (the format of LatentLabs360 on CivitAI).

Keys: `lora_unet_<module path with '.' -> '_'>.lora_down.weight` (rank, in),
`.lora_up.weight` (out, rank) and `.alpha` (scalar); text-encoder modules use `lora_te_`.
The weight update of a Linear is W' = W + scale * (alpha / rank) * up @ down. diffusers'
`load_lora_weights` converts this layout itself; this module only writes the tiny stand-in and
checks a given file before any compute is spent on it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

PREFIXES = {"unet": "lora_unet_", "text_encoder": "lora_te_"}
SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")


class KohyaLoraError(ValueError):
    """A LoRA file that is not in the Kohya layout; the message names the file and the problem."""


def kohya_key(prefix: str, module_name: str) -> str:
    """`lora_unet_` + `down_blocks.0.attentions.0...to_q` -> `lora_unet_down_blocks_0_..._to_q`."""
    return prefix + module_name.replace(".", "_")


def target_linears(model: torch.nn.Module, targets: list[str]) -> list[tuple[str, torch.nn.Linear]]:
    """The Linear modules of `model` whose qualified name ends with one of `targets`, in order."""
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and any(name.endswith(t) for t in targets)]


def random_kohya_lora(models: dict[str, torch.nn.Module], targets: dict[str, list[str]], *,
                      rank: int, alpha: float, up_std: float, seed: int) -> dict[str, torch.Tensor]:
    """A seeded random LoRA in the Kohya layout for `models` ({"unet": ..., "text_encoder": ...}).

    down ~ N(0, 1/in_features), up ~ N(0, up_std^2) (non-zero, so the LoRA changes the model).
    """
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for part, model in models.items():
        found = target_linears(model, targets[part])
        if not found:
            raise ValueError(f"no Linear module of the {part} matches {targets[part]}")
        for name, linear in found:
            if part == "text_encoder" and not name.startswith("text_model."):
                # transformers 5 flattened CLIPTextModel; Kohya files name SD's `text_model.` path
                name = f"text_model.{name}"
            key = kohya_key(PREFIXES[part], name)
            down = torch.randn(rank, linear.in_features, generator=generator) / linear.in_features ** 0.5
            tensors[f"{key}.lora_down.weight"] = down
            tensors[f"{key}.lora_up.weight"] = torch.randn(linear.out_features, rank, generator=generator) * up_std
            tensors[f"{key}.alpha"] = torch.tensor(float(alpha))
    return tensors


def save_kohya_lora(path: str | Path, tensors: dict[str, torch.Tensor]) -> Path:
    """Write the tensors as safetensors. No `ss_*` metadata: safetensors writes metadata in hash
    order, which would make the bytes (and the manifest's sha256) differ between runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sorted(tensors.items())}, str(path))
    return path


def check_kohya_lora(path: str | Path) -> dict[str, int]:
    """Check a LoRA file's layout; return {"unet_modules", "text_encoder_modules", "rank"}.

    Every module needs a `lora_down.weight` and a `lora_up.weight` of matching rank (`.alpha` is
    optional: without it alpha = rank), and at least one module must target the UNet.
    """
    path = Path(path)
    if not path.is_file():
        raise KohyaLoraError(f"{path}: no such LoRA file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as error:  # safetensors raises its own error types for damaged headers
        raise KohyaLoraError(f"{path}: not a readable safetensors file ({error})") from error
    modules: dict[str, dict[str, tuple]] = {}
    for key, shape in shapes.items():
        suffix = next((s for s in SUFFIXES if key.endswith(s)), None)
        if suffix is None or not key.startswith(tuple(PREFIXES.values())):
            raise KohyaLoraError(f"{path}: key {key!r} is not in the Kohya layout "
                                 f"({'/'.join(PREFIXES.values())}<module>{{{','.join(SUFFIXES)}}})")
        modules.setdefault(key[: -len(suffix)], {})[suffix] = shape
    pairs = {name: parts for name, parts in modules.items() if set(SUFFIXES[:2]) <= set(parts)}
    problems = [f"{name}: has only {sorted(parts)}" for name, parts in modules.items() if name not in pairs]
    problems += [f"{name}: up {parts['.lora_up.weight']} does not match down {parts['.lora_down.weight']}"
                 for name, parts in pairs.items() if parts[".lora_up.weight"][1] != parts[".lora_down.weight"][0]]
    unet = sum(name.startswith(PREFIXES["unet"]) for name in modules)
    if not unet:
        problems.append("no lora_unet_ module")
    if problems:
        raise KohyaLoraError(f"{path}: not a complete Kohya LoRA:\n  " + "\n  ".join(problems[:20]))
    return {"unet_modules": unet, "text_encoder_modules": len(modules) - unet,
            "rank": max(parts[".lora_down.weight"][0] for parts in pairs.values())}
