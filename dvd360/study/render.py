"""Write the study folder: one static HTML packet per rater and, beside them, the key.

Layout of `out_dir`::

    README.md                   for the organiser: what to send, what to keep, how to aggregate
    key.json                    label -> method for every packet (never give it to raters)
    packets/rater-01/           one self-contained folder per rater (zip it and send it)
        index.html              instructions (open this first)
        set-01.html ...         one page per prompt set: videos, 360 viewers, questions
        finish.html             overview of what is answered, export button
        static/                 study.js, viewer.js, study.css
        media/set-01-v1.js ...  the videos as base64 mp4 bytes (see study.js for why)

Pages are rendered by jinja2 with autoescaping on, so prompts show as text whatever they
contain. Pages and media names hold only neutral labels and relative paths.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import jinja2
from pydantic import Field
from tqdm import tqdm

from dvd360.atomic import atomic_dir, write_json
from dvd360.params_schema import StageSettings
from dvd360.study.answers import ANSWERS_SCHEMA
from dvd360.study.definition import StudyDefinition, load_study_definition
from dvd360.study.packets import (Packet, StudyInputError, find_prompt_sets, key_document, new_study_secret,
                                  plan_packets, read_existing_key)

STATIC_FILES = ("study.js", "viewer.js", "study.css")
TINY_NOTICE = ("Test packet: these videos come from the tiny profile (small models with random weights). "
               "They exercise the study's machinery and say nothing about any method's quality.")


class StudySettings(StageSettings):
    """params.yaml `study`: what `build_study` builds for the pipeline, from where, into where."""

    generations: str                                     # the generate stage's folder
    out_dir: str
    methods: list[str] = Field(min_length=2)
    raters: int = Field(gt=0)
    sets_per_packet: int | None = Field(default=None, gt=0)  # None: every prompt set
    seed: int
    attention_check: bool
    attention_min_agree: int = Field(gt=0)


@dataclass(frozen=True)
class StudyBuild:
    """What `build_study` wrote: the folder, the key file, the packets, and the skipped prompt sets."""

    out_dir: Path
    key_path: Path
    packets: list[Packet]
    skipped: list[str]


def template_environment() -> jinja2.Environment:
    """jinja2 with autoescaping on for every template, and errors for undefined names."""
    return jinja2.Environment(loader=jinja2.PackageLoader("dvd360.study", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def media_name(set_id: str, label: str) -> str:
    return f"{set_id}-v{label}"


def _media_script(name: str, video: Path) -> str:
    encoded = base64.b64encode(video.read_bytes()).decode("ascii")
    return f'(window.DVD360Media = window.DVD360Media || {{}})["{name}"] = "{encoded}";\n'


def packet_data(packet: Packet, criteria: Sequence[str]) -> dict:
    """What the pages' scripts know of a packet: ids, checksum, answer token, sets and labels, never methods."""
    return {"answers_schema": ANSWERS_SCHEMA, "packet_id": packet.packet_id, "rater_id": packet.rater_id,
            "mapping_checksum": packet.mapping_checksum, "answer_token": packet.answer_token,
            "criteria": list(criteria),
            "sets": [{"id": s.set_id, "page": f"{s.set_id}.html", "labels": list(s.labels)}
                     for s in packet.sets]}


