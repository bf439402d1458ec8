"""Data-parallel scoring: `dvd360-eval score` under torchrun, and under `accelerate launch
--multi_gpu` (which starts torchrun's launcher; on a CPU-only machine the processes join over gloo),
with 2 processes on the CPU writes exactly the bytes of a single-process run (which here also puts decoding and flow on 2 worker
processes: neither the world size nor the workers change a byte)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dvd360.data.video import write_video
from dvd360.models.clip_model import build_tiny_clip
from dvd360.metrics.flow_agreement import rigid_rotation_clip
from test_training_ddp import _free_port


def _launcher(name: str) -> list[str]:
    port = str(_free_port())
    if name == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", port]
    # accelerate's CPU launch (--cpu) needs MPI for several processes; --multi_gpu is its torchrun path
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", port]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_gloo_processes_write_the_single_process_bytes(tmp_path, launcher):
    clip = build_tiny_clip(tmp_path / "clip", seed=0)
    videos, flows = tmp_path / "videos", tmp_path / "flows"
    videos.mkdir(), flows.mkdir()
    prompts = {}
    for k in range(5):  # odd: the ranks get 3 and 2 videos
        frames, flow = rigid_rotation_clip(32, 64, 3 + k % 2, yaw_deg=2.0 + k, seed=k)
        write_video(videos / f"v{k}.mp4", frames)
        if k % 2 == 0:
            np.savez(flows / f"v{k}.npz", flow=flow)
        prompts[f"v{k}"] = f"a textured sphere number {k}"
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    args = ["score", str(videos), "--prompts", str(tmp_path / "prompts.json"), "--flows", str(flows),
            "--model", str(clip), "--no-quality", "--device", "cpu", "--batch-size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "dvd360.cli", *args, "--workers", "2",
                             "--out", str(tmp_path / "one.json")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    double = subprocess.run([*_launcher(launcher), "-m", "dvd360.cli", *args, "--out", str(tmp_path / "two.json")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    assert "scored on 2 processes" in double.stderr
    one, two = (tmp_path / "one.json").read_bytes(), (tmp_path / "two.json").read_bytes()
    assert one == two
    data = json.loads(one)
    assert [r["path"].rsplit("/", 1)[-1] for r in data["videos"]] == [f"v{k}.mp4" for k in range(5)]
    assert all(("flow_epe_deg" in r["metrics"]) == (k % 2 == 0) for k, r in enumerate(data["videos"]))
    assert data["metrics_info"]["clip_similarity_erp"]["device"] == "cpu"
