"""The model registry (dvd360/models/registry.yaml): one list of models, read by everything else."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from dvd360.metrics.registry import METRICS, SET_METRICS, names_needing
from dvd360.models.registry import REGISTRY_FILE, SCORER_KINDS, Registry, load_registry
from dvd360.models.store import HashMismatchError, check_file


def test_every_metric_named_exists_and_every_model_metric_is_covered():
    registry = load_registry()
    for entry in registry.models.values():
        assert set(entry.metrics) <= set(METRICS), entry.name
    assert set(names_needing("clip")) <= set(registry.scorer("clip").metrics)
    quality = set(names_needing("quality_models"))
    assert {m for m in quality if m.startswith("imaging")} == set(registry.scorer("musiq").metrics)
    assert {m for m in quality if m.startswith("aesthetic")} == set(registry.scorer("aesthetic").metrics)
    for name, spec in SET_METRICS.items():  # every set metric names the network its features come from
        features = (spec.features,) if isinstance(spec.features, str) else spec.features
        for kind in {f.split("_")[0] for f in features}:
            assert name in registry.scorer(kind).metrics, (name, kind)


def test_one_scorer_per_kind_and_a_model_for_every_paper_piece():
    from dvd360.config import load_params

    registry = load_registry()
    assert sorted(e.kind for e in registry.models.values() if e.role == "scorer") == sorted(SCORER_KINDS)
    paper = load_params()["models"]["paper"]
    pieces = [p for p in paper if p not in ("seed", "motion_adapter_config", "personalised")]
    pieces += [f"personalised.{name}" for name in paper["personalised"]]
    assert all(registry.by_piece(piece) is not None for piece in pieces), pieces


def test_the_stage_and_the_feature_nets_read_their_files_from_the_registry():
    from dvd360.models import feature_nets, materialize

    registry = load_registry()
    assert feature_nets.PAPER_FILES == {kind: registry.scorer(kind).files[0].path for kind in feature_nets.KINDS}
    assert set(materialize.SD_FILES) <= {f.path for f in registry["sd15"].files} == set(materialize.SD_PATTERNS)
    assert materialize.MOTION_FILES == tuple(f.path for f in registry["motion_adapter_v14"].files)
    assert "dvd360-eval models fetch musiq_spaq" in materialize.where("musiq")


def test_published_hashes_are_where_their_sources_say():
    registry = load_registry()
    clip = registry.scorer("clip").files[0]
    assert clip.sha256 in clip.urls[0]  # OpenAI's URL embeds the file's sha256
    for entry in registry.models.values():
        for spec in entry.files:
            assert spec.check == "unverified" or spec.hash_source or spec.check == "hub_published", spec.path
            if spec.sha256_prefix:
                assert f"-{spec.sha256_prefix}." in spec.path and all(spec.sha256_prefix in u for u in spec.urls)
    assert registry.scorer("musiq").files[0].check == "sha256_prefix"
    assert registry.scorer("i3d").files[0].check == "git_blob_sha1"


def test_the_registry_refuses_what_it_cannot_check():
    data = yaml.safe_load(REGISTRY_FILE.read_text())
    bad_prefix = {"models": {"x": {**data["models"]["musiq_spaq"], "files": [
        {"path": "musiq-358bb6af.pth", "sha256_prefix": "0badc0de", "hash_source": "t", "urls": ["u"]}]}}}
    with pytest.raises(ValidationError, match="not the file name's hash suffix"):
        Registry(**bad_prefix)
    no_source = {"models": {"x": {**data["models"]["musiq_spaq"], "files": [
        {"path": "f.pth", "sha256": "0" * 64, "urls": ["u"]}]}}}
    with pytest.raises(ValidationError, match="needs hash_source"):
        Registry(**no_source)
    unknown_key = {"models": {"x": {**data["models"]["musiq_spaq"], "weights": "?"}}}
    with pytest.raises(ValidationError):
        Registry(**unknown_key)


def test_a_prefix_is_checked_against_the_start_of_the_sha256():
    spec = load_registry().scorer("inception").files[0]
    assert check_file(spec, "6726825d" + "0" * 56, "0" * 40, 10) == "sha256_prefix"
    with pytest.raises(HashMismatchError, match="a sha256 starting 6726825d"):
        check_file(spec, "6726825e" + "0" * 56, "0" * 40, 10)
