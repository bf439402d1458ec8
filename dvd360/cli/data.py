"""`dvd360-eval data check PATH`: validate a WEB360 folder before training on it."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group("data")
def data() -> None:
    """Datasets in the WEB360 layout."""


@data.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), default=None,
              help="Caption CSV (videoid,name); default: the folder's only *.csv.")
@click.option("--lenient", is_flag=True, help="Keep the good clips and list the bad ones.")
@click.option("--no-flows", is_flag=True, help="Accept videos without flow videos (flows made later).")
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Clips checked side by side, each decoded in its own process (0: one per core).")
def check(path: Path, csv_path: Path | None, lenient: bool, no_flows: bool, workers: int) -> None:
    """Check every clip of the WEB360 folder PATH and print every problem, each with its file.

    Every frame of every video and flow video is decoded (what training reads) and every
    numeric flow loaded; frame counts and sizes are checked against the folder's name.

    Exit status: 0 when nothing is wrong, 1 when there are problems (in --lenient mode too,
    after listing the clips that would be kept).
    """
    import os

    from dvd360.data.web360 import Web360ValidationError, index_web360

    try:
        index = index_web360(path, csv=csv_path, lenient=lenient, require_flows=not no_flows,
                             progress=sys.stderr.isatty(), workers=workers or os.cpu_count() or 1)
    except Web360ValidationError as error:
        click.echo(str(error))
        if error.passed:
            click.echo(f"{len(error.passed)} clip(s) passed every check: {', '.join(error.passed)}")
        sys.exit(1)
    frames = sorted({clip.num_frames for clip in index.clips})
    sizes = sorted({f"{clip.height}x{clip.width}" for clip in index.clips})
    click.echo(f"{path}: {len(index.clips)} valid clip(s), sizes {', '.join(sizes)} (HxW), "
               f"frames {frames[0]}-{frames[-1]}, captions from {index.csv_path}")
    if index.skipped:
        click.echo(f"{len(index.skipped)} problem(s); the clips they concern are skipped:")
        for problem in index.skipped:
            click.echo(f"  - {problem}")
        sys.exit(1)
