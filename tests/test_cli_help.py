"""Help that reads well: every command's help is whole paragraphs, which the terminal wraps at its
own width, never at the line breaks of the source."""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.testing import CliRunner

from gridwatch._cli_common import as_help, reflow
from gridwatch.cli import app

WIDTH = 80
BOX = str.maketrans({c: " " for c in "│╭╮╰╯─┃━"})


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


def render(path: str) -> str:
    result = CliRunner().invoke(app, [*path.split()[1:], "--help"],
                                env={"COLUMNS": str(WIDTH), "TERMINAL_WIDTH": str(WIDTH)})
    assert result.exit_code == 0, (path, result.output)
    return result.output


def words(text: str) -> list[str]:
    """The words of a help text as the terminal shows them (rich's escapes undone)."""
    return re.sub(r"\\(\[)", r"\1", text).split()


def test_every_help_reads_whole_at_80_columns() -> None:
    """Every command's ``--help`` at 80 columns: no line wider, nothing cut off with an
    ellipsis, no word of the command's or an option's help lost (to rich's markup, say), no
    reStructuredText literal left."""
    every = commands(typer.main.get_command(app))
    problems = []
    for path, cmd in every:
        out = render(path)
        shown = set(out.translate(BOX).split())
        problems += [f"{path}: line of {len(line)}" for line in out.splitlines()
                     if len(line) > WIDTH]
        problems += [f"{path}: cut off: {line.strip()}" for line in out.splitlines()
                     if "…" in line]
        if "``" in out:
            problems.append(f"{path}: ``literal``")
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        problems += [f"{path}: {w!r} not shown" for text in texts for w in words(text)
                     if w not in shown]
    assert problems == []


def test_help_keeps_brackets_and_writes_literals_plainly() -> None:
    text = as_help("""Raised within [start, end + grace] or with its onset
        within [start - grace, end] (the ``forecast`` measurement).""")
    assert words(text) == words("Raised within [start, end + grace] or with its onset within "
                                "[start - grace, end] (the `forecast` measurement).")
    out = render("gridwatch evaluate")
    assert "within [start, end + grace] or with its onset within [start - grace, end]" in (
        " ".join(out.split()))


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
