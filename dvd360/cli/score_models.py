"""Which model folders `dvd360-eval score` loads: `--models store | tiny | DIR`, `--model`, `--features`.

- `store` (default): every model the run needs (CLIP; MUSIQ and the LAION head unless
  --no-quality; I3D and Inception with --reference) by registry name from the per-user model
  store, fetched on demand unless offline (`--offline` or HF_HUB_OFFLINE=1). Offline with something
  missing it stops before any compute, naming every missing model and the command that gets it;
  `--skip-missing` runs the metrics it can instead and lists what it skipped.
- `tiny`: the random-weight stand-ins (numbers that exercise the code and say nothing about
  quality; every output says so).
- DIR: a models folder of the `models` stage (DIR/clip, DIR/features).
`--model` (CLIP) and `--features` override the CLIP and the feature nets of any of these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dvd360.models.scoring_models import QUALITY_KINDS, SET_KINDS

MODES = ("store", "tiny")


class MissingModelsError(ValueError):
    """Scoring models are missing (offline, or their fetch failed): the message lists every one."""


@dataclass
class ScoreModels:
    """What `score` loads: the CLIP and features folders, whether the quality and set metrics run,
    and the registry models skipped (`--skip-missing`)."""

    clip: str | None
    features: str | None
    quality: bool | None
    reference: bool
    skipped: list[dict] = field(default_factory=list)


def missing_message(missing, store_root: Path, offline: bool) -> str:
    """One message naming every missing model, what it blocks and the command that gets it."""
    from dvd360.models.store import fetch_command

    why = "offline (--offline or HF_HUB_OFFLINE=1)" if offline else "could not be fetched"
    lines = [f"{len(missing)} scoring model(s) missing from the model store {store_root}, {why}; nothing scored:"]
    for model in missing:
        lines.append(f"- {model.entry.name} ({model.entry.title}): needed by {', '.join(model.entry.metrics)}; "
                     f"{model.reason}\n    get it: {model.command}")
    lines.append(f"get them all: {fetch_command(m.entry.name for m in missing)}")
    lines.append("or take files you already have: dvd360-eval models import DIR; or score without them: "
                 "--skip-missing; random-weight stand-ins only with --models tiny")
    return "\n".join(lines)


def resolve_score_models(models: str, clip: str | None, features: Path | None, quality: bool | None,
                         reference: bool, offline: bool, skip_missing: bool,
                         echo: Callable[[str], None]) -> ScoreModels:
    """The folders of one `score` run (see module doc); raises MissingModelsError or ValueError."""
    from dvd360.hub import offline as hub_offline
    from dvd360.models.store import Store

    given_features = None if features is None else str(features)
    if models == "tiny":
        from dvd360.models.scoring_models import tiny_scoring_models

        tiny_clip, tiny_features = tiny_scoring_models(Store().root)
        return ScoreModels(clip or tiny_clip, given_features or tiny_features, quality, reference)
    if models != "store":
        folder = Path(models)
        if not folder.is_dir():
            raise ValueError(f"--models {models}: neither store, tiny nor a models folder")
        return ScoreModels(clip or str(folder / "clip"), given_features or str(folder / "features"), quality,
                           reference)
    kinds = [] if clip is not None else ["clip"]
    if features is None:
        kinds += list(QUALITY_KINDS) if quality is not False else []
        kinds += list(SET_KINDS) if reference else []
    if not kinds:
        return ScoreModels(clip, given_features, quality, reference)
    from dvd360.models.scoring_models import resolve_scoring_models

    store, offline = Store(), offline or hub_offline()
    resolved = resolve_scoring_models(tuple(kinds), store, offline, log=echo)
    if resolved.missing and not skip_missing:
        raise MissingModelsError(missing_message(resolved.missing, store.root, offline))
    skipped = [m.describe() for m in resolved.missing]
    for item in skipped:
        echo(f"skipped (--skip-missing): {item['model']} missing, so no {', '.join(item['metrics'])}; "
             f"get it: {item['fetch']}")
    clip = clip or resolved.clip
    if features is None:
        have = set(resolved.kinds)
        if quality is not False:
            quality = set(QUALITY_KINDS) <= have and clip is not None
        reference = reference and set(SET_KINDS) <= have
    return ScoreModels(clip, given_features or resolved.features, quality, reference, skipped)