def render_packet(packet: Packet, folder: Path, definition: StudyDefinition,
                  environment: jinja2.Environment, notice: str | None = None) -> None:
    """Write one rater's packet folder (pages, scripts, media)."""
    (folder / "media").mkdir(parents=True)
    (folder / "static").mkdir()
    static = resources.files("dvd360.study") / "static"
    for name in STATIC_FILES:
        (folder / "static" / name).write_text(static.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8")
    data = packet_data(packet, definition.criterion_ids)
    sets = data["sets"]
    common = {"study": definition, "criteria": definition.criteria, "packet": packet,
              "packet_data": data, "notice": notice,
              "total_answers": len(packet.sets) * len(definition.criteria), "set_count": len(packet.sets),
              "video_count": len(packet.sets[0].order), "sets": sets}
    pages = {"index.html": environment.get_template("instructions.html").render(
                 page="instructions", set_id=None, location="Instructions", first_page=sets[0]["page"], **common),
             "finish.html": environment.get_template("finish.html").render(
                 page="finish", set_id=None, location="Overview", **common)}
    set_template = environment.get_template("set.html")
    for index, packet_set in enumerate(packet.sets):
        videos = []
        for label, method in packet_set.labels.items():
            name = media_name(packet_set.set_id, label)
            (folder / "media" / f"{name}.js").write_text(
                _media_script(name, packet_set.prompt_set.videos[method]), encoding="ascii")
            videos.append({"label": label, "media": name})
        pages[sets[index]["page"]] = set_template.render(
            page="set", set_id=packet_set.set_id, location=f"Set {index + 1} of {len(packet.sets)}",
            index=index + 1, prompt=packet_set.prompt_set.prompt, videos=videos,
            previous_page=sets[index - 1]["page"] if index else None,
            next_page=sets[index + 1]["page"] if index + 1 < len(sets) else None, **common)
    for name, html in pages.items():
        (folder / name).write_text(html, encoding="utf-8")


def _organiser_readme(packets: Sequence[Packet], key_name: str, profile: str) -> str:
    lines = [
        "# User-study packets", "",
        f"Profile: {profile}. {len(packets)} packets, one per rater, "
        f"{len(packets[0].sets)} sets each (build {packets[0].build_id}).", "",
        "- Send each rater one folder of `packets/` (zip it). The rater opens `index.html` in a",
        "  current browser (Chrome, Edge, Firefox, Safari); nothing needs installing or a network.",
        f"- Never send `{key_name}`: it says which method is behind every label.",
        "- Raters press *Export answers* and send back `dvd360-answers-<packet>.json`.",
        f"- Aggregate: `dvd360-eval study aggregate answers/*.json --key {key_name} --out reports/study-results`.",
        "", "| rater | packet | folder |", "|---|---|---|",
    ]
    lines += [f"| {p.rater_id} | {p.packet_id} | packets/{p.rater_id}/ |" for p in packets]
    return "\n".join(lines) + "\n"


def build_study(generations_dir: str | Path, out_dir: str | Path, *, methods: Sequence[str],
                raters: int, sets_per_packet: int | None = None, seed: int = 0,
                attention_check: bool = True, attention_min_agree: int = 3,
                definition: StudyDefinition | None = None, profile: str = "tiny",
                built_by: str = "cli", study_secret: str | None = None) -> StudyBuild:
    """Find the prompt sets, plan the packets, and write packets + key into `out_dir` atomically.

    Every input is checked before anything is written; `out_dir` is replaced as a whole. The
    study secret is `study_secret` if given, else the one in `out_dir/key.json` (a re-build
    reproduces the packets), else a fresh random one. A key that `built_by` did not write
    (a hand-built study where the pipeline writes, or the other way round) is never replaced.
    """
    existing = read_existing_key(Path(out_dir) / "key.json")
    if existing is not None and existing.get("built_by") != built_by:
        raise StudyInputError(f"{Path(out_dir) / 'key.json'}: written by {existing.get('built_by') or 'an older build'}"
                              f", not by this {built_by} build; refusing to replace it (choose another folder)")
    study_secret = study_secret or (existing or {}).get("study_secret") or new_study_secret()
    definition = definition or load_study_definition()
    if not 1 <= attention_min_agree <= len(definition.criteria):
        raise StudyInputError(f"attention_min_agree must be in 1..{len(definition.criteria)}, got {attention_min_agree}")
    prompt_sets, skipped = find_prompt_sets(generations_dir, methods)
    packets = plan_packets(prompt_sets, methods, raters=raters, sets_per_packet=sets_per_packet,
                           seed=seed, attention_check=attention_check, study_secret=study_secret)
    key = key_document(packets, methods=methods, criteria=definition.criterion_ids,
                       attention_min_agree=attention_min_agree, seed=seed, profile=profile,
                       generations_dir=generations_dir, study_secret=study_secret, built_by=built_by)
    environment = template_environment()
    notice = TINY_NOTICE if profile == "tiny" else None
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for packet in tqdm(packets, desc="study packets", unit="packet"):
            render_packet(packet, tmp / "packets" / packet.rater_id, definition, environment, notice)
        write_json(tmp / "key.json", key)
        (tmp / "README.md").write_text(_organiser_readme(packets, "key.json", profile), encoding="utf-8")
    return StudyBuild(out_dir=out_dir, key_path=out_dir / "key.json", packets=packets, skipped=skipped)
