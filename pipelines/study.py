"""DVC stage `study`: blinded user-study packets from the generations, into `reports/study/`.

One static HTML packet per rater (`packets/rater-NN/`, open `index.html`), the label key
`key.json` beside them (never for raters) and a README for the organiser. Raters' exported
answer files are turned into Table 1 by `dvd360-eval study aggregate ... --key reports/study/key.json`.
The study secret is random, made on the first run and reused from `key.json` afterwards (the
output persists, so a re-run gives the same packets); a key this stage did not write (a study
built by hand with `dvd360-eval study build`, whose default folder is studies/) is never replaced.
"""

from __future__ import annotations

import sys

from dvd360.config import load_params, repo_root
from dvd360.params_schema import validated_stage_params
from dvd360.stage_process import begin_stage
from dvd360.study.render import StudySettings, build_study
from dvd360.tracking import log_artifact, log_metrics, stage_run


def main() -> int:
    begin_stage()
    all_params = load_params()
    profile, settings = all_params["profile"], validated_stage_params("study", all_params, StudySettings)
    root = repo_root()
    with stage_run("study", profile=profile, params=settings.model_dump()):
        try:
            built = build_study(root / settings.generations, root / settings.out_dir, methods=settings.methods,
                                raters=settings.raters, sets_per_packet=settings.sets_per_packet, seed=settings.seed,
                                attention_check=settings.attention_check,
                                attention_min_agree=settings.attention_min_agree, profile=profile,
                                built_by="pipeline")
        except ValueError as error:  # StudyInputError and definition errors name the file
            raise SystemExit(f"study: {error}") from error
        log_metrics({"packets": len(built.packets), "sets_per_packet": len(built.packets[0].sets),
                     "prompt_sets_skipped": len(built.skipped)})
        log_artifact(built.out_dir / "README.md", "study")
    for reason in built.skipped:
        print(f"study: skipped {reason}", file=sys.stderr)
    print(f"study: {len(built.packets)} packets of {len(built.packets[0].sets)} sets -> "
          f"{settings.out_dir}/packets/ (key: {settings.out_dir}/key.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
