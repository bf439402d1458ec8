"""Who sees what: prompt sets from the generations, per-rater packets, the label key.

- A *prompt set* is one (prompt_id, seed) with a video from every compared method, read from
  the generate stage's `data/generations/{method}/{prompt_id}-s{seed}.{mp4,json}`.
- A *packet* is what one rater gets: `sets_per_packet` prompt sets in a seeded random order,
  each with the methods shown under neutral labels "1".."M" in a random order of its own,
  plus (optionally) one set shown again later in a different order as an attention check.
- The *key* maps every (packet, set, label) to its method. It never goes into the pages; the
  pages carry only `mapping_checksum` = HMAC-SHA256(secret, canonical JSON of
  {"packet_id", "sets": {set_id: {label: method}}}), so an answer file can be checked against
  the key without the pages revealing the mapping (a plain hash of so few permutations could
  be inverted by trying them all).

Blinding rests on a random study secret (`new_study_secret`, from `secrets`), made once per
study and kept in the key file (`study_secret`), never in a packet: it keys every shuffle (with
`seed`), every packet's secret and so every label mapping and checksum. Public code and a known
seed therefore reveal nothing; a re-build from the key file reproduces the packets byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import av

from dvd360.data.video import VideoError, probe_video
from dvd360.provenance import versions

KEY_SCHEMA = "dvd360-study-key/1"
BROWSER_CODECS = ("h264", "vp8", "vp9", "av1")
REQUIRED_RECORD_FIELDS = ("method", "prompt", "prompt_id", "seed")
RECORD_NAME = re.compile(r"^[^.].*-s\d+\.json$")  # {prompt_id}-s{seed}.json, not hidden temporaries


class StudyInputError(ValueError):
    """Generations that cannot make a study; the message names the file and the problem."""


@dataclass(frozen=True)
class PromptSet:
    """One prompt and seed with a video per method (`videos`: method -> mp4 path)."""

    prompt_id: str
    seed: int
    prompt: str
    videos: Mapping[str, Path]

    @property
    def name(self) -> str:
        return f"{self.prompt_id}-s{self.seed}"


@dataclass(frozen=True)
class PacketSet:
    """A prompt set as placed in a packet: `order[i]` is the method shown under label `i + 1`."""

    set_id: str
    prompt_set: PromptSet
    order: tuple[str, ...]
    repeat_of: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        """Neutral label -> method."""
        return {label_of(i): method for i, method in enumerate(self.order)}


@dataclass(frozen=True)
class Packet:
    """One rater's packet; `secret` (hex) keys its mapping checksum and stays in the key file."""

    packet_id: str
    rater_id: str
    build_id: str
    sets: tuple[PacketSet, ...]
    secret: str

    def mapping(self) -> dict[str, dict[str, str]]:
        return {packet_set.set_id: packet_set.labels for packet_set in self.sets}

    @property
    def mapping_checksum(self) -> str:
        return mapping_checksum(self.packet_id, self.mapping(), self.secret)

    @property
    def answer_token(self) -> str:
        return answer_token(self.packet_id, self.secret)


def label_of(index: int) -> str:
    """The neutral label of position `index` in a set: "1", "2", ..."""
    return str(index + 1)


