"""Sharded generation: `torchrun --nproc_per_node 2 pipelines/generate.py C` (2 CPU processes,
gloo) makes the same videos and records, byte for byte, as one process (what each run measured is
in the `.run.json` beside them); a single-process re-run keeps every video the two processes made
(resume per video)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from dvd360.config import repo_root
from dvd360.generate import MEASURED, video_paths
from test_generate import prepared  # noqa: F401 (fixture)
from test_training_ddp import _free_port

SEEDS = [0, 1]
PROMPTS = ("mountain_lake", "sea", "desert")


def _stage_root(folder, models, prepared_dir):  # noqa: F811
    """A repository root for the stage script: params.yaml (tiny generate settings) and eval/."""
    folder.mkdir()
    shutil.copytree(repo_root() / "eval", folder / "eval")
    generate = {"common": {"models_dir": str(models), "adapters_dir": str(folder / "adapters"),
                           "prepared_dir": str(prepared_dir), "out_dir": "generations", "guidance": 7.5,
                           "negative_prompt": "", "personalised": None},
                "tiny": {"suite": "tiny", "seeds": SEEDS, "steps": 2, "height": 64, "width": 128, "frames": 2,
                         "fps": 8, "condition_stride": 3, "decode_chunk_size": 2, "device": "cpu",
                         "dtype": "float32"}}
    (folder / "params.yaml").write_text(yaml.safe_dump({"profile": "tiny", "generate": generate}))
    return folder


def _stage(root, *launcher):
    script = repo_root() / "pipelines" / "generate.py"
    run = subprocess.run([sys.executable, *launcher, str(script), "C"], cwd=root, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


@pytest.mark.slow
def test_two_processes_make_the_single_process_videos(tiny_models, prepared, tmp_path):  # noqa: F811
    single = _stage_root(tmp_path / "single", tiny_models, prepared)
    sharded = _stage_root(tmp_path / "sharded", tiny_models, prepared)
    assert "6 generated, 0 kept" in _stage(single)
    torchrun = ("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port()))
    assert "6 generated, 0 kept by 2 processes" in _stage(sharded, *torchrun)

    for prompt in PROMPTS:
        for seed in SEEDS:
            one, two = (video_paths(root / "generations", "C", prompt, seed) for root in (single, sharded))
            assert one.mp4.read_bytes() == two.mp4.read_bytes()
            assert one.npz.read_bytes() == two.npz.read_bytes()
            assert one.json.read_bytes() == two.json.read_bytes()
            assert all(set(json.loads(p.run.read_text())) == set(MEASURED) for p in (one, two))
    assert "0 generated, 6 kept" in _stage(sharded)  # one process resumes what two made
