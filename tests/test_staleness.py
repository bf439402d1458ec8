"""Nothing goes stale, end to end on the tiny profile: the stage scripts' `main`s run in-process in
a copy of the repository, at the smallest settings, for prepare -> models -> caption -> flow ->
train@full -> generate@D -> score. Run again unchanged, every cache is reused and every output is
byte-identical; run with another dataset seed (`prepare.tiny.seed`), the captions, flows,
adapter, video and scores all change and no stage resumes anything."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from dvd360.code_deps import package_root
from dvd360.provenance import sha256_of
from repo_support import copy_repository

pytestmark = pytest.mark.slow

# The smallest run: 2 clips of 4 frames, captions on 32 px views, 2 training steps (both
# checkpointed), one prompt x one seed of method D with 1 sampling step and 2 frames.
SMALL = {
    "prepare": {"tiny": {"clips": 2, "frames": 4}},
    "caption": {"tiny": {"view_size": 32}},
    "train": {"tiny": {"frames": 2, "stride": 1, "steps": 2, "checkpoint_every": 2, "log_every": 1,
                       "validation_every": 0}},
    "generate": {"tiny": {"suite": "smoke", "steps": 1, "frames": 2, "condition_stride": 1, "decode_chunk_size": 2}},
    "score": {"common": {"bootstrap_resamples": 20},
              "tiny": {"set_bootstrap_resamples": 2, "reference": {"split": "all", "frames": 2, "stride": 1}}},
}
SMOKE = {"description": "One prompt on the first tiny clip.",
         "prompts": [{"id": "sea", "text": "a panoramic view of the sea", "condition": "00000"}]}
STAGES = (("prepare", ()), ("caption", ()), ("flow", ()), ("train", ("--variant", "full")), ("generate", ("D",)),
          ("score", ()))


def _edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _small_settings(params: dict) -> None:
    for stage, sections in SMALL.items():
        for section, values in sections.items():
            params[stage].setdefault(section, {}).update(values)


def _main(stage: str):
    """`main` of pipelines/{stage}.py (the work tree's script: the code under test)."""
    name = f"stage_{stage}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, package_root().parent / "pipelines" / f"{stage}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # pydantic resolves the settings models' annotations in their module
        spec.loader.exec_module(module)
    return sys.modules[name].main


def _run(stages, capsys, scored: list) -> dict:
    """Run the stages; what they printed and reported about reuse."""
    scored.clear()
    for stage, argv in stages:
        main = _main(stage)
        main(list(argv)) if argv else main()
    printed = capsys.readouterr().out
    captions = {**json.loads(Path("data/captions/report.json").read_text(encoding="utf-8")),
                **json.loads(Path("data/captions/report.run.json").read_text(encoding="utf-8"))}
    training = json.loads(Path("data/adapters/full/training.run.json").read_text(encoding="utf-8"))
    return {"printed": printed, "captions_resumed": captions["resumed"], "clips": captions["clips"],
            "training_resumed_from": training["resumed_from"], "videos_scored": sum(scored)}


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _outputs() -> dict[str, str]:
    """Content hashes of what the stages made, records included (what a run measured is in `*.run.json`)."""
    flows = json.loads(Path("data/flows/index.json").read_text(encoding="utf-8"))
    scores = json.loads(Path("data/scores/D.json").read_text(encoding="utf-8"))
    return {
        "dataset": sha256_of("data/web360"),
        "captions": _digest(*(sha256_of(f"data/captions/{name}") for name in ("fused.csv", "erp.csv", "report.json"))),
        "flows": _digest(flows, [sha256_of(entry[kind]) for entry in flows["clips"].values()
                                 for kind in ("flow_video", "flow_npz") if entry[kind]]),
        "adapter": _digest(sha256_of("data/adapters/full/adapter.safetensors"),
                           sha256_of("data/adapters/full/training.json")),
        "video": _digest(*(sha256_of(f"data/generations/D/sea-s0.{kind}") for kind in ("npz", "mp4", "json"))),
        "scores": _digest([r["metrics"] for r in scores["videos"]], scores["set_metrics"], scores["summary"]),
    }


def test_a_changed_dataset_seed_changes_everything_downstream_and_nothing_else_reruns(tmp_path, monkeypatch,
                                                                                     capsys):
    from dvd360.metrics.scoring import VideoScorer

    copy_repository(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    _edit_yaml(tmp_path / "params.yaml", _small_settings)
    _edit_yaml(tmp_path / "eval" / "prompts.yaml", lambda prompts: prompts["suites"].update(smoke=SMOKE))
    scored: list[int] = []
    score_sharded = VideoScorer.score_sharded

    def counting(self, jobs, *args, **kwargs):
        scored.append(len(jobs))
        return score_sharded(self, jobs, *args, **kwargs)

    monkeypatch.setattr(VideoScorer, "score_sharded", counting)

    first = _run((("models", ()), *STAGES), capsys, scored)
    made = _outputs()
    assert (first["captions_resumed"], first["training_resumed_from"], first["videos_scored"]) == (0, None, 1)
    assert "generate D: 1 generated, 0 kept" in first["printed"]

    again = _run(STAGES, capsys, scored)  # nothing changed: every cache is reused
    assert _outputs() == made
    assert again["captions_resumed"] == again["clips"] == 2
    assert again["training_resumed_from"] == 2  # the last checkpoint: no step is run again
    assert "generate D: 0 generated, 1 kept" in again["printed"]
    assert again["videos_scored"] == 0

    _edit_yaml(tmp_path / "params.yaml", lambda params: params["prepare"]["tiny"].update(seed=7))
    reseeded = _run(STAGES, capsys, scored)
    changed = _outputs()
    assert [name for name in made if changed[name] == made[name]] == []
    assert (reseeded["captions_resumed"], reseeded["training_resumed_from"], reseeded["videos_scored"]) == (0, None, 1)
    assert "generate D: 1 generated, 0 kept" in reseeded["printed"]
    assert "resuming from" not in reseeded["printed"]
