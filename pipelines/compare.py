"""DVC stage `compare`: the comparison table (means, 95% CIs, paired deltas vs the reference) and
one plot per metric, from the score stage's `data/scores/{method}.json`, into `reports/compare/`;
the ablations (paper Fig. 8) against the same reference into `reports/compare/ablations/`; and
the results page `reports/index.html` (both tables, charts, training loss curves from
`reports/train/`, every video of `data/generations/` in a 360 viewer, MLflow run ids)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from dvd360.compare import build_comparison, load_scores, render, write_reports
from dvd360.config import load_params, stage_params
from dvd360.methods import load_methods
from dvd360.params_schema import StageSettings, validated_stage_params
from dvd360.report.page import Section, write_report
from dvd360.report.runs import run_link, score_runs
from dvd360.stage_process import begin_stage
from dvd360.tracking import log_artifact, stage_run


class CompareSettings(StageSettings):
    model_config = ConfigDict(extra="forbid")
    methods: list[str] = Field(min_length=1)
    ablations: list[str] = []
    reference: str | None = None      # paired deltas against this method (one of `methods`)
    scores: str
    out_dir: str
    report: str
    generations: str
    train_reports: str | None = None
    gallery_max_sets: int | None = Field(default=None, gt=0)

    @field_validator("methods", "ablations")
    @classmethod
    def _known(cls, ids: list[str]) -> list[str]:
        known = list(load_methods())
        if not set(ids) <= set(known):
            raise PydanticCustomError("method", "Input should list method ids of eval/methods.yaml: {known}",
                                      {"known": ", ".join(known)})
        return ids

    @field_validator("reference")
    @classmethod
    def _compared(cls, reference: str | None, info: ValidationInfo) -> str | None:
        methods = info.data.get("methods")
        if reference is not None and methods is not None and reference not in methods:
            raise PydanticCustomError("reference", "Input should be one of the compared methods: {methods}",
                                      {"methods": ", ".join(methods)})
        return reference


def main() -> None:
    begin_stage()
    all_params = load_params()
    profile, params = all_params["profile"], validated_stage_params("compare", all_params, CompareSettings)
    score_params = stage_params("score", all_params)
    methods = list(params["methods"])
    reference = params.get("reference")
    settings = {"seed": int(score_params["seed"]), "n_resamples": int(score_params["bootstrap_resamples"])}
    with stage_run("compare", profile=profile, params=params) as run:
        scores = load_scores(params["scores"], methods)
        comparison = build_comparison(scores, reference, **settings)
        sections = [Section("Methods", "methods", comparison, scores)]
        for path in write_reports(comparison, params["out_dir"]):
            log_artifact(path, "compare")
        if params.get("ablations"):
            ablation_scores = load_scores(params["scores"], list(params["ablations"]))
            ablations = build_comparison(ablation_scores, reference, **settings)
            sections.append(Section("Ablations", "ablations", ablations, ablation_scores))
            for path in write_reports(ablations, f"{params['out_dir']}/ablations"):
                log_artifact(path, "compare/ablations")
        page = write_report(params["report"], sections, scores_dir=params["scores"],
                            generations_dir=params["generations"], train_dir=params.get("train_reports"),
                            runs=[run_link("compare stage (this page)", run.info)] + score_runs(params["scores"]),
                            profile=profile, max_sets=params.get("gallery_max_sets"))
        log_artifact(page)
    print(render(comparison, "table"), end="")
    print(f"results page: {page} ({page.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
