"""Answer files and the key: their schemas, checksums, and every check made before counting.

An answer file (written by study.js, schema `dvd360-study-answers/2`) holds the packet id,
rater id, the packet's `mapping_checksum`, timestamps, `answers[set_id][criterion] =
{label, answered_at}`, `answers_sha256` = SHA-256 of the canonical JSON of `answers`, and
`answers_mac` = HMAC-SHA256 keyed by the packet's answer token (`packets.answer_token`,
written only into that packet's pages, never into the file) of the canonical JSON of
{packet_id, rater_id, mapping_checksum, answers}.

A file is accepted only when it is at most `MAX_ANSWER_BYTES` and `MAX_JSON_DEPTH` deep
(both checked before parsing), valid JSON without NaN/Infinity, of that schema, its answers
hash to `answers_sha256` (edited or damaged files fail), its packet is in the key with the
same rater and mapping checksum, `answers_mac` verifies with that packet's token (a file
exported from one packet and relabelled with another packet's id, rater and checksum fails:
forging it needs the other packet's pages), it names only the packet's sets, criteria and
labels, it answers every question, and it passes the attention check: each repeated set
must pick the same method as its original on at least `min_agree` criteria. Of several
accepted files for one packet the latest export counts. Nothing here can stop a rater from
changing their own answers (their pages hold their token).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Sequence

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from dvd360.inputs import InputError, read_json
from dvd360.study.packets import KEY_SCHEMA, answer_token, canonical_json, mapping_checksum

ANSWERS_SCHEMA = "dvd360-study-answers/2"
HEX64 = r"^[0-9a-f]{64}$"
MAX_ANSWER_BYTES = 2**20  # a real answer file is a few kB (sets x criteria x ~80 bytes)
MAX_KEY_BYTES = 64 * 2**20
MAX_JSON_DEPTH = 16  # answer files nest 4 levels, key files 6


class StudyKeyError(ValueError):
    """A key file that is missing, malformed or inconsistent; the message names the file."""


class AnswerFileError(ValueError):
    """Why one answer file cannot be counted; `str()` names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Answer(_Strict):
    label: str
    answered_at: AwareDatetime


class AnswerDocument(_Strict):
    schema_: Literal[ANSWERS_SCHEMA] = Field(alias="schema")
    packet_id: str
    rater_id: str
    mapping_checksum: str = Field(pattern=HEX64)
    started_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    exported_at: AwareDatetime
    user_agent: str = ""
    answers: dict[str, dict[str, Answer]]
    answers_sha256: str = Field(pattern=HEX64)
    answers_mac: str = Field(pattern=HEX64)


class KeySet(_Strict):
    prompt_id: str
    seed: int
    prompt: str
    labels: dict[str, str]
    repeat_of: str | None = None
    sources: dict[str, str] = {}


class KeyPacket(_Strict):
    rater_id: str
    secret: str = Field(pattern=HEX64)
    mapping_checksum: str = Field(pattern=HEX64)
    sets: dict[str, KeySet]


class AttentionRule(_Strict):
    enabled: bool
    min_agree: int


class StudyKey(_Strict):
    schema_: Literal[KEY_SCHEMA] = Field(alias="schema")
    build_id: str
    profile: str
    seed: int
    study_secret: str | None = None   # keys the shuffles and packet secrets (keys before it have none)
    built_by: str | None = None       # "pipeline" (the DVC stage) or "cli"
    methods: list[str]
    criteria: list[str]
    attention_check: AttentionRule
    created_with: dict[str, str] = {}
    packets: dict[str, KeyPacket]


@dataclass(frozen=True)
class AcceptedAnswers:
    """A counted answer file: `choices[set_id][criterion]` is the chosen *method* (repeats included)."""

    path: Path
    packet_id: str
    rater_id: str
    exported_at: datetime
    choices: dict[str, dict[str, str]]
    attention: dict[str, int] | None  # {"agreed", "compared"} over the repeated sets, None without


@dataclass(frozen=True)
class Exclusion:
    path: Path
    reason: str


