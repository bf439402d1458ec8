"""Published figures to put beside ours (`eval/published.yaml`), validated on load.

Each figure names the dvd360 metric that computes the same definition, if any, and how far:
"exactly" (same formula and input), "comparable up to protocol" (same definition; frames,
size, views or n differ or are not stated) or "not comparable" (with the reason). `block()` is
what comparisons carry under "published": {"source", "metrics": {dvd360 metric: [figure]},
"unmatched": [figure]}, figures as plain dicts; no figure ever enters our statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from dvd360.config import repo_root
from dvd360.metrics.registry import METRICS
from dvd360.params_schema import StrictModel, validated_file

MATCHES = ("exactly", "comparable up to protocol", "not comparable")
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class PublishedFileError(ValueError):
    """An invalid published-figures file; the message names the file and every problem."""


class Paper(StrictModel):
    title: Text
    reference: Text
    evaluation_code: Text
    read_from: Text  # where the figures were read (table, file), so each can be checked


class Protocol(StrictModel):
    """How a figure was computed; None: not stated in the sources read."""

    model: Text | None = None
    input: Text | None = None
    frames: int | Text | None = None
    resolution: Text | None = None
    sample_size: int | Text | None = None


class Dvd360Match(StrictModel):
    metric: str | None
    match: Literal[MATCHES]
    reason: Text

    @field_validator("metric")
    @classmethod
    def _registered(cls, metric: str | None) -> str | None:
        if metric is not None and metric not in METRICS:
            raise PydanticCustomError("metric", "Input should be null or a metric of dvd360/metrics/registry.py")
        return metric

    @model_validator(mode="after")
    def _comparable_names_a_metric(self) -> "Dvd360Match":
        if self.match != "not comparable" and self.metric is None:
            raise PydanticCustomError("match", "a figure '{match}' with ours names the dvd360 metric",
                                      {"match": self.match})
        return self


class Figure(StrictModel):
    method: Text
    metric: Text
    value: float
    better: Literal["higher", "lower"] | None = None
    paper: str
    table: Text
    protocol: Protocol
    dvd360: Dvd360Match


class PublishedFile(StrictModel):
    papers: dict[str, Paper]
    figures: list[Figure]

    @model_validator(mode="after")
    def _papers_known(self) -> "PublishedFile":
        unknown = sorted({f.paper for f in self.figures} - set(self.papers))
        if unknown:
            raise PydanticCustomError("paper", "figures cite papers not listed under `papers`: {unknown}",
                                      {"unknown": ", ".join(unknown)})
        return self


def published_file() -> Path:
    """`eval/published.yaml` of the repository."""
    return repo_root() / "eval" / "published.yaml"


def load_published(path: str | Path | None = None) -> PublishedFile:
    """The published figures of `eval/published.yaml` (or `path`), validated."""
    return validated_file(PublishedFile, published_file() if path is None else path, PublishedFileError,
                          "published figures")


def _row(figure: Figure, papers: dict[str, Paper]) -> dict:
    paper = papers[figure.paper]
    return {"method": figure.method, "metric": figure.metric, "value": figure.value, "better": figure.better,
            "source": f"{paper.title.split(':')[0]}, {paper.reference}, {figure.table}",
            "protocol": {k: v for k, v in figure.protocol.model_dump().items() if v is not None},
            "dvd360_metric": figure.dvd360.metric, "match": figure.dvd360.match, "reason": figure.dvd360.reason}


def block(path: str | Path | None = None) -> dict:
    """{"source": path, "metrics": {dvd360 metric: [row]} in registry order, "unmatched": [row]}."""
    path = published_file() if path is None else Path(path)
    published = load_published(path)
    rows = [_row(f, published.papers) for f in published.figures]
    by_metric = {name: [r for r in rows if r["dvd360_metric"] == name] for name in METRICS}
    return {"source": str(path), "metrics": {name: found for name, found in by_metric.items() if found},
            "unmatched": [r for r in rows if r["dvd360_metric"] is None]}