def canonical_json(data) -> str:
    """Sorted keys, no spaces, UTF-8 text: the form every checksum is taken over (here and in study.js)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def mapping_checksum(packet_id: str, mapping: Mapping[str, Mapping[str, str]], secret: str) -> str:
    """HMAC-SHA256 (hex) of the canonical JSON of {"packet_id", "sets": mapping}, keyed by `secret`."""
    message = canonical_json({"packet_id": packet_id, "sets": mapping}).encode("utf-8")
    return hmac.new(bytes.fromhex(secret), message, hashlib.sha256).hexdigest()


def answer_token(packet_id: str, secret: str) -> str:
    """HMAC-SHA256 (hex) of "dvd360-answer-token:<packet_id>", keyed by the packet's `secret`.

    Written only into that packet's pages (never into answer files); study.js signs the
    exported answers with it, so answers cannot be relabelled as another packet's without
    that packet's pages.
    """
    message = f"dvd360-answer-token:{packet_id}".encode("utf-8")
    return hmac.new(bytes.fromhex(secret), message, hashlib.sha256).hexdigest()


def check_browser_playable(path: Path) -> None:
    """Raise StudyInputError unless `path` is a complete video in a codec browsers play, yuv420p."""
    try:
        probe_video(path, verify=True)
        with av.open(str(path)) as container:
            context = container.streams.video[0].codec_context
            codec, pix_fmt = context.name, context.pix_fmt
    except (VideoError, av.error.FFmpegError, OSError) as error:
        raise StudyInputError(f"{path}: unreadable video ({error})") from error
    if codec not in BROWSER_CODECS or pix_fmt != "yuv420p":
        raise StudyInputError(f"{path}: {codec}/{pix_fmt} does not play in every browser; "
                              f"re-encode as one of {BROWSER_CODECS} in yuv420p")


def _read_record(path: Path, method: str) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StudyInputError(f"{path}: unreadable generation record ({error})") from error
    missing = [key for key in REQUIRED_RECORD_FIELDS if key not in record]
    if missing:
        raise StudyInputError(f"{path}: generation record lacks {', '.join(missing)}")
    if str(record["method"]) != method:
        raise StudyInputError(f"{path}: record says method {record['method']!r} but lies in folder {method!r}")
    return record


def find_prompt_sets(generations_dir: str | Path, methods: Sequence[str],
                     check_videos: bool = True) -> tuple[list[PromptSet], list[str]]:
    """Prompt sets with a video from every method, sorted by (prompt_id, seed), and the skipped ones.

    Reads the records `{method}/{prompt_id}-s{seed}.json` (other files are ignored).

    Returns (sets, skipped) where each skipped entry says which methods lacked the set.
    Raises StudyInputError (naming the file) for a missing method folder, a bad record, a
    record without its mp4, prompts that disagree between methods, or (with `check_videos`)
    a video browsers cannot play.
    """
    root = Path(generations_dir)
    if len(set(methods)) != len(methods) or len(methods) < 2:
        raise StudyInputError(f"need at least two distinct methods, got {list(methods)}")
    found: dict[tuple[str, int], dict[str, tuple[Path, str]]] = {}
    for method in methods:
        folder = root / method
        if not folder.is_dir():
            raise StudyInputError(f"{folder}: no generations for method {method!r}")
        for record_path in sorted(p for p in folder.glob("*.json") if RECORD_NAME.match(p.name)):
            record = _read_record(record_path, method)
            video = record_path.with_suffix(".mp4")
            if not video.is_file():
                raise StudyInputError(f"{record_path}: its video {video.name} is missing")
            key = (str(record["prompt_id"]), int(record["seed"]))
            found.setdefault(key, {})[method] = (video, str(record["prompt"]))
    sets, skipped = [], []
    for (prompt_id, seed), by_method in sorted(found.items()):
        lacking = [method for method in methods if method not in by_method]
        if lacking:
            skipped.append(f"{prompt_id}-s{seed}: no video from {', '.join(lacking)}")
            continue
        prompts = {prompt for _, prompt in by_method.values()}
        if len(prompts) > 1:
            files = ", ".join(str(video.with_suffix(".json")) for video, _ in by_method.values())
            raise StudyInputError(f"{files}: prompt {prompt_id!r} has different texts: {sorted(prompts)}")
        if check_videos:
            for video, _ in by_method.values():
                check_browser_playable(video)
        sets.append(PromptSet(prompt_id, seed, prompts.pop(),
                              {method: by_method[method][0] for method in methods}))
    return sets, skipped


def new_study_secret() -> str:
    """A fresh random study secret (256 bits, hex) from the OS's cryptographic source."""
    return secrets.token_hex(32)


def read_existing_key(path: Path) -> dict | None:
    """The key file at `path` as JSON, or None when there is none; unreadable ones are refused."""
    if not path.is_file():
        return None
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StudyInputError(f"{path}: not a readable study key ({error}); refusing to replace it") from error
    if not isinstance(key, dict) or key.get("schema") != KEY_SCHEMA:
        raise StudyInputError(f"{path}: not a study key of schema {KEY_SCHEMA}; refusing to replace it")
    return key


def _packet_secret(study_secret: str, build_id: str, rater: int) -> str:
    message = f"dvd360-packet-secret:{build_id}:{rater}".encode("utf-8")
    return hmac.new(bytes.fromhex(study_secret), message, hashlib.sha256).hexdigest()


def _shuffled_order(rng: random.Random, methods: Sequence[str], avoid: tuple[str, ...] | None = None):
    order = tuple(rng.sample(list(methods), len(methods)))
    while avoid is not None and order == avoid and len(methods) > 1:
        order = tuple(rng.sample(list(methods), len(methods)))
    return order


