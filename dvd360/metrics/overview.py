"""The metrics at a glance: the README's table, made from the metric specs
(`dvd360.metrics.registry`), the model registry (`dvd360.models.registry`), the published figures
(`eval/published.yaml`) and a metric audit of the tiny reference set (`docs/audit-tiny/audit.json`,
made by `dvd360-eval audit`), so it cannot drift from them. `python -m dvd360.metrics.overview`
prints it (tests/test_readme.py checks that the README holds exactly this table)."""

from __future__ import annotations

import json
from pathlib import Path

from dvd360.metrics.registry import SPECS
from dvd360.models.registry import load_registry
from dvd360.published import block

BEGIN, END = "<!-- metrics table: python -m dvd360.metrics.overview -->", "<!-- end of metrics table -->"
AUDIT = Path(__file__).resolve().parents[2] / "docs" / "audit-tiny" / "audit.json"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _published(rows: list[dict]) -> str:
    """The published figures of one dvd360 metric: "match: method value (source)"."""
    return "; ".join(f"{r['match']}: {r['method']} {r['value']:g} ({r['source']})" for r in rows) or "none"


def _audit(summary: dict | None, not_computed: str | None) -> str:
    """What the tiny audit saw: the defects it sees, moves the wrong way on, ignores; invariances."""
    if summary is None:
        return f"not audited ({not_computed})" if not_computed else "not audited"
    parts = [f"{label}: {', '.join(summary[key])}" for key, label in
             (("sees", "sees"), ("wrong_way", "wrong way"), ("ignores", "ignores")) if summary[key]]
    held = [defect for defect, holds in summary["invariant"].items() if holds]
    parts += [f"invariant to {', '.join(held)}"] if held else []
    return "; ".join(parts)


def markdown_table(audit_path: Path = AUDIT) -> str:
    """One row per metric: name, what it measures (its scale), better, models, how it compares with
    the literature, published figures of the same definition, and what the tiny audit saw."""
    registry = load_registry()
    published = block()["metrics"]
    audit = json.loads(audit_path.read_text(encoding="utf-8")) if audit_path.is_file() else {}
    rows = ["| metric | measures | better | model | definition vs the literature | published figures | "
            "sees / ignores (audit, tiny) |", "|---|---|---|---|---|---|---|"]
    for spec in SPECS:
        models = ", ".join(f"`{entry.name}`" for entry in registry.for_metrics([spec.name])) or "none"
        seen = _audit(audit.get("summary", {}).get(spec.name), audit.get("not_computed", {}).get(spec.name))
        rows.append(f"| `{spec.name}` | {_cell(spec.scale)} | {spec.better} | {models} | {_cell(spec.comparable)} | "
                    f"{_cell(_published(published.get(spec.name, [])))} | {_cell(seen)} |")
    return "\n".join([BEGIN, *rows, END]) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
