"""The study's definition as data: title, instruction, the five criteria, the paper's Table 1.

Read from `eval/study.yaml` (see the comments there). Criterion ids key answer files and
every output, so they are checked here: present, unique, lowercase identifiers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dvd360.config import repo_root

DEFAULT_PATH = Path("eval") / "study.yaml"
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class StudyDefinitionError(ValueError):
    """A study definition file that is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class Criterion:
    """One question: `id` (stable key), `name` (column title), `group`, `question`, `help`."""

    id: str
    name: str
    group: str
    question: str
    help: str


@dataclass(frozen=True)
class StudyDefinition:
    title: str
    instruction: str
    criteria: tuple[Criterion, ...]
    paper_table1: dict[str, Any] = field(default_factory=dict)

    @property
    def criterion_ids(self) -> tuple[str, ...]:
        return tuple(criterion.id for criterion in self.criteria)


def load_study_definition(path: str | Path | None = None) -> StudyDefinition:
    """Read and check `eval/study.yaml` (default: the repository root's)."""
    path = Path(path) if path is not None else repo_root() / DEFAULT_PATH
    if not path.is_file():
        raise StudyDefinitionError(f"{path}: no such study definition file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise StudyDefinitionError(f"{path}: not valid YAML ({error})") from error
    for key in ("title", "instruction", "criteria"):
        if not data.get(key):
            raise StudyDefinitionError(f"{path}: missing {key!r}")
    criteria = []
    for index, entry in enumerate(data["criteria"]):
        missing = [key for key in ("id", "name", "group", "question", "help") if not entry.get(key)]
        if missing:
            raise StudyDefinitionError(f"{path}: criterion {index} lacks {', '.join(missing)}")
        if not _ID.match(str(entry["id"])):
            raise StudyDefinitionError(f"{path}: criterion id {entry['id']!r} must match {_ID.pattern}")
        criteria.append(Criterion(**{key: str(entry[key]).strip() for key in
                                     ("id", "name", "group", "question", "help")}))
    ids = [criterion.id for criterion in criteria]
    if len(set(ids)) != len(ids):
        raise StudyDefinitionError(f"{path}: criterion ids repeat: {ids}")
    return StudyDefinition(title=str(data["title"]).strip(), instruction=str(data["instruction"]).strip(),
                           criteria=tuple(criteria), paper_table1=dict(data.get("paper_table1") or {}))
