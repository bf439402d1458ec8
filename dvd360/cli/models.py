"""`dvd360-eval models list | fetch | verify | import`: the registry's models in the per-user store."""

from __future__ import annotations

import json
from pathlib import Path

import click

NAME_HELP = "Registry names (`dvd360-eval models list`)."


def _store():
    from dvd360.models.store import Store

    return Store()


def _names(store, names: tuple[str, ...]) -> list[str]:
    unknown = [n for n in names if n not in store.registry.models]
    if unknown:
        raise click.BadParameter(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(store.registry.models)}")
    return list(names)


@click.group("models")
def models() -> None:
    """The models of the registry (dvd360/models/registry.yaml) in the per-user model store
    ($DVD360_HOME, default the user cache dir): what is there, fetching, checking, importing.
    `dvd360-eval score` finds its models here."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, default=False, help="One JSON object instead of the table.")
def list_models(as_json: bool) -> None:
    """Every model: present or missing, how its files are checked, where it comes from, and the
    metrics it blocks while missing."""
    store = _store()
    rows = []
    for name in store.registry.models:
        state = store.state(name)
        entry = state.entry
        first = entry.files[0]
        rows.append({"name": name, "role": entry.role, "state": state.state,
                     "files": len(entry.files), "check": first.describe_check() if len(entry.files) == 1 else
                     f"{first.describe_check()} ({len(entry.files)} files)",
                     "sha256": store.sha256(name),
                     "source": entry.source_text(), "licence": entry.licence,
                     "blocked": [] if state.present else list(entry.metrics), "size": first.size})
    if as_json:
        click.echo(json.dumps({"store": str(store.root), "models": rows}, indent=2))
        return
    click.echo(f"model store: {store.root}")
    for row in rows:
        click.echo(f"{row['name']:<25} {row['role']:<9} {row['state']:<8} {row['check']}")
        click.echo(f"{'':<25} source: {row['source']}")
        if row["sha256"]:
            click.echo(f"{'':<25} sha256: {row['sha256']}")
        if row["blocked"]:
            click.echo(f"{'':<25} blocks: {', '.join(row['blocked'])}")
    missing = [r["name"] for r in rows if r["state"] != "present" and r["role"] == "scorer"]
    if missing:
        from dvd360.models.store import fetch_command

        click.echo(f"scoring models missing: {fetch_command(missing)}")


@models.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--for", "for_metrics", default=None, metavar="METRICS",
              help="Comma-separated metric names: fetch the models they need.")
@click.option("--all", "everything", is_flag=True, default=False,
              help="Every model with an automatic source (the paper profile's too).")
def fetch(names: tuple[str, ...], for_metrics: str | None, everything: bool) -> None:
    """Download NAMES (default: every scoring model) into the store: resumable, each file checked
    against its published hash (or pinned at its first copy) before it is moved into place."""
    from dvd360.models.store import FetchError

    store = _store()
    chosen = _names(store, names)
    if for_metrics:
        from dvd360.metrics.registry import METRICS

        wanted = [m.strip() for m in for_metrics.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in METRICS]
        if unknown:
            raise click.BadParameter(f"unknown metric(s) {', '.join(unknown)}", param_hint="--for")
        chosen += [e.name for e in store.registry.for_metrics(wanted) if e.name not in chosen]
    if everything:
        chosen += [n for n, e in store.registry.models.items() if e.automatic and n not in chosen]
    if not chosen:
        chosen = [n for n, e in store.registry.models.items() if e.role == "scorer"]
    failed = []
    for name in chosen:
        try:
            fetched = store.fetch(name, log=lambda line: click.echo(line, err=True))
        except FetchError as error:
            failed.append(f"{name}: {type(error).__name__}: {error}")
            continue
        click.echo(f"{name}: {'fetched ' + ', '.join(fetched) if fetched else 'already present'} "
                   f"(sha256 {store.sha256(name)})")
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(chosen)} model(s) not fetched:\n" + "\n".join(failed))


@models.command("verify")
@click.argument("names", nargs=-1)
def verify(names: tuple[str, ...]) -> None:
    """Rehash the files of NAMES (default: every model in the store) against their published hash
    and the sha256 recorded when they entered the store."""
    store = _store()
    bad, checked = [], 0
    for name in _names(store, names) or list(store.registry.models):
        for path, ok, what in store.verify(name):
            checked += 1
            click.echo(f"{name}/{path}: {'ok' if ok else 'FAILED'}: {what}")
            if not ok:
                bad.append(f"{name}/{path}")
    if bad:
        raise click.ClickException(f"{len(bad)} of {checked} file(s) failed: {', '.join(bad)}")
    click.echo(f"{checked} file(s) verified in {store.root}")


@models.command("import")
@click.argument("folder", type=click.Path(exists=True, path_type=Path))
def import_(folder: Path) -> None:
    """Take the registry's files found under FOLDER (a VBench or torch-hub cache, a Hugging Face
    cache or snapshot, a download folder) by content hash, not by name; a file with no published
    hash is taken by its name and its sha256 pinned."""
    store = _store()
    taken = store.import_dir(folder)
    for name, path, source, how in taken:
        click.echo(f"{name}/{path} <- {source} ({how})")
    click.echo(f"{len(taken)} file(s) imported into {store.root}")
