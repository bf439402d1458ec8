"""DVC stage `models`: materialise every model of the active profile into `data/models`.

tiny:  random-weight SD-1.5-shaped models from dvd360/models/configs/tiny (seeded), the tiny
       panorama LoRA, the 360-Adapter initialisation and the tiny CLIP scorer.
paper: SD 1.5, motion module v1.4, LatentLabs360, personalised checkpoints, CLIP ViT-L/14
       (and optionally the released 360-Adapter) from the paths/hub ids of params.yaml
       `models.paper`; anything missing stops the stage with one message listing it all.
The folder is written atomically (a failed run leaves the previous one in place).
"""

from __future__ import annotations

import time

from dvd360.atomic import atomic_dir
from dvd360.config import load_params, repo_root
from dvd360.models.materialize import (MissingPiecesError, ModelsSettings, build_tiny, check_paper_sources,
                                       materialize_paper)
from dvd360.params_schema import validated_stage_params
from dvd360.stage_process import begin_stage
from dvd360.tracking import log_artifact, log_metrics, stage_run


def main() -> int:
    begin_stage()
    params = load_params()
    profile = params["profile"]
    settings = validated_stage_params("models", params, ModelsSettings)
    out = repo_root() / params["paths"]["models"]
    if profile == "paper":
        try:
            check_paper_sources(settings)  # before any MLflow run or copying
        except MissingPiecesError as error:
            raise SystemExit(str(error)) from error
    with stage_run("models", profile=profile, params=settings.model_dump()):
        start = time.perf_counter()
        with atomic_dir(out) as tmp:
            if profile == "paper":
                manifest = materialize_paper(tmp, settings)
            else:
                manifest = build_tiny(tmp, seed=settings.seed)
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        log_metrics({"build_seconds": time.perf_counter() - start, "size_mb": size / 1e6,
                     "pieces": len(manifest["pieces"])})
        log_artifact(out / "manifest.json")
    print(f"models ({profile}): {len(manifest['pieces'])} pieces, {size / 1e6:.1f} MB in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
