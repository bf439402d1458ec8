"""`dvd360-eval`: the command-line interface. Each command group lives in its own module."""

from __future__ import annotations

import importlib
import sys

import click

from dvd360 import __version__

# (module, attribute) of each command registered on the root group, in help order.
COMMANDS = (
    ("data", "data"),
    ("study", "study"),
    ("score", "score"),
    ("compare", "compare"),
    ("models", "models"),
    ("audit", "audit"),
)
# The errors bad input raises, each naming its file: (module, class). Looked up only among the
# modules already imported (an error can only come from one of those), so startup stays light.
INPUT_ERRORS = (
    ("dvd360.inputs", "InputError"),
    ("dvd360.data.video", "VideoError"),
    ("dvd360.data.web360", "Web360ValidationError"),
    ("dvd360.study.packets", "StudyInputError"),
    ("dvd360.study.answers", "StudyKeyError"),
    ("dvd360.study.answers", "AnswerFileError"),
    ("dvd360.study.aggregate", "NoValidAnswers"),
    ("dvd360.models.download", "FetchError"),
)


def _is_input_error(error: Exception) -> bool:
    """A known bad-input error of the project, or an OSError (a file unreadable or unwritable)."""
    known = tuple(getattr(sys.modules[module], name) for module, name in INPUT_ERRORS if module in sys.modules)
    return isinstance(error, known + (OSError,))


class _MessagesForBadInput(click.Group):
    """The root group: a bad-input error from any command ends as its message and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as error:
            if isinstance(error, click.ClickException) or not _is_input_error(error):
                raise
            raise click.ClickException(str(error)) from error


@click.group(cls=_MessagesForBadInput, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dvd360-eval")
def main() -> None:
    """Evaluate and benchmark 360-degree panorama video generators (the 360DVD study)."""


for module_name, attribute in COMMANDS:
    main.add_command(getattr(importlib.import_module(f"dvd360.cli.{module_name}"), attribute))
