"""The metrics at a glance: the README's table, made from the metric specs
(`dvd360.metrics.registry`) and the model registry (`dvd360.models.registry`), so it cannot
drift from them. `python -m dvd360.metrics.overview` prints it (tests/test_readme.py checks that
the README holds exactly this table)."""

from __future__ import annotations

from dvd360.metrics.registry import SPECS
from dvd360.models.registry import load_registry

BEGIN, END = "<!-- metrics table: python -m dvd360.metrics.overview -->", "<!-- end of metrics table -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table() -> str:
    """One row per metric: name, what it measures (its scale), better, models, comparable with."""
    registry = load_registry()
    rows = ["| metric | measures | better | model | comparable with |", "|---|---|---|---|---|"]
    for spec in SPECS:
        models = ", ".join(f"`{entry.name}`" for entry in registry.for_metrics([spec.name])) or "none"
        rows.append(f"| `{spec.name}` | {_cell(spec.scale)} | {spec.better} | {models} | {_cell(spec.comparable)} |")
    return "\n".join([BEGIN, *rows, END]) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
