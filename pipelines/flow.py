"""DVC stage `flow`: the motion condition of every prepared clip (see dvd360.training.conditions).

Synthetic clips keep their exact flows (nothing estimated; the index says so); real clips use
the dataset's released flow videos (`source: released`) or a wrap-aware estimate written to
`data/flows/{method}/{id}.mp4|npz` (`source: estimate`). Writes `data/flows/index.json`.
"""

from __future__ import annotations

import sys

from dvd360.config import load_params
from dvd360.data.web360 import load_prepared
from dvd360.params_schema import validated_stage_params
from dvd360.stage_process import begin_stage
from dvd360.tracking import log_metrics, stage_run
from dvd360.training.conditions import FlowSettings, prepare_conditions


def main() -> int:
    begin_stage()
    params = load_params()
    settings = validated_stage_params("flow", params, FlowSettings)
    paths = params["paths"]
    index = load_prepared(paths["web360"])
    with stage_run("flow", profile=params["profile"], params=settings.model_dump()):
        result = prepare_conditions(index.clips, paths["flows"], settings)
        log_metrics({**result["counts"], "failed": len(result["failures"])})
        if not result["clips"]:  # raised inside the run: it ends FAILED
            raise SystemExit(f"flow: no clip has a condition; failures: {result['failures']}")
    for failure in result["failures"]:
        print(f"flow: clip {failure['videoid']} failed ({failure['video']}): {failure['error']}", file=sys.stderr)
    print(f"flow: {result['counts']} ({len(result['failures'])} failed) -> {paths['flows']}/index.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
