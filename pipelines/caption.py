"""DVC stage `caption`: 360 Text Fusion and direct ERP captions of every prepared clip.

Writes `data/captions/fused.csv` and `data/captions/erp.csv` (WEB360 format `videoid,name`)
and `data/captions/report.json` (per clip: the four view captions, both captions; failures;
captioner, fuser, versions; how many clips this run resumed: `report.run.json`). Progress is
kept in `data/checkpoints/caption/progress.jsonl`, so an interrupted run resumes. The fuser is a
chat endpoint when DVD360_LLM_URL and DVD360_LLM_MODEL are set (DVD360_LLM_API_KEY optional), the
deterministic template otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dvd360.captioning import caption_clips, caption_settings, make_fuser, write_caption_csvs
from dvd360.captioning.settings import CaptionSettings, make_captioner
from dvd360.config import load_params
from dvd360.data.web360 import load_prepared
from dvd360.params_schema import validated_stage_params
from dvd360.provenance import RUN_SUFFIX, versions, write_record
from dvd360.stage_process import begin_stage
from dvd360.tracking import log_artifact, log_metrics, stage_run


def main() -> int:
    begin_stage()
    params = load_params()
    settings = validated_stage_params("caption", params, CaptionSettings)
    paths = params["paths"]
    out, progress = Path(paths["captions"]), Path(paths["checkpoints"]) / "caption" / "progress.jsonl"
    index = load_prepared(paths["web360"])
    captioner = make_captioner(settings, index.root)
    fuser_name, fuse = make_fuser()
    identity = caption_settings(captioner, fuser_name, settings.view_size)
    inputs = {"scene_metadata": index.root / "metadata.json"} if settings.captioner == "landmarks" else {}
    with stage_run("caption", profile=params["profile"], params={**settings.model_dump(), "fuser": fuser_name}):
        result = caption_clips(index.clips, captioner, fuse, progress, identity, view_size=settings.view_size,
                               inputs=inputs)
        if not result.records:  # raised inside the run: it ends FAILED
            raise SystemExit(f"caption: every clip failed: {result.failures}")
        csvs = write_caption_csvs(result.records, out)
        report = write_record(out / "report.json", {
            **identity, "clips": len(result.records), "resumed": result.resumed,
            "failures": result.failures, "records": result.records, "versions": versions()}, ("resumed",))
        log_metrics({"clips_captioned": len(result.records), "clips_failed": len(result.failures),
                     "clips_resumed": result.resumed})
        for path in (*csvs.values(), report, report.with_suffix(RUN_SUFFIX)):
            log_artifact(path, "captions")
    for failure in result.failures:
        print(f"caption: clip {failure['videoid']} failed ({failure['video']}): {failure['error']}", file=sys.stderr)
    print(f"caption: {len(result.records)} clips ({result.resumed} resumed), {len(result.failures)} failed "
          f"-> {out}/fused.csv, {out}/erp.csv (fuser: {fuser_name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
