"""Data-parallel training: 2 CPU processes (gloo, through accelerate) against one process with
the same total batch. Each process draws its own samples, gradients are averaged, so after
the same number of steps the adapters agree up to float rounding."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from test_training import one_thread, prepared, tiny_config  # noqa: F401 (fixtures)

# Measured: max |2-process - 1-process| = 1e-9..1e-8 after 3 steps (weights change by ~3e-3).
TOLERANCE = 1e-6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, config) -> None:
    """One data-parallel process: torchrun's environment, then the ordinary training entry point."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # forked from a single-process parent
    from dvd360.training.trainer import train

    train(config)


def test_two_process_gloo_run_matches_one_process(tiny_models, prepared, tmp_path):  # noqa: F811
    from safetensors.torch import load_file

    from dvd360.training.trainer import train

    common = dict(steps=3, lr=1e-3, checkpoint_every=3)
    single = tiny_config(tmp_path / "single", tiny_models, prepared, batch_size=2, **common)
    train(single)
    double = tiny_config(tmp_path / "double", tiny_models, prepared, batch_size=1, **common)
    # fork: the children reuse the parent's imports (spawn would import torch/diffusers twice more)
    mp.start_processes(_worker, args=(2, _free_port(), double), nprocs=2, join=True, start_method="fork")

    a = load_file(tmp_path / "single" / "out" / "adapter.safetensors")
    b = load_file(tmp_path / "double" / "out" / "adapter.safetensors")
    init = load_file(tiny_models / "adapter_init" / "adapter.safetensors")
    change = max(float((a[k] - init[k]).abs().max()) for k in a)
    gap = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"largest weight change {change:.3g}, largest 1-vs-2-process gap {gap:.3g}")
    assert change > 1e-4  # it trained
    assert gap < TOLERANCE
    import json

    record = json.loads((tmp_path / "double" / "out" / "training.json").read_text())
    assert record["world_size"] == 2 and record["effective_batch"] == 2
    checkpoint = tmp_path / "double" / "ckpt" / "checkpoint-00000003"
    assert (checkpoint / "rng-0.pt").is_file() and (checkpoint / "rng-1.pt").is_file()
