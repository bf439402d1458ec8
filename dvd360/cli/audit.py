"""`dvd360-eval audit`: what each metric sees and ignores, measured on your own reference videos."""

from __future__ import annotations

from pathlib import Path

import click

from dvd360.cli.score import DEFAULT_CLIP_DIR, DEFAULT_FEATURES_DIR, PAPER_CLIP
from dvd360.data.defects import DEFECTS


def _defects(_ctx, _param, value: str | None) -> list[str]:
    names = [d.strip() for d in value.split(",") if d.strip()] if value else list(DEFECTS)
    unknown = [d for d in names if d not in DEFECTS]
    if unknown:
        raise click.BadParameter(f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(DEFECTS)}")
    return names


@click.command("audit", epilog="Defects (3 strengths each): " + "; ".join(
    f"{d.name} ({', '.join(f'{s:.3g}' for s in d.strengths)}: {d.unit}; expect {d.expect})" for d in DEFECTS.values()))
@click.argument("reference_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--prompts", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Prompt of each video, as for `score` (JSON or CSV; WEB360's videoid,name works): turns the "
                   "CLIP similarity metrics on.")
@click.option("--defects", default=None, callback=_defects,
              help="Comma-separated defects to apply (default: all, listed below).")
@click.option("--frames", default="16", show_default=True,
              help="The scoring protocol, as for `score`: frames scored per video (a count or 'all').")
@click.option("--sample", default="first", show_default=True, help="Which frames: first, uniform or stride:K.")
@click.option("--size", default="512x1024", show_default=True,
              help="Working size HxW; larger videos are scaled down to it.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/audit"),
              show_default=True, help="Where audit.json, audit.txt and audit.png (the heat map) go.")
@click.option("--model", default=None,
              help=f"CLIP folder or open_clip spec ARCH/TAG (default {DEFAULT_CLIP_DIR} when it exists, else "
                   f"{PAPER_CLIP}), as for `score`.")
@click.option("--features", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_FEATURES_DIR,
              show_default=True, help="The models stage's features folder: I3D and Inception (the set metrics, "
                                      "against the clean videos) and MUSIQ / LAION (the quality metrics).")
@click.option("--feature-cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Set-metric feature cache, as for `score`.")
@click.option("--set-metrics", is_flag=True, default=False,
              help="Audit the Frechet set metrics too (I3D and Inception of --features): half of the clean videos "
                   "are the reference, the other half is compared clean and defective; every copy's set features and "
                   "a paired bootstrap per defect and strength, many times the per-video audit's time.")
@click.option("--set-resamples", type=click.IntRange(min=10), default=20, show_default=True,
              help="Paired bootstrap draws of each set metric.")
@click.option("--quality/--no-quality", default=None, help="The quality metrics, as for `score`.")
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--keep-repeats", is_flag=True, default=False,
              help="Score every frame (by default repeated frames are dropped, as `score` does).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise, jitter and bootstraps.")
@click.option("--resamples", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Bootstrap resamples of the per-video changes.")
def audit(reference_dir, prompts, defects, frames, sample, size, out_dir, model, features, feature_cache,
          set_metrics, set_resamples, quality, device, precision, batch_size, keep_repeats, seed, resamples):
    """Apply controlled defects to the videos of REFERENCE_DIR (each at 3 strengths, listed below),
    score clean and defective copies with the same scorer, models and feature cache as `score`,
    and report per metric and defect the effect: the signed change with its 95% bootstrap CI over
    videos, in units of the metric's own spread over the reference videos; whether it moves the
    right way (worse by the metric's direction or target); which invariances hold (a longitude
    roll; repeated frames, which scoring drops). Writes audit.json, audit.txt and audit.png; the
    text table goes to stdout. `dvd360-eval compare --format html --audit OUT_DIR/audit.json` puts
    the heat map on the results page.
    """
    from dvd360.audit import AuditVideo, run_audit, write_audit
    from dvd360.cli.score_inputs import check_score_inputs, problem_report
    from dvd360.data.protocol import parse_protocol
    from dvd360.metrics.scorers import ReferenceSet, Scorers, ScoringSettings
    from dvd360.report.audit_view import render_text

    items, problems = check_score_inputs((reference_dir,), prompts, None, min_frames=2)
    if problems:
        raise click.ClickException(problem_report(items, problems))
    videos = [AuditVideo(item.path, item.prompt) for item in items]
    try:
        settings = ScoringSettings(
            clip=model or (str(DEFAULT_CLIP_DIR) if DEFAULT_CLIP_DIR.is_dir() else PAPER_CLIP), features=str(features),
            feature_cache=None if feature_cache is None else str(feature_cache), device=device, precision=precision,
            batch_size=batch_size, keep_repeats=keep_repeats, protocol=parse_protocol(frames, sample, size),
            quality=quality, seed=seed, set_bootstrap_resamples=set_resamples)
        # The set scorer comes with a reference set; the audit's reference is the clean copies themselves.
        reference = ReferenceSet([v.path for v in videos], str(reference_dir)) if set_metrics else None
        scorers = Scorers.build(settings, reference, on_skip=lambda line: click.echo(line, err=True))
        result = run_audit(videos, scorers, defects, source=str(reference_dir), seed=seed, n_resamples=resamples,
                           on_video=lambda k: click.echo(f"audited {k + 1}/{len(videos)} videos", err=True))
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    written = write_audit(result, out_dir)
    click.echo(render_text(result), nl=False)
    click.echo(f"written: {', '.join(str(p) for p in written)} ({result['seconds']} s)", err=True)
