"""The comparison table: per method and metric the mean with its 95% bootstrap CI and n, and the
paired delta against a reference method (same prompt_id and seed) with its CI and sign-flip
permutation p-value (`dvd360.stats`). Rendered as text, Markdown, JSON or HTML (the results
page's table, `dvd360.report`), and plotted (one PNG per metric: means with their CIs).
Published figures (`dvd360.published.block`) ride along under "published", shown beside our
rows with their comparability label and never part of any mean, CI, delta or star.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from dvd360.atomic import atomic_path, write_text
from dvd360.metrics.registry import SET_METRIC_NAMES, SPECS, MetricSpec
from dvd360.metrics.set_metrics import summary_row
from dvd360.stats import N_RESAMPLES, paired_delta, summarize

FORMATS = ("table", "markdown", "json", "html")


class UnknownMethodError(ValueError):
    """Methods asked for that have no score file; the message lists the known ones."""


def load_scores(scores_dir: str | Path, methods: list[str]) -> dict[str, dict]:
    """The `{method}.json` score files of the given methods (see `dvd360.metrics.generations`)."""
    scores_dir = Path(scores_dir)
    known = sorted(p.stem for p in scores_dir.glob("*.json")) if scores_dir.is_dir() else []
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise UnknownMethodError(f"unknown method(s) {', '.join(unknown)} in {scores_dir}; known: "
                                 f"{', '.join(known) or 'none (run `dvc repro score`)'}")
    return {m: json.loads((scores_dir / f"{m}.json").read_text(encoding="utf-8")) for m in methods}


def latest_score_runs(profile: str) -> tuple[Any, list]:
    """The latest finished `score` stage run of the profile's MLflow experiment and its nested
    per-method runs (tag `dvd360.method`)."""
    import mlflow

    from dvd360.tracking import experiment_name, tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    name = experiment_name(profile)
    parents = mlflow.search_runs(experiment_names=[name], output_format="list", order_by=["start_time DESC"],
                                 filter_string="tags.`dvd360.stage` = 'score' and status = 'FINISHED'")
    parents = [r for r in parents if "mlflow.parentRunId" not in r.data.tags]
    if not parents:
        raise UnknownMethodError(f"MLflow experiment {name!r} at {tracking_uri()} has no finished score run")
    children = mlflow.search_runs(experiment_names=[name], output_format="list",
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    return parents[0], children


def scores_from_mlflow(profile: str, dst_dir: str | Path) -> Path:
    """Download the `{method}.json` score files of the latest `score` stage run of the profile's
    MLflow experiment (logged by its nested per-method runs) into dst_dir; returns dst_dir."""
    import mlflow

    _, children = latest_score_runs(profile)
    dst_dir = Path(dst_dir)
    for child in children:
        method = child.data.tags.get("dvd360.method")
        if method:
            mlflow.artifacts.download_artifacts(run_id=child.info.run_id, artifact_path=f"{method}.json",
                                                dst_path=str(dst_dir))
    return dst_dir


def _values(scores: Mapping[str, Any], name: str) -> dict[tuple, float]:
    return {(v.get("prompt_id"), v.get("seed")): v["metrics"][name]
            for v in scores["videos"] if name in v["metrics"]}


def _entry(spec: MetricSpec, info: Mapping[str, Any], rows: dict) -> dict:
    details = {k: v for k, v in info.get(spec.name, {}).items() if k not in ("better", "scale", "target")}
    return {"better": spec.better, "direction": spec.direction, "target": spec.target, "scale": spec.scale,
            "details": details, "rows": rows}


def _video_rows(spec: MetricSpec, scores: Mapping[str, Mapping], reference: str | None, seed: int,
                n_resamples: int) -> dict:
    """Per method: mean, CI and n; for a target metric also its distance from the target (what
    ranks it, `MetricSpec.rank_key`); the paired delta against the reference, of the distance for
    a target metric (negative: closer to the target than the reference)."""
    values = {m: _values(scores[m], spec.name) for m in scores}
    ranked = values if spec.direction != "target" else {
        m: {key: spec.rank_key(v) for key, v in per_video.items()} for m, per_video in values.items()}
    rows = {}
    for method in scores:
        row = summarize(values[method].values(), seed=seed, n_resamples=n_resamples)
        if spec.direction == "target":
            row["target_distance"] = summarize(ranked[method].values(), seed=seed, n_resamples=n_resamples)
        if reference is not None and method != reference:
            row["delta"] = paired_delta(ranked[method], ranked[reference], seed=seed, n_resamples=n_resamples)
        rows[method] = row
    return rows


def build_comparison(scores: Mapping[str, Mapping], reference: str | None = None, *, seed: int = 0,
                     n_resamples: int = N_RESAMPLES, published: Mapping | None = None) -> dict:
    """{"methods", "reference", "note", "metrics": {name: {"better", "direction", "target", "scale",
    "details", "rows": {method: {...}}}}}, in registry order; set metrics (one value per method, its
    whole set against the reference set) have no paired delta. With `published`
    (`dvd360.published.block()`), also "published": it, as given."""
    methods = list(scores)
    if reference is not None and reference not in scores:
        raise UnknownMethodError(f"reference {reference!r} is not among the compared methods {', '.join(methods)}")
    notes = sorted({s.get("note") for s in scores.values() if s.get("note")})
    first = next(iter(scores.values())) if scores else {}
    table: dict[str, dict] = {}
    for spec in SPECS:
        if spec.kind == "video" and any(_values(scores[m], spec.name) for m in methods):
            table[spec.name] = _entry(spec, first.get("metrics_info", {}),
                                      _video_rows(spec, scores, reference, seed, n_resamples))
        elif spec.kind == "set":
            rows = {m: {**summary_row(scores[m]["set_metrics"][spec.name]),
                        "warnings": scores[m]["set_metrics"][spec.name]["warnings"],
                        **({"delta": None} if reference is not None and m != reference else {})}
                    for m in methods if spec.name in scores[m].get("set_metrics", {})}
            if rows:
                table[spec.name] = _entry(spec, first.get("set_metrics_info", {}), rows)
    comparison = {"methods": methods, "reference": reference, "note": " ".join(notes) or None,
                  "bootstrap": {"seed": seed, "resamples": n_resamples, "confidence": 0.95}, "metrics": table}
    if published is not None:
        comparison["published"] = published
    return comparison


def rank_value(entry: Mapping[str, Any], row: Mapping[str, Any]) -> float | None:
    """What ranks a method's row of a comparison entry, smaller is better: -mean, mean, or the
    mean distance from the target."""
    if entry.get("direction") == "target":
        return (row.get("target_distance") or {}).get("mean")
    mean = row.get("mean")
    return None if mean is None else (-mean if entry["better"] == "higher" else mean)


def delta_is_better(entry: Mapping[str, Any], delta: Mapping[str, Any]) -> bool:
    """Whether a paired delta favours the method over the reference (a target metric's delta is
    of the distance from the target, so smaller is better)."""
    return delta["mean"] > 0 if entry["better"] == "higher" else delta["mean"] < 0


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _cells(row: Mapping[str, Any]) -> tuple[str, str]:
    spread = f"+-{_fmt(row['std'])}" if "std" in row else f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
    value = f"{_fmt(row['mean'])} {spread} n={row['n']}" + (f" ref={row['n_reference']}" if "n_reference" in row else "")
    delta = row.get("delta")
    if delta is None:
        return value, "(reference)" if "delta" not in row else "-"
    return value, (f"{_fmt(delta['mean'])} [{_fmt(delta['ci_low'])}, {_fmt(delta['ci_high'])}] "
                   f"p={_fmt(delta['p_value'], 3)} n={delta['n']}")


def _grid(comparison: Mapping) -> tuple[list[str], list[list[str]]]:
    ref = comparison["reference"]
    header = ["metric", "better", "method", "mean [95% CI] n"] + ([f"delta vs {ref} [95% CI] p n"] if ref else [])
    body = []
    for name, entry in comparison["metrics"].items():
        for method, row in entry["rows"].items():
            value, delta = _cells(row)
            body.append([name, entry["better"], method, value] + ([delta if method != ref else "(reference)"] if ref else []))
    return header, body


def _legend(comparison: Mapping) -> list[str]:
    lines = ["mean over videos with a 95% percentile bootstrap CI "
             f"({comparison['bootstrap']['resamples']} resamples, seed {comparison['bootstrap']['seed']}); "
             "n = videos scored.",
             f"set metrics ({', '.join(SET_METRIC_NAMES)}): one value per method, its whole set "
             "against the reference set; [CI] = bootstrap over videos, +- = KID subset std; n = generated "
             "videos, ref = reference videos; no paired delta (a set statistic has no per-video pairs)."]
    if comparison["reference"]:
        lines.append(f"delta = method - {comparison['reference']} over the same prompt_id and seed, with its "
                     "bootstrap CI and a two-sided sign-flip permutation p-value; for a metric with a target "
                     "value t, the delta of the distance |ln(x / t)| (negative: closer to the target).")
    for name, entry in comparison["metrics"].items():
        model = entry["details"].get("model") or entry["details"].get("estimator")
        extra = f"; {model}" if model else ""
        errors = entry["details"].get("estimator_error") or {}
        if errors:
            extra += "; estimator's own error on a synthetic rigid rotation: " + ", ".join(
                f"{_fmt(err[name], 3)} at {size}" for size, err in errors.items() if name in err)
        warnings = sorted({w for row in entry["rows"].values() for w in row.get("warnings", ())})
        extra += "".join(f"; WARNING {w}" for w in warnings)
        lines.append(f"{name}: {entry['scale']}, {entry['better']} is better{extra}")
    if comparison["note"]:
        lines.insert(0, f"NOTE: {comparison['note']}")
    return lines


def _published_lines(comparison: Mapping) -> list[str]:
    """The published block as lines: per dvd360 metric its figures with their label, then the
    figures no dvd360 metric computes."""
    published = comparison.get("published")
    if not published:
        return []
    lines = [f"published figures ({published['source']}): not ours; never in the means, CIs, deltas or stars above"]
    for name, rows in published["metrics"].items():
        scored = "" if name in comparison["metrics"] else " (not scored here)"
        for row in rows:
            lines.append(f"{name}{scored}: {row['method']} {_fmt(row['value'])} [{row['match']}] {row['source']}: "
                         f"{row['reason']}")
    lines += [f"no dvd360 equivalent: {row['method']} {row['metric']} {_fmt(row['value'])} ({row['source']})"
              for row in published["unmatched"]]
    return lines


def render(comparison: Mapping, fmt: str = "table") -> str:
    """The comparison as plain text ("table"), Markdown, JSON or a standalone HTML page."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(comparison, indent=2) + "\n"
    header, body = _grid(comparison)
    legend = _legend(comparison) + _published_lines(comparison)
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines + [""] + [f"- {line}" for line in legend]) + "\n"
    if fmt == "html":  # the results page's table and legend (the charts are the PNGs beside it)
        from dvd360.report.page import Section, render_page

        return render_page([Section("Comparison", "comparison", comparison)], charts=False, title="dvd360 comparison")
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header] + body]
    return "\n".join(lines + [""] + legend) + "\n"


def plot_metric(comparison: Mapping, name: str, path: Path) -> Path:
    """PNG chart of one metric: each method's mean with its 95% CI (`dvd360.report.figures`)."""
    from dvd360.report.figures import metric_figure, png

    with atomic_path(path) as tmp:
        png(metric_figure(comparison, name), tmp)
    return path


def write_reports(comparison: Mapping, out_dir: str | Path) -> list[Path]:
    """comparison.{txt,md,json,html} and plots/{metric}.png under out_dir."""
    out_dir = Path(out_dir)
    written = [write_text(out_dir / f"comparison.{ext}", render(comparison, fmt))
               for fmt, ext in (("table", "txt"), ("markdown", "md"), ("json", "json"), ("html", "html"))]
    written += [plot_metric(comparison, name, out_dir / "plots" / f"{name}.png") for name in comparison["metrics"]]
    return written
