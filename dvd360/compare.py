"""The comparison table: per method and metric the mean with its 95% bootstrap CI and n, and the
paired delta against a reference method (same prompt_id and seed) with its CI and sign-flip
permutation p-value (`dvd360.stats`). Rendered as text, Markdown, JSON or HTML (the results
page's table, `dvd360.report`), and plotted (one PNG per metric: means with their CIs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from dvd360.atomic import atomic_path, write_text
from dvd360.metrics.registry import METRICS
from dvd360.metrics.set_metrics import SET_METRICS, summary_row
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


def build_comparison(scores: Mapping[str, Mapping], reference: str | None = None, *, seed: int = 0,
                     n_resamples: int = N_RESAMPLES) -> dict:
    """{"methods", "reference", "note", "metrics": {name: {"better", "scale", "rows": {method: {...}}}}}."""
    methods = list(scores)
    if reference is not None and reference not in scores:
        raise UnknownMethodError(f"reference {reference!r} is not among the compared methods {', '.join(methods)}")
    notes = sorted({s.get("note") for s in scores.values() if s.get("note")})
    info = next(iter(scores.values())).get("metrics_info", {}) if scores else {}
    table: dict[str, dict] = {}
    for name, (better, scale) in METRICS.items():
        per_method = {m: _values(scores[m], name) for m in methods}
        if not any(per_method.values()):
            continue
        rows = {}
        for method in methods:
            row = summarize(per_method[method].values(), seed=seed, n_resamples=n_resamples)
            if reference is not None and method != reference:
                row["delta"] = paired_delta(per_method[method], per_method[reference], seed=seed,
                                            n_resamples=n_resamples)
            rows[method] = row
        details = {k: v for k, v in info.get(name, {}).items() if k not in ("better", "scale")}
        table[name] = {"better": better, "scale": scale, "details": details, "rows": rows}
    # Set metrics: one value per method (its whole set against the reference set), no paired delta.
    set_info = next(iter(scores.values())).get("set_metrics_info", {}) if scores else {}
    for name, (better, scale) in SET_METRICS.items():
        rows = {m: {**summary_row(scores[m]["set_metrics"][name]), "warnings": scores[m]["set_metrics"][name]["warnings"],
                    **({"delta": None} if reference is not None and m != reference else {})}
                for m in methods if name in scores[m].get("set_metrics", {})}
        if rows:
            details = {k: v for k, v in set_info.get(name, {}).items() if k not in ("better", "scale")}
            table[name] = {"better": better, "scale": scale, "details": details, "rows": rows}
    return {"methods": methods, "reference": reference, "note": " ".join(notes) or None,
            "bootstrap": {"seed": seed, "resamples": n_resamples, "confidence": 0.95}, "metrics": table}


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
             "set metrics (fvd_erp, fvd_cubemap, fid_views, kid_views): one value per method, its whole set "
             "against the reference set; [CI] = bootstrap over videos, +- = KID subset std; n = generated "
             "videos, ref = reference videos; no paired delta (a set statistic has no per-video pairs)."]
    if comparison["reference"]:
        lines.append(f"delta = method - {comparison['reference']} over the same prompt_id and seed, with its "
                     "bootstrap CI and a two-sided sign-flip permutation p-value.")
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


def render(comparison: Mapping, fmt: str = "table") -> str:
    """The comparison as plain text ("table"), Markdown, JSON or a standalone HTML page."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(comparison, indent=2) + "\n"
    header, body = _grid(comparison)
    legend = _legend(comparison)
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
