"""The one compare path (what `dvd360-eval compare` and the `compare` stage call): the methods'
comparison (with the published figures beside it, `dvd360.published`) and the ablations' against
the same reference, their tables and plots under `out_dir` (the ablations' under
`out_dir/ablations`), as the sections of the results page."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from dvd360.compare import build_comparison, load_scores, write_reports
from dvd360.methods import load_methods
from dvd360.params_schema import StageSettings
from dvd360.published import block
from dvd360.report.page import Section


class CompareSettings(StageSettings):
    """params.yaml `compare`: the methods and ablations compared, the reference of the paired
    deltas, where the scores and the published figures are and where the tables and the results
    page go."""

    methods: list[str] = Field(min_length=1)
    ablations: list[str] = []
    reference: str | None = None      # paired deltas against this method (one of `methods`)
    scores: str
    out_dir: str
    report: str
    generations: str
    train_reports: str | None = None
    gallery_max_sets: int | None = Field(default=None, gt=0)
    published: str | None = None      # eval/published.yaml: figures shown beside the methods' table

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


def compare_sections(scores_dir: str | Path, methods: Sequence[str], reference: str | None,
                     ablations: Sequence[str] = (), out_dir: str | Path | None = None, *, seed: int = 0,
                     n_resamples: int = 10_000,
                     published: str | Path | None = None) -> tuple[list[Section], list[Path]]:
    """(sections, files written): "Methods" (with the figures of the `published` file beside it)
    and, with `ablations`, "Ablations" (the reference joins them when it is not one); tables and
    plots written under `out_dir` when given."""
    sections, written = [], []
    groups = [("Methods", "methods", list(methods), "")]
    if ablations:
        names = ([reference] if reference and reference not in ablations else []) + list(ablations)
        groups.append(("Ablations", "ablations", names, "ablations"))
    for title, anchor, names, folder in groups:
        scores = load_scores(scores_dir, names)
        beside = block(published) if published is not None and anchor == "methods" else None
        comparison = build_comparison(scores, reference, seed=seed, n_resamples=n_resamples, published=beside)
        sections.append(Section(title, anchor, comparison, scores))
        if out_dir is not None:
            written += write_reports(comparison, Path(out_dir) / folder)
    return sections, written
