"""The metric audit: what each metric sees and ignores, measured on the user's own reference videos.

Every reference video is read by the scoring protocol (`data.protocol.read_video`: the frames
and working size every metric sees) and scored clean and with each defect of `dvd360.data.defects`
at its 3 strengths applied to those frames, by one `Scorers` (the models and feature cache of
`score`); repeated frames are dropped from each copy as scoring drops them (`data.repeats`). The
set metrics compare half of the copies with the other half of the clean videos. Per metric,
defect and strength:

- per-video metrics: d_k = m(defective_k) - m(clean_k); the change is mean(d) with its 95%
  bootstrap CI over videos (`stats.summarize`); the spread s is the std (ddof 1) of m(clean) over
  the reference videos, and the effect mean(d) / s (CI likewise).
- set metrics (one value per set): the even-numbered clean videos are the reference, the
  odd-numbered are compared clean and defective, d = M(defective half) - M(clean half); its CI
  from a paired bootstrap over videos, s the std of the clean half's value over the draws (its
  sampling noise at this n). KID is left out (`NOT_KID`).
- moved: the interval excludes 0 and |effect| >= TOLERANCE (without a spread, s = 0 or n < 2:
  mean(d) != 0); worse: the mean change of the rank key (`MetricSpec.rank_key`: x, -x or
  |ln(x / t)|) is positive. Verdict for a defect expected to make videos "worse": "sees" (moved,
  worse), "wrong way" (moved, better) or "ignores"; for one that should leave the metric
  "invariant": "holds" (not moved) or "broken". `per_video` = sqrt(mean(d^2)) / s says how far
  single videos move even when the mean does not (a metric reading one column pair under a roll).

The summary per metric lists the defects it sees at the strongest strength, those it moves the
wrong way at any strength, those it ignores, and whether each invariance holds at all three.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from dvd360.atomic import atomic_path, write_json, write_text
from dvd360.data.defects import DEFECTS, apply_defect
from dvd360.data.detections import repeats_detection
from dvd360.data.protocol import read_video
from dvd360.data.repeats import detect_repeats, drop_repeats
from dvd360.metrics.registry import METRICS, SET_METRIC_NAMES, VIDEO_METRICS, names_needing
from dvd360.metrics.scorers import Scorers
from dvd360.metrics.scoring import VideoInput
from dvd360.metrics.set_metrics import kid_set_metric, set_metrics
from dvd360.stats import N_RESAMPLES, summarize

TOLERANCE = 0.2  # spreads: smaller changes count as none
NOT_FLOW = "needs each video's conditioning flow, which reference videos lack"
NOT_KID = ("left out: one KID (100 subsets) takes seconds, too slow to bootstrap per defect and strength; the FID on "
           "the same features is audited")


@dataclass(frozen=True)
class AuditVideo:
    """A reference video: its file and prompt (for CLIP similarity)."""

    path: Path
    prompt: str | None = None


def variants(defects: Sequence[str]) -> list[tuple[str, float] | None]:
    """None (the clean video), then (defect, strength) for each defect's 3 strengths."""
    return [None] + [(name, s) for name in defects for s in DEFECTS[name].strengths]


def _seed(seed: int, video: int, variant: tuple[str, float]) -> int:
    name, strength = variant
    spec = [seed, video, list(DEFECTS).index(name), DEFECTS[name].strengths.index(strength)]
    return int(np.random.SeedSequence(spec).generate_state(1)[0])


def _scored(frames: np.ndarray, detections: dict, keep_repeats: bool) -> tuple[np.ndarray, dict]:
    """A copy's frames as scoring sees them: repeats dropped unless kept; its repeats detection."""
    info = detect_repeats(frames)
    kept = frames if keep_repeats else drop_repeats(frames, info)
    return kept, {**detections, "repeats": repeats_detection(info, keep_repeats)}


def score_variants(videos: Sequence[AuditVideo], scorers: Scorers, defects: Sequence[str], *, seed: int = 0,
                   on_video: Callable[[int], None] = lambda k: None) -> tuple[dict, dict]:
    """({(video, variant): metrics}, {variant: set features per video}) of every video clean and
    defective, read by the scorers' protocol (set features only when they have a set scorer)."""
    listed = variants(defects)
    features: dict = {}
    protocol, keep_repeats = scorers.settings.protocol, scorers.settings.keep_repeats

    def jobs():
        for k, video in enumerate(videos):
            clean = read_video(video.path, protocol, keep_repeats)
            for variant in listed:
                frames = clean.frames if variant is None else apply_defect(clean.frames, *variant,
                                                                           seed=_seed(seed, k, variant))
                if scorers.sets is not None:
                    features.setdefault(variant, []).append(scorers.sets.extractor.features(frames))
                kept, detections = _scored(frames, clean.detections, keep_repeats)
                yield (k, variant), VideoInput(kept, video.prompt, None, detections)
            on_video(k)

    values = {scored.job[0]: scored.result["metrics"] for scored in
              scorers.video.score_stream(jobs(), itemgetter(1), workers=1)}
    return values, features


