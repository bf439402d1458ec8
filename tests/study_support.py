"""Test inputs for the user-study tests: tiny generations, synthetic answer files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from dvd360.data.video import write_video
from dvd360.study.answers import ANSWERS_SCHEMA, answers_digest, answers_mac
from dvd360.study.packets import answer_token

HOSTILE_PROMPT = "a <script>alert(\"x\")</script> 'quoted' & \"double\" scène — 雪山 </q>"


def panorama_frames(method_index: int, prompt_index: int, frames: int = 4, height: int = 32,
                    width: int = 64) -> np.ndarray:
    """A moving, colourful ERP test clip (never one colour, so the 360 viewer's output can be checked)."""
    video = np.zeros((frames, height, width, 3), np.uint8)
    video[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, None, :]
    video[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[None, :, None]
    video[..., 2] = 60 * method_index + 20 * prompt_index
    for t in range(frames):
        start = (t * 6) % (width - 8)
        video[t, height // 4: height // 2, start:start + 8] = 255
    return video


def write_generations(root: Path, methods=("A", "B", "C", "D"), prompts=None, seeds=(0,)) -> Path:
    """The generate stage's layout: root/{method}/{prompt_id}-s{seed}.mp4 + .json."""
    prompts = prompts or {"p00": "a quiet beach at sunset", "p01": HOSTILE_PROMPT}
    for m, method in enumerate(methods):
        for p, (prompt_id, prompt) in enumerate(prompts.items()):
            for seed in seeds:
                stem = root / method / f"{prompt_id}-s{seed}"
                write_video(stem.with_suffix(".mp4"), panorama_frames(m, p), fps=8)
                stem.with_suffix(".json").write_text(json.dumps(
                    {"method": method, "prompt": prompt, "prompt_id": prompt_id, "seed": seed}), encoding="utf-8")
    return root


def answer_document(key: dict, packet_id: str, choose: Callable[[str, str], str],
                    exported_at: datetime | None = None) -> dict:
    """A valid answer file for `packet_id`: `choose(set_id, criterion)` names the chosen *method*."""
    packet = key["packets"][packet_id]
    start = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    answers = {}
    for s, (set_id, key_set) in enumerate(packet["sets"].items()):
        label_of = {method: label for label, method in key_set["labels"].items()}
        answers[set_id] = {criterion: {"label": label_of[choose(set_id, criterion)],
                                       "answered_at": (start + timedelta(minutes=s)).isoformat()}
                           for criterion in key["criteria"]}
    exported = exported_at or start + timedelta(hours=1)
    return sign_answers(key, {"schema": ANSWERS_SCHEMA, "packet_id": packet_id, "rater_id": packet["rater_id"],
                              "mapping_checksum": packet["mapping_checksum"], "started_at": start.isoformat(),
                              "updated_at": exported.isoformat(), "exported_at": exported.isoformat(),
                              "user_agent": "test", "answers": answers})


def sign_answers(key: dict, document: dict, token_of: str | None = None) -> dict:
    """Set `answers_sha256` and `answers_mac` as study.js does on export, with the answer token of
    packet `token_of` (default: the document's own packet)."""
    secret = key["packets"][token_of or document["packet_id"]]["secret"]
    token = answer_token(token_of or document["packet_id"], secret)
    return {**document, "answers_sha256": answers_digest(document["answers"]),
            "answers_mac": answers_mac(token, document["packet_id"], document["rater_id"],
                                       document["mapping_checksum"], document["answers"])}
