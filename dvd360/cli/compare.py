"""`dvd360-eval compare`: the comparison table of methods from the score stage's outputs."""

from __future__ import annotations

from pathlib import Path

import click


def _methods(_ctx, _param, value: str) -> list[str]:
    methods = [m.strip() for m in value.split(",") if m.strip()]
    if not methods:
        raise click.BadParameter("give at least one method, comma-separated")
    return methods


@click.command("compare")
@click.option("--methods", required=True, callback=_methods,
              help="Comma-separated method ids with a score file, e.g. A,B,C,D (and ablations D_no_360tf, ...).")
@click.option("--reference", default=None,
              help="Method the others are compared with, pairwise over the same prompt_id and seed "
                   "(delta = method - reference). Default: D (360DVD) when it is among --methods, "
                   "else none; 'none' turns the deltas off.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json", "html"]), default="table",
              show_default=True, help="What is printed to stdout (all four are written to --out-dir).")
@click.option("--scores", type=click.Path(file_okay=False, path_type=Path), default=Path("data/scores"),
              show_default=True, help="Folder of {method}.json files written by the score stage.")
@click.option("--mlflow-profile", type=click.Choice(["tiny", "paper"]), default=None,
              help="Read the score files from the latest score run of this profile's MLflow experiment "
                   "(dvd360-tiny / dvd360-paper) instead of --scores.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/compare"),
              show_default=True, help="Where comparison.{txt,md,json,html} and plots/{metric}.png go.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=Path("reports/index.html"),
              show_default=True, help="With --format html: the results page (table, charts, loss curves, every "
                                      "video in a 360 viewer), one self-contained file.")
@click.option("--generations", type=click.Path(file_okay=False, path_type=Path), default=Path("data/generations"),
              show_default=True, help="With --format html: the generate stage's folder, for the page's videos.")
@click.option("--train-reports", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/train"),
              show_default=True, help="With --format html: folder of {variant}/loss.tsv training curves (if present).")
@click.option("--ablations", default=None, callback=lambda ctx, param, value: _methods(ctx, param, value) if value else [],
              help="Comma-separated ablation methods, compared with the same reference in their own table "
                   "(written to --out-dir/ablations) and, with --format html, gallery; e.g. "
                   "D_no_360tf,D_no_pseudo3d,D_no_latloss.")
@click.option("--published", default=None,
              help="Published figures shown beside the methods' table (never in its statistics), each with its "
                   "comparability label: a YAML file like eval/published.yaml (the default, when it exists); "
                   "'none' leaves them out.")
@click.option("--audit", "audit_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --format html: a metric audit's audit.json (`dvd360-eval audit`), shown as its own section.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap and permutation resampling.")
@click.option("--resamples", type=click.IntRange(min=100), default=10_000, show_default=True,
              help="Bootstrap resamples and permutation sign patterns.")
def compare(methods, reference, fmt, scores, mlflow_profile, out_dir, report, generations, train_reports, ablations,
            published, audit_file, seed, resamples):
    """Compare methods on every metric: mean with its 95% bootstrap CI and n per method and, with
    a reference, the paired delta (same prompt and seed) with its 95% CI and a two-sided sign-flip
    permutation p-value (by default against D). Each row says which direction is better; the legend names the CLIP model
    and flow estimator. Scores from the tiny profile carry a note: they exercise the pipeline and
    say nothing about quality. Published figures (--published) follow the table, each labelled
    exactly / comparable up to protocol / not comparable with ours.
    """
    import tempfile

    from dvd360.compare import UnknownMethodError, render, scores_from_mlflow
    from dvd360.published import PublishedFileError, published_file
    from dvd360.report.gallery import ReportInputError
    from dvd360.report.results import compare_sections

    if reference is None and "D" in methods:
        reference = "D"
    reference = None if reference == "none" else reference
    if reference is not None and reference not in methods:
        methods = methods + [reference]
    if published is None:
        published = published_file() if published_file().is_file() else None
    published = None if published == "none" else published
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if mlflow_profile is not None:
                scores = scores_from_mlflow(mlflow_profile, tmp)
            sections, written = compare_sections(scores, methods, reference, ablations, out_dir, seed=seed,
                                                 n_resamples=resamples, published=published)
            if fmt == "html":
                _write_page(report, sections, scores, generations, train_reports, mlflow_profile, audit_file)
    except (UnknownMethodError, ReportInputError, PublishedFileError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(render(sections[0].comparison, fmt), nl=False)
    click.echo(f"written: {', '.join(str(p) for p in written[:4])} and {len(written) - 4} more file(s)", err=True)


def _write_page(report, sections, scores, generations, train_reports, mlflow_profile, audit_file) -> None:
    """The results page of the sections (the methods, then the ablations against the same reference)."""
    import json

    from dvd360.report.page import write_report
    from dvd360.report.runs import score_run_links, score_runs

    runs = score_run_links(mlflow_profile) if mlflow_profile else score_runs(scores)
    profile = next(iter(sections[0].scores.values())).get("profile")
    audit = json.loads(audit_file.read_text(encoding="utf-8")) if audit_file is not None else None
    write_report(report, sections, scores_dir=scores, generations_dir=generations, train_dir=train_reports,
                 runs=runs, profile=profile, audit=audit)
    click.echo(f"written: {report}", err=True)
