"""Help that reads well: every command's help is whole paragraphs, which the terminal wraps at its
own width, never at the line breaks of the source."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from gridwatch._cli_common import reflow
from gridwatch.cli import app


def commands(group: Any, path: str = "gridwatch") -> list[tuple[str, Any]]:
    """Every command under ``group`` (a click or typer group), with its command line."""
    found = [(path, group)]
    if isinstance(getattr(group, "commands", None), dict):
        for name, sub in group.commands.items():
            found.extend(commands(sub, f"{path} {name}"))
    return found


def test_every_help_paragraph_is_one_line() -> None:
    every = commands(typer.main.get_command(app))
    assert len(every) > 15  # the whole tree was walked
    broken = [(path, para) for path, cmd in every for para in (cmd.help or "").split("\n\n")
              if "\n" in para]
    assert broken == []


def test_help_wraps_at_the_terminal_width_only() -> None:
    out = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "80"}).output
    # The second paragraph of `run`'s docstring, broken after "--recovery-dir a" in the source,
    # flows on to the next words.
    assert "--recovery-dir a restart" in " ".join(out.split())
    assert not any(line.rstrip().endswith("--recovery-dir a") for line in out.splitlines())


def test_reflow_joins_lines_and_keeps_lists() -> None:
    text = """First line
        goes on.

        Second paragraph
        also.

        - a list item
        - another
    """
    assert reflow(text) == ("First line goes on.\n\nSecond paragraph also.\n\n"
                            "- a list item\n- another")
