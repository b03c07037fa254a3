"""What every ``gridwatch`` subcommand shares: the ``--config`` option, the error console and
loading the settings. The command modules (``cli`` and each stage's ``_cli``) import this one,
never each other, so the command line's imports go one way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gridwatch._settings import ConfigError, Settings, load_settings

__all__ = ["ConfigOpt", "err", "settings_or_exit"]

#: Messages for people (errors, progress) go to stderr; results go to stdout.
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Settings file (default: $GRIDWATCH_CONFIG or "
                 "config/gridwatch.yaml). GRIDWATCH_<SECTION>__<KEY> variables override it."),
]


def settings_or_exit(config: Path | None, **overrides: object) -> Settings:
    """Load settings, or print one line naming the bad field and exit with code 2."""
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        err.print(f"[bold red]config error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
