"""One scoring run's models, built once from typed settings: what `dvd360-eval score` and the
`score` stage share.

`Scorers.build(settings, reference)` loads the CLIP model, the quality models (MUSIQ and the
LAION head, when wanted) and, with a reference set, the set-metric scorer (I3D, Inception and
the reference's features); `run(jobs, load)` scores every job through the batched engine
(data-parallel under torchrun: rank 0 gets every result, in job order) while the set features
of `set_paths` are extracted beside it; `describe()` says which model, input and scale every
figure used, and `note` carries the warning every output made with random weights shows.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from pydantic import Field

from dvd360.data.flow_estimation import DEFAULT_METHOD, METHODS
from dvd360.data.protocol import ScoringProtocol
from dvd360.distributed import world
from dvd360.metrics.quality import QualityScorer
from dvd360.metrics.scoring import Scored, VideoInput, VideoScorer
from dvd360.metrics.set_scoring import SetScorer
from dvd360.models.clip_model import BATCH, PRECISIONS, load_clip
from dvd360.params_schema import Device, StrictModel

RANDOM_WEIGHTS_NOTE = ("tiny profile: random-weight models; these numbers exercise the pipeline and say "
                       "nothing about quality")
QUALITY_FOLDERS = ("musiq", "aesthetic")


class ScorerSetupError(ValueError):
    """A model of the scoring run could not be loaded; the message names the file or spec."""


class ScoringSettings(StrictModel):
    """How videos are scored (both entry points). `clip`: a CLIP folder or open_clip spec (None: no
    CLIP metrics); `features`: a features folder (i3d, inception, musiq, aesthetic: the `models`
    stage's, or the model store's `dvd360.models.scoring_models`); `quality`: the quality metrics on
    (True), off (False) or on when `features` holds their models (None)."""

    clip: str | None = Field(default=None, min_length=1)   # a CLIP folder or an open_clip spec ARCH/TAG
    features: str | None = None
    feature_cache: str | None = None
    device: Device = "auto"
    precision: Literal[("auto", *PRECISIONS)] = "auto"
    batch_size: int = Field(default=BATCH, gt=0)     # CLIP images per forward (fixed shape)
    workers: int = Field(default=1, ge=0)            # CPU processes decoding ahead (0: one per core)
    flow_method: Literal[METHODS] = DEFAULT_METHOD
    flow_options: dict[str, Any] | None = None
    keep_repeats: bool = False
    protocol: ScoringProtocol = ScoringProtocol()   # which frames every metric scores, at what size
    quality: bool | None = None
    seed: int = 0
    set_bootstrap_resamples: int = Field(default=200, gt=0)


@dataclass(frozen=True)
class ReferenceSet:
    """The set metrics' reference videos: every frame, or `frames` frames at `stride` from 0."""

    paths: Sequence[Path]
    source: str
    frames: int | None = None
    stride: int = 1


