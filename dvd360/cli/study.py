"""`dvd360-eval study build` (rater packets + key) and `dvd360-eval study aggregate` (Table 1)."""

from __future__ import annotations

from pathlib import Path

import click

from dvd360.stats import N_RESAMPLES


@click.group("study")
def study() -> None:
    """Blinded user-study packets for raters, and the analysis of their answers (the paper's Table 1)."""


def _methods(_ctx, _param, value: str) -> list[str]:
    methods = [m.strip() for m in value.split(",") if m.strip()]
    if len(methods) < 2:
        raise click.BadParameter("give at least two methods, comma-separated")
    return methods


@study.command("build")
@click.option("--generations", type=click.Path(file_okay=False, path_type=Path), default=Path("data/generations"),
              show_default=True, help="The generate stage's folder: {method}/{prompt_id}-s{seed}.mp4 + .json.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("studies/study"),
              show_default=True, help="Replaced as a whole: packets/<rater>/, key.json, README.md. Not the "
                                      "pipeline's reports/study (the study stage's, which DVC restores).")
@click.option("--methods", default="A,B,C,D", show_default=True, callback=_methods, help="Methods to compare.")
@click.option("--raters", type=click.IntRange(min=1), required=True, help="Number of packets (one per rater).")
@click.option("--sets-per-packet", type=click.IntRange(min=1), default=None,
              help="Prompt sets per packet [default: all found].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="With the study secret, drives every shuffle.")
@click.option("--secret-from", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Reuse the study secret of this key file (reproduces its packets) [default: the secret of "
                   "OUT/key.json if there is one, else a fresh random secret].")
@click.option("--attention-check/--no-attention-check", default=True, show_default=True,
              help="Repeat one set per packet, in another order, to check attention.")
@click.option("--min-agree", type=click.IntRange(min=1), default=3, show_default=True,
              help="Criteria on which a repeated set must get the same method to pass.")
@click.option("--definition", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Study definition [default: eval/study.yaml].")
@click.option("--profile", type=click.Choice(["tiny", "paper"]), default="paper", show_default=True,
              help="tiny adds a test-only notice to the pages.")
def build(generations, out, methods, raters, sets_per_packet, seed, secret_from, attention_check, min_agree,
          definition, profile):
    """Render one static HTML packet per rater and the label key beside them."""
    from dvd360.study.definition import load_study_definition
    from dvd360.study.packets import read_existing_key
    from dvd360.study.render import build_study

    try:
        secret = None if secret_from is None else (read_existing_key(secret_from) or {}).get("study_secret")
        if secret_from is not None and not secret:
            raise click.ClickException(f"{secret_from}: the key has no study_secret")
        result = build_study(generations, out, methods=methods, raters=raters, sets_per_packet=sets_per_packet,
                             seed=seed, attention_check=attention_check, attention_min_agree=min_agree,
                             definition=load_study_definition(definition), profile=profile, built_by="cli",
                             study_secret=secret)
    except ValueError as error:  # StudyInputError, StudyDefinitionError: messages name the file
        raise click.ClickException(str(error)) from error
    for reason in result.skipped:
        click.echo(f"skipped {reason}", err=True)
    click.echo(f"{len(result.packets)} packets of {len(result.packets[0].sets)} sets in {out / 'packets'}; "
               f"key (keep it from raters): {result.key_path}")


@study.command("aggregate")
@click.argument("answers", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The key.json written beside the packets.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write table1.md, table1.json and table1.html here.")
@click.option("--paper/--no-paper", default=False, show_default=True,
              help="Show the paper's Table 1 beside the result.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--resamples", type=click.IntRange(min=100), default=N_RESAMPLES, show_default=True,
              help="Bootstrap resamples (of raters).")
@click.option("--definition", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Study definition [default: eval/study.yaml].")
def aggregate_command(answers, key_path, out, paper, seed, resamples, definition):
    """Validate answer files against the key, then print Table 1 (vote shares, 95% CIs) and strengths."""
    from dvd360.study.aggregate import aggregate, render_markdown, write_reports
    from dvd360.study.definition import load_study_definition

    try:
        result = aggregate(answers, key_path, seed=seed, n_resamples=resamples, paper=paper,
                           definition=load_study_definition(definition))
    except ValueError as error:  # NoValidAnswers, StudyKeyError, StudyDefinitionError
        raise click.ClickException(str(error)) from error
    for entry in result["excluded"]:
        click.echo(f"excluded {entry['file']}: {entry['reason']}", err=True)
    click.echo(render_markdown(result), nl=False)
    if out is not None:
        for path in write_reports(result, out).values():
            click.echo(f"wrote {path}", err=True)

