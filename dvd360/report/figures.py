"""The report's charts, drawn with matplotlib: one metric across methods (mean with its 95% CI),
the training loss curves and the metric audit's heat map. `svg()` gives a figure as inline SVG
text (text kept as text, ids salted with a constant, no date: same input, same bytes).
"""

from __future__ import annotations

import io
import textwrap
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

INK, MUTED, ACCENT, REFERENCE = "#1f2933", "#7b8794", "#2f6fb0", "#c2410c"


def metric_figure(comparison: Mapping, name: str, note: bool = True):
    """One metric: each method's mean as a dot with its 95% CI as a bar (reference in orange).

    Methods without a mean are left out; with `note`, the comparison's note (the tiny-profile
    notice) goes under the chart.
    """
    entry = comparison["metrics"][name]
    rows = {m: r for m, r in entry["rows"].items() if r.get("mean") is not None}
    methods = list(rows)[::-1]  # first method on top
    note = comparison.get("note") if note else None
    fig, ax = plt.subplots(figsize=(3.4, 0.36 * len(methods) + (1.25 if note else 1.0)))
    for y, method in enumerate(methods):
        row = rows[method]
        colour = REFERENCE if method == comparison.get("reference") else ACCENT
        low = row["ci_low"] if row.get("ci_low") is not None else row["mean"]
        high = row["ci_high"] if row.get("ci_high") is not None else row["mean"]
        ax.plot([low, high], [y, y], color=colour, linewidth=2.2, alpha=0.55, solid_capstyle="round")
        ax.plot([row["mean"]], [y], "o", color=colour, markersize=6)
    ax.set_yticks(range(len(methods)), methods, fontsize=8.5, color=INK)
    ax.set_ylim(-0.6, len(methods) - 0.4)
    ax.tick_params(axis="x", labelsize=7, colors=MUTED)
    ax.grid(axis="x", color="#e4e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color("#cbd2d9")
    ax.set_title(f"{name}  ({entry['better']} is better)", fontsize=9, color=INK, loc="left")
    ax.set_xlabel(textwrap.shorten(entry["scale"], 60), fontsize=7, color=MUTED)
    if note:
        fig.text(0.01, 0.01, textwrap.fill(note, 75), fontsize=5, color="#b42318")
    fig.tight_layout(rect=(0, 0.1 if note else 0, 1, 1))
    return fig


def loss_figure(curves: Mapping[str, Sequence[tuple[float, float]]]):
    """Training loss against step, one line per training variant."""
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    for variant, points in curves.items():
        steps, losses = zip(*points) if points else ((), ())
        ax.plot(steps, losses, linewidth=1.4, label=variant)
    ax.set_xlabel("step", fontsize=8, color=MUTED)
    ax.set_ylabel("loss", fontsize=8, color=MUTED)
    ax.tick_params(labelsize=7, colors=MUTED)
    ax.grid(color="#e4e7eb", linewidth=0.8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=7, frameon=False, ncol=min(4, max(1, len(curves))))
    fig.tight_layout()
    return fig


def audit_figure(audit: Mapping):
    """The metric audit (`dvd360.audit`) as a heat map, metric x defect: colour the effect in spreads
    at the strongest strength (or the first wrong-way / broken one), signed so that red is worse
    and blue better, clipped to +-3; each cell's effect and mark written in it; grey: no spread
    or not computed."""
    import numpy as np

    from dvd360.report.audit_view import MARKS, shown_cell

    defects, metrics = list(audit["defects"]), list(audit["metrics"])
    grid = np.full((len(metrics), len(defects)), np.nan)
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(defects), 0.9 + 0.3 * len(metrics)))
    for i, name in enumerate(metrics):
        for j, defect in enumerate(defects):
            cell = shown_cell(audit["effects"][name][defect])
            effect = cell.get("effect")
            if cell["verdict"] in ("ignores", "holds"):
                grid[i, j] = 0.0
            elif effect is not None:
                grid[i, j] = min(abs(effect), 3.0) * (1 if cell["worse"] else -1)
            text = ("-" if effect is None else f"{effect:+.1f}") + MARKS[cell["verdict"]].strip()
            dark = abs(grid[i, j]) >= 2 if np.isfinite(grid[i, j]) else False
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color="white" if dark else INK)
    ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu_r", vmin=-3, vmax=3, aspect="auto")
    ax.set_facecolor("#e4e7eb")
    ax.set_xticks(range(len(defects)), [d.replace("_", " ") for d in defects], rotation=40, ha="right", fontsize=7,
                  color=INK)
    ax.set_yticks(range(len(metrics)), metrics, fontsize=7, color=INK)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title("effect in spreads (red: worse, blue: better; + sees, ! wrong way, = invariant, ~ not)",
                 fontsize=7.5, color=MUTED)
    fig.tight_layout()
    return fig


def svg(fig) -> str:
    """The figure as an <svg> element (no XML prologue), then closed."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "dvd360"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def png(fig, path) -> None:
    """Write the figure as a PNG file (no timestamp in its metadata), then close it."""
    fig.savefig(path, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
