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
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap and permutation resampling.")
@click.option("--resamples", type=click.IntRange(min=100), default=10_000, show_default=True,
              help="Bootstrap resamples and permutation sign patterns.")
def compare(methods, reference, fmt, scores, mlflow_profile, out_dir, seed, resamples):
    """Compare methods on every metric: mean with its 95% bootstrap CI and n per method and, with
    a reference, the paired delta (same prompt and seed) with its 95% CI and a two-sided sign-flip
    permutation p-value (by default against D). Each row says which direction is better; the legend names the CLIP model
    and flow estimator. Scores from the tiny profile carry a note: they exercise the pipeline and
    say nothing about quality.
    """
    import tempfile

    from dvd360.compare import (UnknownMethodError, build_comparison, load_scores, render, scores_from_mlflow,
                                write_reports)

    if reference is None and "D" in methods:
        reference = "D"
    reference = None if reference == "none" else reference
    if reference is not None and reference not in methods:
        methods = methods + [reference]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if mlflow_profile is not None:
                scores = scores_from_mlflow(mlflow_profile, tmp)
            comparison = build_comparison(load_scores(scores, methods), reference, seed=seed, n_resamples=resamples)
    except UnknownMethodError as error:
        raise click.ClickException(str(error)) from error
    written = write_reports(comparison, out_dir)
    click.echo(render(comparison, fmt), nl=False)
    click.echo(f"written: {', '.join(str(p) for p in written[:4])} and {len(written) - 4} plot(s)", err=True)