@dataclass
class Scorers:
    """The models of one scoring run (see module doc)."""

    settings: ScoringSettings
    video: VideoScorer
    sets: SetScorer | None

    @classmethod
    def build(cls, settings: ScoringSettings, reference: ReferenceSet | None = None,
              on_skip: Callable[[str], None] = print) -> "Scorers":
        """Load every model; `on_skip` hears why a default-on part (the quality metrics) is left out."""
        sets = None
        if reference is not None and world()[0] == 0:  # rank 0 computes the set metrics
            if settings.features is None:
                raise ScorerSetupError("the set metrics need the features folder (I3D, Inception)")
            try:
                sets = SetScorer(settings.features, settings.feature_cache, settings.device, seed=settings.seed,
                                 n_resamples=settings.set_bootstrap_resamples, protocol=settings.protocol)
                sets.use_reference(reference.paths, reference.frames, reference.stride, source=reference.source)
            except (OSError, ValueError) as error:
                raise ScorerSetupError(f"reference set {reference.source}: {error}") from error
        try:
            clip = None if settings.clip is None else load_clip(
                settings.clip, device=settings.device, precision=settings.precision, batch_size=settings.batch_size)
        except (OSError, RuntimeError, ValueError) as error:
            raise ScorerSetupError(f"CLIP model {settings.clip}: {error}") from error
        quality = _quality_scorer(settings, clip, on_skip)
        video = VideoScorer(clip, settings.flow_method, settings.flow_options, quality=quality)
        return cls(settings, video, sets)

    @property
    def random_weights(self) -> bool:
        """Whether any model of the run has random weights (then every output carries `note`)."""
        quality, clip = self.video.quality, self.video.clip
        return ((clip is not None and clip.random_weights) or (quality is not None and quality.random_weights)
                or (self.sets is not None and self.sets.random_weights))

    def note(self, profile: str | None = None) -> str | None:
        """The warning of outputs made with random weights (or by the tiny profile)."""
        return RANDOM_WEIGHTS_NOTE if profile == "tiny" or self.random_weights else None

    def run(self, jobs: Sequence[Any], load: Callable[[Any], VideoInput],
            set_paths: Sequence[str | Path] = ()) -> list[Scored] | None:
        """Every job scored (`VideoScorer.score_sharded`) while the set features of `set_paths`
        are extracted beside it; None on ranks other than 0."""
        beside = self.sets.started(list(set_paths)) if self.sets is not None else contextlib.nullcontext()
        with beside:
            return self.video.score_sharded(jobs, load, workers=self.settings.workers or os.cpu_count() or 1)

    def score_set(self, paths: Sequence[str | Path], desc: str = "set features") -> dict[str, dict]:
        """The set metrics of `paths` against the reference ({} without a reference set)."""
        return self.sets.score(paths, desc=desc) if self.sets is not None else {}

    def models(self) -> dict[str, dict]:
        """Every model of the run by registry name and sha256 (never by path), keyed by kind: clip,
        musiq, aesthetic, i3d, inception (those the run uses)."""
        from dvd360.models.clip_model import clip_identity
        from dvd360.models.feature_nets import feature_net_identity

        models = {} if self.settings.clip is None else {"clip": clip_identity(self.settings.clip)}
        if self.video.quality is not None:
            models.update({kind: feature_net_identity(folder) for kind, folder in self.video.quality.dirs.items()})
        if self.sets is not None:
            models.update({kind: feature_net_identity(folder) for kind, folder in self.sets.extractor.dirs.items()})
        return models

    def describe(self) -> dict[str, dict]:
        """{"models": `models()`, "metrics_info": per-video metrics, "set_metrics_info": set metrics
        (with a reference set)}."""
        info = {"models": self.models(), "metrics_info": self.video.describe()}
        for entry in info["metrics_info"].values():  # every figure's frames and size (its model may resample them)
            entry["protocol"] = self.settings.protocol.describe()
        if self.sets is not None:
            info["set_metrics_info"] = self.sets.describe()
        return info


def _quality_scorer(settings: ScoringSettings, clip, on_skip: Callable[[str], None]) -> QualityScorer | None:
    """The quality scorer, or None when not wanted (or, by default, when its models are missing)."""
    if settings.quality is False:
        return None
    if clip is None:  # the LAION head reads CLIP embeddings
        if settings.quality:
            raise ScorerSetupError("quality metrics: the aesthetic quality needs the CLIP model, which is missing")
        on_skip("quality metrics skipped: no CLIP model (the aesthetic quality reads its embeddings)")
        return None
    folders = [Path(settings.features or ".") / name for name in QUALITY_FOLDERS]
    missing = [str(folder) for folder in folders if settings.features is None or not folder.is_dir()]
    if missing:
        if settings.quality:
            raise ScorerSetupError(f"quality metrics: {', '.join(missing)} missing; give a features folder that "
                                   "holds them, or score through the model store (`dvd360-eval models list`)")
        on_skip(f"quality metrics skipped: {', '.join(missing)} missing")
        return None
    try:
        return QualityScorer(*folders, clip, settings.device)
    except (OSError, ValueError) as error:
        raise ScorerSetupError(f"quality metrics: {error}") from error