def _verdict(expect: str, interval: tuple[float, float], mean: float, worse: bool, spread: float | None) -> str:
    moved = (interval[0] > 0 or interval[1] < 0) and mean != 0 and abs(mean) >= TOLERANCE * (spread or 0.0)
    if expect == "invariant":
        return "broken" if moved else "holds"
    return ("sees" if worse else "wrong way") if moved else "ignores"


def _cell(defect: str, strength: float, delta: dict, rank_change: float, spread: float | None,
          per_video: float | None = None) -> dict:
    interval = (delta["ci_low"], delta["ci_high"]) if delta["ci_low"] is not None else (delta["mean"],) * 2
    worse = rank_change > 0
    verdict = _verdict(DEFECTS[defect].expect, interval, delta["mean"], worse, spread)
    scale = spread if spread else None
    return {"strength": strength, "delta": delta, "spread": spread,
            "effect": None if scale is None else delta["mean"] / scale,
            "effect_ci": None if scale is None else [interval[0] / scale, interval[1] / scale],
            "per_video": None if scale is None or per_video is None else per_video / scale,
            "worse": worse if verdict in ("sees", "wrong way", "broken") else None, "verdict": verdict,
            "right_way": {"sees": True, "holds": True, "wrong way": False, "broken": False}.get(verdict)}


def _video_effects(name: str, values: Mapping, n_videos: int, defects: Sequence[str], seed: int,
                   n_resamples: int) -> tuple[dict, dict]:
    spec = METRICS[name]
    clean = [values[(k, None)].get(name) for k in range(n_videos)]
    finite = [v for v in clean if v is not None]
    spread = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    info = {"kind": "video", "better": spec.better, "clean": summarize(finite, seed=seed, n_resamples=n_resamples),
            "spread": spread, "spread_of": "std of the clean values over the reference videos"}
    effects = {}
    for defect in defects:
        cells = []
        for strength in DEFECTS[defect].strengths:
            pairs = [(values[(k, (defect, strength))].get(name), clean[k]) for k in range(n_videos)]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            if not pairs:
                cells.append({"strength": strength, "verdict": "not computed"})
                continue
            changes = np.array([a - b for a, b in pairs])
            rank_change = float(np.mean([spec.rank_key(a) - spec.rank_key(b) for a, b in pairs]))
            cells.append(_cell(defect, strength, summarize(changes, seed=seed, n_resamples=n_resamples), rank_change,
                               spread, float(np.sqrt(np.mean(changes ** 2)))))
        effects[defect] = cells
    return info, effects