def _describe(error: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}" for item in error.errors()]
    shown = "; ".join(parts[:5])
    return shown + (f"; and {len(parts) - 5} more" if len(parts) > 5 else "")


def load_key(path: str | Path) -> StudyKey:
    """Read and check a key file, including every packet's checksum against its own mapping."""
    path = Path(path)
    try:
        raw = read_json(path, "key file", max_bytes=MAX_KEY_BYTES, max_depth=MAX_JSON_DEPTH)
    except InputError as error:
        raise StudyKeyError(str(error)) from None
    if isinstance(raw, dict) and raw.get("schema") != KEY_SCHEMA:
        raise StudyKeyError(f"{path}: not a study key (schema {raw.get('schema')!r}, expected {KEY_SCHEMA!r})")
    try:
        key = StudyKey.model_validate(raw)
    except ValidationError as error:
        raise StudyKeyError(f"{path}: malformed key: {_describe(error)}") from None
    for packet_id, packet in key.packets.items():
        labels = {set_id: s.labels for set_id, s in packet.sets.items()}
        if mapping_checksum(packet_id, labels, packet.secret) != packet.mapping_checksum:
            raise StudyKeyError(f"{path}: packet {packet_id}: the label mapping does not match its checksum "
                                "(the key was edited)")
        strangers = {m for s in packet.sets.values() for m in s.labels.values()} - set(key.methods)
        if strangers:
            raise StudyKeyError(f"{path}: packet {packet_id} names methods not in the key's list: {sorted(strangers)}")
    return key


def answers_digest(answers: dict) -> str:
    """SHA-256 (hex) of the canonical JSON of an answer file's `answers` object."""
    return hashlib.sha256(canonical_json(answers).encode("utf-8")).hexdigest()


def answers_mac(token: str, packet_id: str, rater_id: str, checksum: str, answers: dict) -> str:
    """HMAC-SHA256 (hex), keyed by the packet's answer token, of the canonical JSON of
    {"packet_id", "rater_id", "mapping_checksum", "answers"} (study.js computes the same)."""
    message = canonical_json({"packet_id": packet_id, "rater_id": rater_id, "mapping_checksum": checksum,
                              "answers": answers}).encode("utf-8")
    return hmac.new(bytes.fromhex(token), message, hashlib.sha256).hexdigest()


def read_answer_file(path: str | Path) -> tuple[AnswerDocument, dict]:
    """Parse an answer file against the schema; returns the document and the raw `answers` object."""
    path = Path(path)
    try:
        raw = read_json(path, "answer file", max_bytes=MAX_ANSWER_BYTES, max_depth=MAX_JSON_DEPTH)
    except InputError as error:
        raise AnswerFileError(path, error.problem) from None
    if not isinstance(raw, dict) or raw.get("schema") != ANSWERS_SCHEMA:
        found = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
        raise AnswerFileError(path, f"not a dvd360 answer file (schema {found!r}, expected {ANSWERS_SCHEMA!r})")
    try:
        document = AnswerDocument.model_validate(raw)
    except ValidationError as error:
        raise AnswerFileError(path, f"does not follow the answer-file schema: {_describe(error)}") from None
    return document, raw["answers"]