def build_id_of(prompt_sets: Sequence[PromptSet], methods: Sequence[str], raters: int,
                sets_per_packet: int, seed: int, attention_check: bool) -> str:
    """A short hash of everything that shapes the packets: answers from another build won't match."""
    plan = {"sets": [s.name for s in prompt_sets], "prompts": [s.prompt for s in prompt_sets],
            "methods": list(methods), "raters": raters, "sets_per_packet": sets_per_packet,
            "seed": seed, "attention_check": attention_check}
    return hashlib.sha256(canonical_json(plan).encode("utf-8")).hexdigest()[:6]


def plan_packets(prompt_sets: Sequence[PromptSet], methods: Sequence[str], *, raters: int,
                 sets_per_packet: int | None = None, seed: int = 0,
                 attention_check: bool = True, study_secret: str) -> list[Packet]:
    """One packet per rater; every shuffle is seeded by (`study_secret`, `seed`).

    Assignment: the prompt sets are put in one seeded random cyclic order and rater r gets the
    `sets_per_packet` consecutive sets starting at r * sets_per_packet, so every set is seen
    equally often (when raters * sets_per_packet is a multiple of the number of sets). Each
    packet then shuffles its sets and each set its methods. The attention check repeats one
    set, with a new label order, at least two places after the original when the packet is
    long enough.
    """
    count = len(prompt_sets)
    per_packet = sets_per_packet or count
    if count == 0:
        raise StudyInputError("no prompt set has a video from every method")
    if raters < 1:
        raise StudyInputError(f"need at least one rater, got {raters}")
    if not 1 <= per_packet <= count:
        raise StudyInputError(f"sets_per_packet must be in 1..{count} (the prompt sets found), got {per_packet}")
    build_id = build_id_of(prompt_sets, methods, raters, per_packet, seed, attention_check)
    cycle = list(prompt_sets)
    try:
        bytes.fromhex(study_secret)
    except (TypeError, ValueError) as error:
        raise StudyInputError(f"the study secret must be hex (as key.json's study_secret), got {study_secret!r}") from error
    random.Random(f"dvd360-study:{study_secret}:{seed}").shuffle(cycle)
    packets = []
    for rater in range(raters):
        rng = random.Random(f"dvd360-study:{study_secret}:{seed}:rater:{rater}")
        chosen = [cycle[(rater * per_packet + k) % count] for k in range(per_packet)]
        rng.shuffle(chosen)
        slots = [(prompt_set, _shuffled_order(rng, methods), None) for prompt_set in chosen]
        if attention_check:
            original = rng.randrange(max(1, per_packet - 1))
            position = rng.randint(min(original + 2, per_packet), per_packet)
            prompt_set, order, _ = slots[original]
            slots.insert(position, (prompt_set, _shuffled_order(rng, methods, avoid=order), original))
        set_ids = [f"set-{i + 1:02d}" for i in range(len(slots))]
        # The repeat goes after its original, so the original keeps its index.
        sets = tuple(PacketSet(set_id, prompt_set, order, None if repeat is None else set_ids[repeat])
                     for set_id, (prompt_set, order, repeat) in zip(set_ids, slots))
        rater_id = f"rater-{rater + 1:02d}"
        packets.append(Packet(f"{rater_id}-{build_id}", rater_id, build_id, sets,
                              _packet_secret(study_secret, build_id, rater)))
    return packets


def key_document(packets: Sequence[Packet], *, methods: Sequence[str], criteria: Sequence[str],
                 attention_min_agree: int, seed: int, profile: str, generations_dir: str | Path,
                 study_secret: str, built_by: str) -> dict:
    """The key file's content: the study secret, who built it (`built_by`: the pipeline stage or
    the CLI), and for every packet its secret, checksum and label -> method per set.

    Video sources are recorded relative to the generations folder (no absolute paths).
    """
    root = Path(generations_dir)
    return {
        "schema": KEY_SCHEMA,
        "build_id": packets[0].build_id,
        "profile": profile,
        "seed": seed,
        "study_secret": study_secret,
        "built_by": built_by,
        "methods": list(methods),
        "criteria": list(criteria),
        "attention_check": {"enabled": any(s.repeat_of for p in packets for s in p.sets),
                            "min_agree": attention_min_agree},
        "created_with": versions(),
        "packets": {
            packet.packet_id: {
                "rater_id": packet.rater_id,
                "secret": packet.secret,
                "mapping_checksum": packet.mapping_checksum,
                "sets": {
                    s.set_id: {"prompt_id": s.prompt_set.prompt_id, "seed": s.prompt_set.seed,
                               "prompt": s.prompt_set.prompt, "labels": s.labels, "repeat_of": s.repeat_of,
                               "sources": {m: Path(video).relative_to(root).as_posix()
                                           for m, video in s.prompt_set.videos.items()}}
                    for s in packet.sets},
            }
            for packet in packets
        },
    }