def _set_value(name: str, compared: Sequence[dict], reference: Sequence[dict], seed: int,
               draw: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The set metric of `compared` against `reference` (a bootstrap draw: their videos at the
    drawn indices), without its own bootstrap."""
    if draw is not None:
        reference, compared = [reference[i] for i in draw[0]], [compared[i] for i in draw[1]]
    return set_metrics(compared, reference, seed=seed, n_resamples=0, names=[name])[name]


def _set_effects(name: str, features: Mapping, defects: Sequence[str], seed: int,
                 n_resamples: int) -> tuple[dict, dict]:
    """Set metrics on two halves of the clean videos: the even-numbered are the reference R, the
    odd-numbered are compared, clean (B) and defective (B'): d = M(B', R) - M(B, R), its CI from a
    paired bootstrap over videos (the same draw for B and B'), s = the std of M(B, R) over the draws."""
    spec = METRICS[name]
    reference, clean = features[None][0::2], features[None][1::2]
    rng = np.random.default_rng(seed)
    draws = [(rng.integers(0, len(reference), len(reference)), rng.integers(0, len(clean), len(clean)))
             for _ in range(n_resamples)]
    base = _set_value(name, clean, reference, seed)["value"]
    base_draws = np.array([_set_value(name, clean, reference, seed, draw)["value"] for draw in draws])
    spread = float(np.std(base_draws, ddof=1)) if len(draws) > 1 else None
    info = {"kind": "set", "better": spec.better, "spread": spread or None,
            "clean": {"mean": base, "n": len(clean), "n_reference": len(reference)},
            "spread_of": f"std of the clean half's value over {n_resamples} bootstrap draws of videos"}
    effects = {}
    for defect in defects:
        cells = []
        for strength in DEFECTS[defect].strengths:
            compared = features[(defect, strength)][1::2]
            value = _set_value(name, compared, reference, seed)["value"]
            paired = np.array([_set_value(name, compared, reference, seed, draw)["value"] for draw in draws])
            low, high = (float(q) for q in np.quantile(paired - base_draws, [0.025, 0.975]))
            delta = {"mean": value - base, "ci_low": low, "ci_high": high, "n": len(compared)}
            cells.append(_cell(defect, strength, delta, spec.rank_key(value) - spec.rank_key(base), spread or None))
        effects[defect] = cells
    return info, effects


def summary(effects: Mapping[str, list[dict]]) -> dict:
    """{"sees", "wrong_way", "ignores": [defects], "invariant": {defect: holds at every strength},
    "per_video": {invariance defect: the largest per-video move in spreads, where measured}}."""
    out = {"sees": [], "wrong_way": [], "ignores": [], "invariant": {}, "per_video": {}}
    for defect, cells in effects.items():
        verdicts = [c["verdict"] for c in cells]
        if "not computed" in verdicts:
            continue
        if DEFECTS[defect].expect == "invariant":
            out["invariant"][defect] = all(v == "holds" for v in verdicts)
            moves = [c["per_video"] for c in cells if c.get("per_video") is not None]
            if moves:
                out["per_video"][defect] = max(moves)
        elif "wrong way" in verdicts:
            out["wrong_way"].append(defect)
        elif verdicts[-1] == "sees":
            out["sees"].append(defect)
        else:
            out["ignores"].append(defect)
    return out


def run_audit(videos: Sequence[AuditVideo], scorers: Scorers, defects: Sequence[str] = tuple(DEFECTS), *,
              source: str = "", seed: int = 0, n_resamples: int = N_RESAMPLES,
              on_video: Callable[[int], None] = lambda k: None) -> dict:
    """The audit of `videos` (at least 2) with `scorers` (their protocol and repeat setting; with a
    set scorer, the set metrics too): {"note", "reference", "protocol", "tolerance", "defects",
    "metrics", "effects", "summary", "not_computed", "metrics_info", "seconds"} (see module doc)."""
    if len(videos) < 2:
        raise ValueError(f"the audit needs at least 2 reference videos (a spread), got {len(videos)}")
    unknown = [d for d in defects if d not in DEFECTS]
    if unknown:
        raise KeyError(f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(DEFECTS)}")
    start = time.perf_counter()
    values, features = score_variants(videos, scorers, defects, seed=seed, on_video=on_video)
    metrics, effects, not_computed = {}, {}, {}
    for name in VIDEO_METRICS:
        if any(name in values[(k, None)] for k in range(len(videos))):
            metrics[name], effects[name] = _video_effects(name, values, len(videos), defects, seed, n_resamples)
        else:
            not_computed[name] = NOT_FLOW if name in names_needing("reference_flow") else \
                "this run's scorers did not compute it (model missing or turned off, or no prompts)"
    for name in SET_METRIC_NAMES:
        if not features:
            not_computed[name] = "set metrics not asked for (`dvd360-eval audit --set-metrics`)"
        elif len(videos) < 4:
            not_computed[name] = "needs at least 4 reference videos (two halves of 2)"
        elif METRICS[name].function() is kid_set_metric:
            not_computed[name] = NOT_KID
        else:
            metrics[name], effects[name] = _set_effects(name, features, defects, scorers.sets.seed,
                                                        scorers.sets.n_resamples)
    for name in not_computed:
        effects[name] = {d: [{"strength": s, "verdict": "not computed"} for s in DEFECTS[d].strengths]
                         for d in defects}
    return {"note": scorers.note(),
            "reference": {"source": source, "videos": len(videos), "paths": [str(v.path) for v in videos]},
            "protocol": scorers.settings.protocol.describe(),
            "tolerance": TOLERANCE, "keep_repeats": scorers.settings.keep_repeats,
            "bootstrap": {"seed": seed, "resamples": n_resamples, "confidence": 0.95},
            "defects": {d: {"strengths": list(DEFECTS[d].strengths), "unit": DEFECTS[d].unit,
                            "expect": DEFECTS[d].expect} for d in defects},
            "metrics": metrics, "effects": effects, "summary": {name: summary(effects[name]) for name in metrics},
            "not_computed": not_computed, "metrics_info": scorers.describe(),
            "seconds": round(time.perf_counter() - start, 1)}


def write_audit(audit: Mapping, out_dir: str | Path) -> list[Path]:
    """audit.json, audit.txt and audit.png (the heat map) under out_dir."""
    from dvd360.report.audit_view import render_text
    from dvd360.report.figures import audit_figure, png

    out_dir = Path(out_dir)
    written = [write_json(out_dir / "audit.json", audit), write_text(out_dir / "audit.txt", render_text(audit))]
    with atomic_path(out_dir / "audit.png") as tmp:
        png(audit_figure(audit), tmp)
    return written + [out_dir / "audit.png"]