def _listing(items: Sequence[str], limit: int = 6) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_answers(path: Path, document: AnswerDocument, raw_answers: dict, key: StudyKey) -> AcceptedAnswers:
    """Check one parsed answer file against the key; raise AnswerFileError with every reason found."""
    if answers_digest(raw_answers) != document.answers_sha256:
        raise AnswerFileError(path, "answers_sha256 does not match the answers: the file was edited or damaged "
                                    "after export")
    packet = key.packets.get(document.packet_id)
    if packet is None:
        raise AnswerFileError(path, f"packet {document.packet_id!r} is not in the key (build {key.build_id}): "
                                    "answers from another study or build")
    if document.rater_id != packet.rater_id:
        raise AnswerFileError(path, f"rater {document.rater_id!r} does not match packet {document.packet_id} "
                                    f"(rater {packet.rater_id!r} in the key)")
    if document.mapping_checksum != packet.mapping_checksum:
        raise AnswerFileError(path, f"mapping checksum differs from the key's for packet {document.packet_id}: "
                                    "these answers were given on pages with another label mapping")
    expected_mac = answers_mac(answer_token(document.packet_id, packet.secret), document.packet_id,
                               document.rater_id, document.mapping_checksum, raw_answers)
    if not hmac.compare_digest(expected_mac, document.answers_mac):
        raise AnswerFileError(path, f"answers_mac does not verify with packet {document.packet_id}'s token: the "
                                    "file was not exported from that packet's pages (another packet's answers "
                                    "relabelled, or edited)")
    problems = []
    unknown_sets = sorted(set(document.answers) - set(packet.sets))
    if unknown_sets:
        problems.append(f"sets not in the packet: {_listing(unknown_sets)}")
    unknown, missing, choices = [], [], {}
    for set_id, key_set in packet.sets.items():
        given = document.answers.get(set_id, {})
        unknown += [f"{set_id}/{c}" for c in given if c not in key.criteria]
        unknown += [f"{set_id}/{c}={a.label!r}" for c, a in given.items()
                    if c in key.criteria and a.label not in key_set.labels]
        missing += [f"{set_id}/{c}" for c in key.criteria if c not in given]
        choices[set_id] = {c: key_set.labels[a.label] for c, a in given.items()
                           if c in key.criteria and a.label in key_set.labels}
    if unknown:
        problems.append(f"unknown criteria or labels: {_listing(unknown)}")
    if missing:
        total = len(packet.sets) * len(key.criteria)
        problems.append(f"incomplete: {len(missing)} of {total} answers missing ({_listing(missing)})")
    attention = None
    repeats = {set_id: s.repeat_of for set_id, s in packet.sets.items() if s.repeat_of}
    if repeats and not problems:
        rule = key.attention_check
        agreed = sum(choices[r][c] == choices[o][c] for r, o in repeats.items() for c in key.criteria)
        needed = rule.min_agree * len(repeats)
        attention = {"agreed": agreed, "compared": len(repeats) * len(key.criteria)}
        if agreed < needed:
            pairs = ", ".join(f"{r} repeats {o}" for r, o in repeats.items())
            problems.append(f"failed the attention check: {pairs}; the same video was chosen for {agreed} of "
                            f"{attention['compared']} criteria, at least {needed} needed")
    if problems:
        raise AnswerFileError(path, "; ".join(problems))
    return AcceptedAnswers(path=path, packet_id=document.packet_id, rater_id=document.rater_id,
                           exported_at=document.exported_at, choices=choices, attention=attention)


def validate_answer_files(paths: Sequence[str | Path], key: StudyKey) -> tuple[list[AcceptedAnswers], list[Exclusion]]:
    """Check every file; returns the accepted ones (one per packet, the latest export) and the excluded with reasons."""
    accepted: list[AcceptedAnswers] = []
    excluded: list[Exclusion] = []
    seen: set[Path] = set()
    for path in map(Path, paths):
        if path.resolve() in seen:
            excluded.append(Exclusion(path, "the same file was given twice; counted once"))
            continue
        seen.add(path.resolve())
        try:
            document, raw_answers = read_answer_file(path)
            accepted.append(check_answers(path, document, raw_answers, key))
        except AnswerFileError as error:
            excluded.append(Exclusion(path, error.reason))
    by_packet: dict[str, list[AcceptedAnswers]] = {}
    for entry in accepted:
        by_packet.setdefault(entry.packet_id, []).append(entry)
    kept = []
    for packet_id, entries in by_packet.items():
        latest = max(entries, key=lambda e: e.exported_at)
        kept.append(latest)
        excluded += [Exclusion(e.path, f"duplicate: packet {packet_id} is also answered in {latest.path}, "
                                       "exported later; only that file counts") for e in entries if e is not latest]
    kept.sort(key=lambda e: e.packet_id)
    return kept, excluded
