"""What every ``gridwatch`` subcommand shares: the ``--config`` option, the error console and
loading the settings. The command modules (``cli`` and each stage's ``_cli``) import this one,
never each other, so the command line's imports go one way."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:  # the settings (pydantic) load with the first command that needs them
    from gridwatch._settings import Settings

__all__ = ["ConfigOpt", "announce", "as_help", "err", "reflow", "settings_or_exit",
           "tidy_help"]

log = logging.getLogger("gridwatch.settings")

#: Messages for people (errors, progress) go to stderr; results go to stdout.
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Settings file. Default: $GRIDWATCH_CONFIG, else the "
                 "first gridwatch.yaml found in ./config, ~/.config/gridwatch and "
                 "/etc/gridwatch. GRIDWATCH_<SECTION>__<KEY> variables override it."),
]


def log_to_stderr() -> None:
    """The long-running commands' logging (``run``, ``collect``, a collector process): INFO
    and up on standard error, each line with its time, level and logger."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def settings_or_exit(config: Path | None, **overrides: object) -> Settings:
    """Load settings and say which file and data directory they use (:func:`announce`), or
    print one line naming the bad field and exit with code 2."""
    from gridwatch._settings import ConfigError, load_settings

    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        err.print(f"[bold red]config error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    announce(config, settings)
    return settings


def announce(config: Path | None, settings: Settings) -> str:
    """One line naming the settings file in use (and how it was found) and the data directory:
    logged at INFO (the engine's log has it), and shown on stderr when that is a terminal, so
    that piped output stays clean."""
    from gridwatch._settings import find_config

    line = f"settings: {find_config(config).describe()}; data: {settings.engine.data_dir}"
    log.info("%s", line)
    if "timezone" not in settings.detection.model_fields_set:
        log.warning("detection.timezone is not set: days, hours and holidays are judged in "
                    "UTC unless the registry gives a cell its time zone")
    if err.is_terminal:
        err.print(line, style="dim", highlight=False, soft_wrap=True)
    return line


def reflow(text: str) -> str:
    """A docstring as help text: each paragraph on one line, so the terminal wraps it at its
    own width instead of at the source's line breaks. Paragraphs with indented, bulleted or
    ``\\b``-marked lines keep their breaks."""
    out = []
    for para in inspect.cleandoc(text).split("\n\n"):
        lines = para.split("\n")
        if any(line.startswith((" ", "-", "*", "\b")) for line in lines):
            out.append(para)
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def as_help(docstring: str) -> str:
    """A docstring as ``--help`` shows it: reflowed (:func:`reflow`), a literal in single
    backquotes as in Markdown (reStructuredText doubles them), and square brackets escaped so
    that rich prints them instead of taking them for markup (``[start, end]`` would vanish)."""
    from rich.markup import escape

    return escape(reflow(docstring).replace("``", "`"))


def tidy_help(app: typer.Typer) -> None:
    """Reflow the docstrings of every command and command group under ``app`` (in place), so
    that ``--help`` does not break lines mid-sentence."""

    def fix(func: Any) -> None:
        if callable(func) and func.__doc__:
            func.__doc__ = as_help(func.__doc__)

    for command in app.registered_commands:
        fix(command.callback)
    if app.registered_callback is not None:
        fix(app.registered_callback.callback)
    for group in app.registered_groups:
        fix(group.callback)
        if group.typer_instance is not None:
            tidy_help(group.typer_instance)
