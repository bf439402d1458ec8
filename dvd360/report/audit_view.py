"""The metric audit (`dvd360.audit`) as people read it: the cell shown per metric and defect, its
mark, and the text table with the per-metric summary."""

from __future__ import annotations

import math
from typing import Any, Mapping

MARKS = {"sees": "+", "wrong way": "!", "ignores": ".", "holds": "=", "broken": "~", "not computed": " "}


def shown_cell(cells: list[dict]) -> dict:
    """The cell shown for a defect: the first wrong-way or broken one, else the strongest."""
    return next((c for c in cells if c["verdict"] in ("wrong way", "broken")), cells[-1])


def _number(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:+.2f}"


def render_text(audit: Mapping) -> str:
    """The audit as a table (metric x defect: effect in spreads at the strongest strength, or at the
    first wrong-way / broken one, with its mark), the per-metric summary and the legend."""
    defects, protocol, tolerance = list(audit["defects"]), audit.get("protocol"), audit["tolerance"]
    header = ["metric"] + defects
    body = []
    for name in audit["metrics"]:
        cells = [shown_cell(audit["effects"][name][d]) for d in defects]
        body.append([name] + [f"{_number(c.get('effect'))}{MARKS[c['verdict']]}" if c.get("effect") is not None
                              else f"{'0' if c['verdict'] == 'holds' else '-'}{MARKS[c['verdict']]}" for c in cells])
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [header] + body]
    lines.append("")
    for name, found in audit["summary"].items():
        moves = found.get("per_video", {})
        held = [d + (f" on average (single videos move up to {moves[d]:.1f} spreads)" if moves.get(d, 0) >= tolerance
                     else "") for d, ok in found["invariant"].items() if ok]
        broken = [d for d, ok in found["invariant"].items() if not ok]
        lines.append(f"{name}: sees {', '.join(found['sees']) or 'nothing'}; "
                     f"ignores {', '.join(found['ignores']) or '-'}"
                     + (f"; WRONG WAY {', '.join(found['wrong_way'])}" if found["wrong_way"] else "")
                     + (f"; invariant to {', '.join(held)}" if held else "")
                     + (f"; NOT invariant to {', '.join(broken)}" if broken else ""))
    lines += ["", "cells: the change in units of the metric's spread over the reference videos (set metrics: the "
              "clean set's own noise), at the strongest strength (or the first wrong-way / broken one); "
              f"+ sees it (worse), ! wrong way (better), . ignores (|effect| < {audit['tolerance']} or CI spans 0), "
              "= invariance holds (no such move), ~ invariance broken.",
              f"{audit['reference']['videos']} reference videos from {audit['reference']['source'] or '-'}"
              + (f" ({protocol['frames']} frames, {protocol['sample']}, working size {protocol['size']})"
                 if protocol else "")
              + f"; 95% bootstrap CIs over videos ({audit['bootstrap']['resamples']} resamples); {audit['seconds']} s."]
    lines += [f"{name}: not computed ({reason})" for name, reason in audit["not_computed"].items()]
    if audit["note"]:
        lines.insert(0, f"NOTE: {audit['note']}")
    return "\n".join(lines) + "\n"
