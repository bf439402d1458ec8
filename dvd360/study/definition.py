"""The study's definition as data: title, instruction, the five criteria, the paper's Table 1.

Read from `eval/study.yaml` (see the comments there). Criterion ids key answer files and
every output, so they are checked here: present, unique, lowercase identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from dvd360.config import repo_root
from dvd360.params_schema import StrictModel, validated_file

DEFAULT_PATH = Path("eval") / "study.yaml"
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class StudyDefinitionError(ValueError):
    """A study definition file that is missing or malformed; the message names the file."""


class CriterionEntry(StrictModel):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]  # keys answer files and every output
    name: Text
    group: Text
    question: Text
    help: Text


class PaperTable(StrictModel):
    """The paper's Table 1: percent of votes per criterion and method."""

    raters: int = Field(gt=0)
    prompt_sets: int = Field(gt=0)
    methods: dict[str, str]
    share_pct: dict[str, dict[str, float]]


class StudyFile(StrictModel):
    title: Text
    instruction: Text
    criteria: list[CriterionEntry] = Field(min_length=1)
    paper_table1: PaperTable | None = None

    @field_validator("criteria")
    @classmethod
    def _unique_ids(cls, criteria: list[CriterionEntry]) -> list[CriterionEntry]:
        ids = [criterion.id for criterion in criteria]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise PydanticCustomError("unique", "criterion ids repeat: {ids}", {"ids": ", ".join(map(repr, repeated))})
        return criteria


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
    study = validated_file(StudyFile, path, StudyDefinitionError, "study definition")
    return StudyDefinition(title=study.title, instruction=study.instruction,
                           criteria=tuple(Criterion(**entry.model_dump()) for entry in study.criteria),
                           paper_table1=study.paper_table1.model_dump() if study.paper_table1 else {})
