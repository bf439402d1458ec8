"""The start of a stage's process: what every `pipelines/*.py` main calls first.

A tiny `dvc repro` is mostly process start-up (18 processes on 2 cores), so each stage process
(1) starts MLflow's own process at once (`dvd360.tracking.start_tracking`), to load beside the
stage, and (2) keeps diffusers from importing bitsandbytes: pyiqa installs it, diffusers imports
it at start-up whenever it is installed (a measurable part of every process that loads a
diffusers model; docs/performance.md), and nothing in dvd360 quantises. It also tells
`dvd360.tracking` when the process began, the start of the stage's MLflow run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from dvd360.tracking import mark_stage_start, start_tracking

UNUSED_IMPORTS = ("bitsandbytes",)


def process_start_time() -> float:
    """When this process began, in seconds since the epoch (Linux's /proc; elsewhere: now)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return time.time()
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


def begin_stage(*, tracks: bool = True) -> None:
    """Prepare this stage process; `tracks`: it logs the stage to MLflow (under torchrun: rank 0).

    A None entry in sys.modules is Python's way to make a module unimportable
    (`importlib.util.find_spec` returns None for it), which diffusers reads as "not installed".
    A module already imported is left alone.
    """
    mark_stage_start(process_start_time())
    for name in UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)
    if tracks:
        start_tracking()
