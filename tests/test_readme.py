"""The README's metrics table is the one the metric and model registries make."""

from __future__ import annotations

from pathlib import Path

from dvd360.metrics.overview import markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_holds_the_registry_metrics_table():
    assert markdown_table() in README.read_text(encoding="utf-8"), (
        "README.md's metrics table is out of date: paste `python -m dvd360.metrics.overview` in its place")
