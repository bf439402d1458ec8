"""Data-parallel training: 2 CPU processes (gloo, through accelerate) against one process with
the same total batch. Each process draws its own samples, gradients are averaged, so after
the same number of steps the adapters agree up to float rounding."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from test_training import one_thread, prepared, tiny_config  # noqa: F401 (fixtures)

# Measured after 3 steps (lr 1e-3): per-step losses equal to 6 digits; weight gap relative to the
# weight change (L2 over all tensors) 2.4e-4; largest single-weight gap 1.3e-4 against a largest
# change of 3e-3 (Adam's first steps move weights with near-zero gradients by about +-lr whatever
# their rounding, so the elementwise bound is loose by nature).
LOSS_RTOL = 1e-5
RELATIVE_L2 = 1e-3
ELEMENTWISE = 0.1  # times the largest weight change


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_gloo_run_matches_one_process(tiny_models, prepared, tmp_path):  # noqa: F811
    from safetensors.torch import load_file

    from dvd360.training.trainer import train

    common = dict(steps=3, lr=1e-3, checkpoint_every=3)
    single = tiny_config(tmp_path / "single", tiny_models, prepared, batch_size=2, **common)
    train(single)
    double = tiny_config(tmp_path / "double", tiny_models, prepared, batch_size=1, **common)
    config_file = tmp_path / "double.json"
    config_file.write_text(double.model_dump_json())
    # As a user runs it: torchrun starts 2 fresh processes (gloo on CPU) on the training entry point.
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               "-m", "dvd360.training.trainer", str(config_file)]
    run = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]

    a = load_file(tmp_path / "single" / "out" / "adapter.safetensors")
    b = load_file(tmp_path / "double" / "out" / "adapter.safetensors")
    init = load_file(tiny_models / "adapter_init" / "adapter.safetensors")
    change = max(float((a[k] - init[k]).abs().max()) for k in a)
    gap = max(float((a[k] - b[k]).abs().max()) for k in a)
    relative = (sum(float((a[k] - b[k]).pow(2).sum()) for k in a)
                / sum(float((a[k] - init[k]).pow(2).sum()) for k in a)) ** 0.5
    print(f"largest weight change {change:.3g}, largest 1-vs-2-process gap {gap:.3g}, relative L2 {relative:.3g}")
    assert change > 1e-4  # it trained
    assert relative < RELATIVE_L2 and gap < ELEMENTWISE * change
    losses = [(tmp_path / run / "report" / "loss.tsv").read_text().split()[2:] for run in ("single", "double")]
    assert len(losses[0]) == 6
    for x, y in zip(losses[0][1::2], losses[1][1::2]):  # the mean loss over both processes, per step
        assert abs(float(x) - float(y)) <= LOSS_RTOL * abs(float(x))
    record = json.loads((tmp_path / "double" / "out" / "training.json").read_text())
    assert record["world_size"] == 2 and record["effective_batch"] == 2 and record["steps"] == 3
    checkpoint = tmp_path / "double" / "ckpt" / "checkpoint-00000003"
    assert (checkpoint / "rng-0.pt").is_file() and (checkpoint / "rng-1.pt").is_file()
