"""The start of a stage's process: what every `pipelines/*.py` main calls first.

A tiny `dvc repro` is mostly process start-up (18 processes on 2 cores), so each stage process
(1) starts MLflow's own process at once (`dvd360.tracking.start_tracking`), to load beside the
stage, and (2) keeps diffusers from importing bitsandbytes: pyiqa installs it, diffusers imports
it at start-up whenever it is installed (1.6 s of every process that loads a diffusers model),
and nothing in dvd360 quantises.
"""

from __future__ import annotations

import sys

from dvd360.tracking import start_tracking

UNUSED_IMPORTS = ("bitsandbytes",)


def begin_stage(*, tracks: bool = True) -> None:
    """Prepare this stage process; `tracks`: it logs the stage to MLflow (under torchrun: rank 0).

    A None entry in sys.modules is Python's way to make a module unimportable
    (`importlib.util.find_spec` returns None for it), which diffusers reads as "not installed".
    A module already imported is left alone.
    """
    for name in UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)
    if tracks:
        start_tracking()
