"""The paper's Table 1 from answer files: vote shares with bootstrap CIs, Bradley-Terry-Luce strengths.

Votes: every counted rater r, prompt set s (repeats of the attention check left out) and
criterion c gives one vote v(r, s, c) = the chosen method.

- Share of method m on criterion c, in percent: the mean over raters of each rater's share
      share_c(m) = 100 * mean_r [ #{s : v(r, s, c) = m} / #{s} ],
  i.e. every rater weighs the same; with equal packet sizes (our packets) it equals the
  pooled share of votes, which is what the paper's Table 1 reports (31 raters x 8 sets).
  95% CI: percentile bootstrap over raters (`dvd360.stats.summarize`, seeded).
- Strength: the Bradley-Terry model extended to a choice among all M videos (Luce's choice
  model, "top-1" data): P(m chosen | set) = exp(theta_m) / sum_k exp(theta_k). Fitted by
  `choix.ilsr_top1` with a small L2-like regularisation `alpha` so that a never-chosen
  method keeps a finite theta; thetas are centred (mean 0). `p_first` = that softmax.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import choix
import numpy as np

from dvd360.atomic import write_json, write_text
from dvd360.stats import N_RESAMPLES, summarize
from dvd360.study.answers import AcceptedAnswers, StudyKey, load_key, validate_answer_files
from dvd360.study.definition import StudyDefinition, load_study_definition
from dvd360.study.render import template_environment

RESULT_SCHEMA = "dvd360-study-table1/1"
BTL_ALPHA = 0.01
TINY_NOTE = ("Profile tiny: the videos come from small random-weight models; these numbers exercise the "
             "pipeline and say nothing about the methods' quality.")


class NoValidAnswers(ValueError):
    """Every answer file was excluded; the message lists each file and its reason."""


def vote_counts(accepted: Sequence[AcceptedAnswers], key: StudyKey) -> np.ndarray:
    """counts[r, c, m]: how often rater r chose method m on criterion c (repeated sets left out)."""
    counts = np.zeros((len(accepted), len(key.criteria), len(key.methods)), dtype=np.int64)
    for r, entry in enumerate(accepted):
        packet = key.packets[entry.packet_id]
        for set_id, chosen in entry.choices.items():
            if packet.sets[set_id].repeat_of:
                continue
            for c, criterion in enumerate(key.criteria):
                counts[r, c, key.methods.index(chosen[criterion])] += 1
    return counts


def vote_shares(counts: np.ndarray, key: StudyKey, *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> dict:
    """{criterion: {method: {"pct", "ci_low", "ci_high", "votes"}}} from `vote_counts`."""
    per_rater = 100.0 * counts / counts.sum(axis=2, keepdims=True)
    table = {}
    for c, criterion in enumerate(key.criteria):
        row = {}
        for m, method in enumerate(key.methods):
            summary = summarize(per_rater[:, c, m], seed=seed, n_resamples=n_resamples)
            row[method] = {"pct": summary["mean"], "ci_low": summary["ci_low"], "ci_high": summary["ci_high"],
                           "votes": int(counts[:, c, m].sum())}
        table[criterion] = row
    return table


def _fit_btl(winners: list[tuple[int, tuple[int, ...]]], methods: Sequence[str], alpha: float) -> dict:
    theta = choix.ilsr_top1(len(methods), winners, alpha=alpha)
    theta = theta - theta.mean()
    p_first = np.exp(theta) / np.exp(theta).sum()
    return {method: {"theta": float(t), "p_first": float(p)} for method, t, p in zip(methods, theta, p_first)}


def bradley_terry(accepted: Sequence[AcceptedAnswers], key: StudyKey, alpha: float = BTL_ALPHA) -> dict:
    """Luce-choice (multi-way Bradley-Terry) strengths per criterion and over all criteria ("all")."""
    by_criterion: dict[str, list] = {criterion: [] for criterion in key.criteria}
    everything = np.arange(len(key.methods))
    for entry in accepted:
        packet = key.packets[entry.packet_id]
        for set_id, chosen in entry.choices.items():
            if packet.sets[set_id].repeat_of:
                continue
            for criterion in key.criteria:
                winner = key.methods.index(chosen[criterion])
                by_criterion[criterion].append((winner, tuple(int(i) for i in everything if i != winner)))
    strengths = {criterion: _fit_btl(data, key.methods, alpha) for criterion, data in by_criterion.items()}
    strengths["all"] = _fit_btl([vote for data in by_criterion.values() for vote in data], key.methods, alpha)
    return strengths


def aggregate(answer_paths: Sequence[str | Path], key_path: str | Path, *, seed: int = 0,
              n_resamples: int = N_RESAMPLES, alpha: float = BTL_ALPHA, paper: bool = False,
              definition: StudyDefinition | None = None) -> dict:
    """Validate every answer file against the key, then compute Table 1 and the strengths.

    Raises NoValidAnswers when no file survives validation (listing every reason).
    """
    key = load_key(key_path)
    definition = definition or load_study_definition()
    accepted, excluded = validate_answer_files(answer_paths, key)
    if not accepted:
        reasons = "\n".join(f"  {e.path}: {e.reason}" for e in excluded) or "  (no files given)"
        raise NoValidAnswers(f"no answer file can be counted:\n{reasons}")
    counts = vote_counts(accepted, key)
    names = {criterion.id: criterion.name for criterion in definition.criteria}
    result = {
        "schema": RESULT_SCHEMA,
        "profile": key.profile,
        "build_id": key.build_id,
        "note": TINY_NOTE if key.profile == "tiny" else None,
        "methods": key.methods,
        "criteria": [{"id": c, "name": names.get(c, c)} for c in key.criteria],
        "raters": len(accepted),
        "sets_per_rater": sorted({int(n) for n in counts[:, 0, :].sum(axis=1)}),
        "votes_per_criterion": int(counts[:, 0, :].sum()),
        "share_pct": vote_shares(counts, key, seed=seed, n_resamples=n_resamples),
        "bootstrap": {"unit": "rater", "method": "percentile", "confidence": 0.95,
                      "n_resamples": n_resamples, "seed": seed},
        "bradley_terry": {"model": "Luce choice (multi-way Bradley-Terry), choix.ilsr_top1", "alpha": alpha,
                          "strength": bradley_terry(accepted, key, alpha)},
        "included": [{"file": str(e.path), "packet_id": e.packet_id, "rater_id": e.rater_id,
                      "exported_at": e.exported_at.isoformat(), "attention": e.attention} for e in accepted],
        "excluded": [{"file": str(e.path), "reason": e.reason} for e in excluded],
        "paper_table1": definition.paper_table1 if paper else None,
    }
    return result


def _cell(entry: dict) -> str:
    if entry["ci_low"] is None:
        return f"{entry['pct']:.1f}"
    return f"{entry['pct']:.1f} [{entry['ci_low']:.1f}, {entry['ci_high']:.1f}]"


def table_rows(result: dict) -> list[dict]:
    """Per method: its share cells (with the paper's value when asked) and strength cells, as text."""
    paper = (result.get("paper_table1") or {}).get("share_pct", {})
    strength = result["bradley_terry"]["strength"]
    rows = []
    for method in result["methods"]:
        shares = []
        for criterion in result["criteria"]:
            text = _cell(result["share_pct"][criterion["id"]][method])
            if paper:
                reference = paper.get(criterion["id"], {}).get(method)
                text += f" · paper {reference:.1f}" if reference is not None else " · paper –"
            shares.append(text)
        strengths = [f"{strength[c][method]['p_first']:.2f} ({strength[c][method]['theta']:+.2f})"
                     for c in [criterion["id"] for criterion in result["criteria"]] + ["all"]]
        rows.append({"method": method, "shares": shares, "strengths": strengths})
    return rows


def render_markdown(result: dict) -> str:
    """Table 1 (shares with CIs, optionally the paper's values), the strengths, and the exclusions."""
    names = [criterion["name"] for criterion in result["criteria"]]
    rows = table_rows(result)
    lines = ["# User study: Table 1", "",
             f"{result['raters']} raters counted, {len(result['excluded'])} answer files excluded; "
             f"{', '.join(map(str, result['sets_per_rater']))} prompt sets per rater, "
             f"{result['votes_per_criterion']} votes per criterion (profile {result['profile']}, "
             f"build {result['build_id']}).", ""]
    if result["note"]:
        lines += [f"> {result['note']}", ""]
    paper = result.get("paper_table1")
    lines += ["## Share of votes per method (%), 95% CI by bootstrap over raters", ""]
    if paper:
        lines += [f"Beside each value: the paper's Table 1 ({paper.get('raters')} raters, "
                  f"{paper.get('prompt_sets')} prompt sets).", ""]
    lines += ["| Method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {row['method']} | " + " | ".join(row["shares"]) + " |" for row in rows]
    lines += ["", "## Bradley-Terry-Luce strength: P(chosen among all) (theta)", "",
              "| Method | " + " | ".join(names) + " | All criteria |", "|---" * (len(names) + 2) + "|"]
    lines += [f"| {row['method']} | " + " | ".join(row["strengths"]) + " |" for row in rows]
    if result["excluded"]:
        lines += ["", "## Excluded answer files", ""]
        lines += [f"- `{entry['file']}`: {entry['reason']}" for entry in result["excluded"]]
    return "\n".join(lines) + "\n"


def render_html(result: dict) -> str:
    """The same report as a standalone HTML page (jinja2, autoescaped)."""
    return template_environment().get_template("report.html").render(result=result, rows=table_rows(result))


def write_reports(result: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write table1.{md,json,html} into `out_dir` atomically; returns their paths."""
    out_dir = Path(out_dir)
    return {"markdown": write_text(out_dir / "table1.md", render_markdown(result)),
            "json": write_json(out_dir / "table1.json", result),
            "html": write_text(out_dir / "table1.html", render_html(result))}
