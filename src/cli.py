"""The ``gridwatch`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gridwatch._settings import ConfigError, Settings, load_settings

app = typer.Typer(
    name="gridwatch",
    help="Streaming monitoring of smart meters: collect, detect, store, alert.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Settings file (default: $GRIDWATCH_CONFIG or "
                 "config/gridwatch.yaml). GRIDWATCH_<SECTION>__<KEY> variables override it."),
]


@app.callback()
def _root() -> None:
    """Streaming monitoring of smart meters: collect, detect, store, alert.

    Settings come from config/gridwatch.yaml (or --config) and GRIDWATCH_* variables.
    """


def settings_or_exit(config: Path | None, **overrides: object) -> Settings:
    """Load settings, or print one line naming the bad field and exit with code 2."""
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        err.print(f"[bold red]config error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate the settings file and the environment; print the effective settings (secrets
    hidden). Exits 2 with one line naming the bad field when something is wrong."""
    settings = settings_or_exit(config)
    out = Console()
    out.print_json(settings.model_dump_json(indent=2))
    out.print("[green]configuration is valid[/]")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
