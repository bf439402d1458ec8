"""DVC stage `compare`: the comparison table (means, 95% CIs, paired deltas vs the reference) and
one plot per metric, from the score stage's `data/scores/{method}.json`, with the published figures
of `eval/published.yaml` beside them, into `reports/compare/`;
the ablations (paper Fig. 8) against the same reference into `reports/compare/ablations/`; and
the results page `reports/index.html` (both tables, charts, training loss curves from
`reports/train/`, every video of `data/generations/` in a 360 viewer, MLflow run ids)."""

from __future__ import annotations

from pathlib import Path

from dvd360.compare import render
from dvd360.config import load_params, stage_params
from dvd360.params_schema import validated_stage_params
from dvd360.report.page import write_report
from dvd360.report.results import CompareSettings, compare_sections
from dvd360.report.runs import run_link, score_runs
from dvd360.stage_process import begin_stage
from dvd360.tracking import log_artifact, stage_run


def main() -> None:
    begin_stage()
    all_params = load_params()
    profile, settings = all_params["profile"], validated_stage_params("compare", all_params, CompareSettings)
    score_params = stage_params("score", all_params)  # the bootstrap of the per-method summaries
    bootstrap = {"seed": score_params["seed"], "n_resamples": score_params["bootstrap_resamples"]}
    with stage_run("compare", profile=profile, params=settings.model_dump()) as run:
        sections, written = compare_sections(settings.scores, settings.methods, settings.reference, settings.ablations,
                                             settings.out_dir, published=settings.published, **bootstrap)
        for path in written:
            log_artifact(path, Path("compare", path.parent.relative_to(settings.out_dir)).as_posix())
        page = write_report(settings.report, sections, scores_dir=settings.scores, generations_dir=settings.generations,
                            train_dir=settings.train_reports,
                            runs=[run_link("compare stage (this page)", run.info)] + score_runs(settings.scores),
                            profile=profile, max_sets=settings.gallery_max_sets)
        log_artifact(page)
    print(render(sections[0].comparison, "table"), end="")
    print(f"results page: {page} ({page.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
