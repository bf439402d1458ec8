"""The results page: one self-contained HTML file (inline CSS, JS, SVG charts and videos).

Sections: the profile notice, the comparison table (methods as columns; metrics as rows in the
groups of the metric specs (`dvd360.metrics.registry`); mean with 95% CI and n; the paired delta
against the reference with its CI and p-value; the best mean marked; each metric's definition
and model on hover and in the legend), the published figures beside it (a table of their own,
each with its comparability label; never in the means, CIs or stars), one chart per metric, the
metric audit (`dvd360.audit`: a heat map of metric x defect), the training loss curves, the
gallery (per prompt and seed, every method's video in the 360 viewer and flat, its scores
under it), the same for the ablations, and where every figure came from (files, SHA-256,
MLflow run ids). The 360 viewer is the user study's: its script (`dvd360/study/static/viewer.js`),
inlined, and its markup (the `view360` macro of `dvd360/study/templates/viewer.html`).
Rendered by jinja2 with autoescaping on: prompts and paths show as text whatever they hold.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

import jinja2

from dvd360.atomic import write_text
from dvd360.config import repo_root
from dvd360.provenance import TRACKED_PACKAGES, git_commit, sha256_of, versions
from dvd360.compare import delta_is_better, rank_value
from dvd360.metrics.registry import GROUP_ORDER, METRICS
from dvd360.report.figures import audit_figure, loss_figure, metric_figure, svg
from dvd360.report.gallery import Media, ReportInputError, gallery_sets

SIGNIFICANCE = 0.05
OTHER_GROUP = "other"


@dataclass
class Section:
    """One comparison on the page (the methods, or the ablations) and the gallery of its videos."""

    title: str
    anchor: str
    comparison: Mapping
    scores: Mapping[str, Mapping] | None = None  # {method: score file}, for the gallery
    gallery: list[dict] = field(default_factory=list)


def number(value, digits: int = 4) -> str:
    """A figure to `digits` significant digits; '-' for none."""
    return "-" if value is None else f"{value:.{digits}g}"


def metric_title(name: str, entry: Mapping) -> str:
    """The hover text of a metric: scale, direction, then every detail (model, estimator, views...)."""
    parts = [f"{name}: {entry['scale']}; {entry['better']} is better"]
    for key, value in entry.get("details", {}).items():
        if key == "estimator_error":
            value = "; ".join(f"{size}: " + ", ".join(f"{k} {number(v, 3)}" for k, v in err.items()
                                                      if isinstance(v, (int, float)))
                              for size, err in value.items())
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return "\n".join(parts)


def table_groups(comparison: Mapping) -> list[dict]:
    """The table's rows: [{"group", "metrics": [{"name", "better", "scale", "title", "cells"}]}].

    A cell per method: mean, CI, n, the paired delta against the reference (CI, p, n), whether
    its mean is the best of the row (two or more methods) and whether the delta is significant.
    """
    groups: dict[str, list] = {}
    reference = comparison.get("reference")
    for name, entry in comparison["metrics"].items():
        ranks = {m: rank_value(entry, r) for m, r in entry["rows"].items()}
        ranks = {m: r for m, r in ranks.items() if r is not None}
        best = min(ranks.values()) if len(ranks) > 1 else None
        cells = []
        for method in comparison["methods"]:
            row = entry["rows"].get(method) or {}
            delta = row.get("delta") if (row.get("delta") or {}).get("mean") is not None else None
            cells.append({"method": method, "row": row, "delta": delta,
                          "reference": method == reference, "best": best is not None and ranks.get(method) == best,
                          "significant": bool(delta and delta.get("p_value") is not None
                                              and delta["p_value"] < SIGNIFICANCE),
                          "better_than_reference": bool(delta) and delta_is_better(entry, delta)})
        groups.setdefault(METRICS[name].group if name in METRICS else OTHER_GROUP, []).append(
            {"name": name, "better": entry["better"], "scale": entry["scale"], "title": metric_title(name, entry),
             "details": entry.get("details", {}), "cells": cells})
    order = list(GROUP_ORDER) + [OTHER_GROUP]
    return [{"group": g, "metrics": groups[g]} for g in order if g in groups]


def published_view(comparison: Mapping) -> dict | None:
    """The comparison's published block as the page shows it: per dvd360 metric our methods'
    means (to read beside) and the figures ({"groups", "unmatched", "source"}); None without one."""
    published = comparison.get("published")
    if not published:
        return None
    groups = []
    for name, figures in published["metrics"].items():
        rows = comparison["metrics"].get(name, {}).get("rows", {})
        groups.append({"name": name, "figures": figures,
                       "ours": [(m, rows[m].get("mean")) for m in comparison["methods"] if m in rows]})
    return {"source": published["source"], "groups": groups, "unmatched": published["unmatched"]}


def read_loss_curves(train_dir: str | Path) -> dict[str, list[tuple[float, float]]]:
    """{variant: [(step, loss)]} from `{train_dir}/{variant}/loss.tsv` (tab-separated, header step, loss)."""
    curves = {}
    for path in sorted(Path(train_dir).glob("*/loss.tsv")):
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
        if not rows or rows[0][:2] != ["step", "loss"]:
            raise ReportInputError(f"{path}: expected a header 'step<TAB>loss', got {rows[0] if rows else 'nothing'}")
        try:
            curves[path.parent.name] = [(float(r[0]), float(r[1])) for r in rows[1:] if r]
        except (ValueError, IndexError) as error:
            raise ReportInputError(f"{path}: not a number in a step/loss row ({error})") from error
    return curves


def _static(package: str, name: str) -> str:
    return (resources.files(package) / "static" / name).read_text(encoding="utf-8")


def _environment() -> jinja2.Environment:
    # The study's templates too: the 360 viewer's markup (viewer.html) is shared with its pages.
    loader = jinja2.ChoiceLoader([jinja2.PackageLoader("dvd360.report", "templates"),
                                  jinja2.PackageLoader("dvd360.study", "templates")])
    environment = jinja2.Environment(loader=loader,
                                     autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
    environment.filters["num"] = number
    return environment


def render_page(sections: Sequence[Section], *, loss_curves: Mapping | None = None, media: Media | None = None,
                sources: Sequence[Mapping] = (), runs: Sequence[Mapping] = (), software: Mapping | None = None,
                profile: str | None = None, charts: bool = True, title: str = "dvd360 results",
                audit: Mapping | None = None) -> str:
    """The page as HTML text. Without a gallery, media or charts it is the table and legend alone;
    `software` (name -> version, git commit) goes under the sources; `audit` (`dvd360.audit`'s
    JSON) adds its section."""
    first = sections[0].comparison
    views = [{"section": s, "groups": table_groups(s.comparison), "published": published_view(s.comparison),
              "charts": [(name, svg(metric_figure(s.comparison, name, note=False))) for name in s.comparison["metrics"]]
              if charts else []} for s in sections]
    loss_svg = svg(loss_figure(loss_curves)) if loss_curves else None
    audit_view = {"audit": audit, "svg": svg(audit_figure(audit))} if audit else None
    viewer = any(s.gallery for s in sections)
    return _environment().get_template("index.html").render(
        title=title, note=first.get("note"), profile=profile, bootstrap=first.get("bootstrap", {}),
        views=views, loss_svg=loss_svg, loss_variants=list(loss_curves or {}), media=(media.encoded if media else {}),
        audit=audit_view,
        sources=list(sources), runs=list(runs), software=dict(software or {}), significance=SIGNIFICANCE,
        css=_static("dvd360.report", "report.css"),
        scripts=[_static("dvd360.study", "viewer.js"), _static("dvd360.report", "report.js")] if viewer else [])


def source_list(scores_dir: str | Path, sections: Sequence[Section], train_dir: str | Path | None) -> list[dict]:
    """The files the page is made from, with their SHA-256: score files, then loss curves."""
    methods = dict.fromkeys(m for s in sections for m in s.comparison["methods"])
    paths = [(Path(scores_dir) / f"{m}.json", f"scores of {m}") for m in methods]
    if train_dir is not None:
        paths += [(p, f"training loss of {p.parent.name}") for p in sorted(Path(train_dir).glob("*/loss.tsv"))]
    return [{"path": str(p), "what": what, "sha256": sha256_of(p) if p.is_file() else None} for p, what in paths]


def write_report(path: str | Path, sections: Sequence[Section], *, scores_dir: str | Path,
                 generations_dir: str | Path, train_dir: str | Path | None = None, runs: Sequence[Mapping] = (),
                 profile: str | None = None, max_sets: int | None = None, audit: Mapping | None = None) -> Path:
    """Check every input, then write the full page atomically to `path`; returns `path`.

    Videos come from `generations_dir` (checked against the SHA-256 they were scored with), loss
    curves from `train_dir` (if it exists); `max_sets` caps the prompt/seed sets per gallery;
    `audit`: a metric audit's JSON for its section.
    """
    media = Media()
    for section in sections:
        if section.scores:
            rank = {name: METRICS[name].rank_key for name in section.comparison["metrics"] if name in METRICS}
            section.gallery = gallery_sets(section.scores, generations_dir, media, rank, max_sets)
    if train_dir is not None and not Path(train_dir).is_dir():
        train_dir = None
    curves = read_loss_curves(train_dir) if train_dir is not None else {}
    software = {"dvd360 git commit": git_commit(repo_root()) or "unknown",
                **versions(TRACKED_PACKAGES + ("matplotlib", "jinja2"))}  # + what draws the charts and page
    html = render_page(sections, loss_curves=curves, media=media, runs=runs, profile=profile,
                       sources=source_list(scores_dir, sections, train_dir), software=software, audit=audit)
    return write_text(Path(path), html)
