"""``gridwatch serve``, ``gridwatch users add|passwd|disable|enable|list``, ``gridwatch digest``
and ``gridwatch verdicts`` (the scoring behind ``gridwatch evaluate --verdicts``)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import sqlite3

    from gridwatch._settings import Settings

users_app = typer.Typer(help="Workspace accounts: add, passwd, disable, enable, list.",
                        no_args_is_help=True)
out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Settings file.")]
StdinOpt = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of standard input "
                             "instead of prompting.")]


def _settings(config: Path | None) -> Settings:
    from gridwatch._cli_common import settings_or_exit

    return settings_or_exit(config)


def _db(config: Path | None) -> tuple[Settings, sqlite3.Connection]:
    from gridwatch.web._store import connect

    settings = _settings(config)
    return settings, connect(settings.web.db or settings.alerts.state_db)


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (web.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (web.port).")] = None,
) -> None:
    """Serve the manager's workspace (web app) until Ctrl-C. Create the first account with
    `gridwatch users add` before."""
    import uvicorn

    from gridwatch.web._app import Workspace
    from gridwatch.web._asgi import create_app

    settings = _settings(config)
    ws = Workspace(settings)
    try:
        ws.registry  # noqa: B018 - fail early on a broken registry
    except Exception as exc:
        err.print(f"[bold red]config error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    h, p = host or settings.web.host, port or settings.web.port
    err.print(f"gridwatch workspace on http://{h}:{p}", highlight=False)
    uvicorn.run(create_app(ws), host=h, port=p, log_level="info", proxy_headers=False)


@users_app.command("add")
def add(
    username: str,
    manager: Annotated[str | None, typer.Option(help="Registry id of the manager.")] = None,
    customer: Annotated[str | None, typer.Option(
        help="Registry id of the customer whose contact this is.")] = None,
    name: Annotated[str, typer.Option(help="Name shown in the workspace.")] = "",
    language: Annotated[str, typer.Option(help="zh or en.")] = "zh",
    password_stdin: StdinOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Create an account for a cell manager (--manager) or a customer contact (--customer)."""
    from gridwatch.alerts._registry import Registry, RegistryError
    from gridwatch.web import _accounts as acc

    if (manager is None) == (customer is None):
        err.print("give exactly one of --manager or --customer")
        raise typer.Exit(2)
    settings, db = _db(config)
    try:
        reg = Registry.load(settings.alerts.registry)
    except RegistryError as exc:
        err.print(f"[bold red]registry error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if manager is not None and reg.manager(manager) is None:
        err.print(f"manager {manager!r} is not in the registry")
        raise typer.Exit(2)
    if customer is not None and reg.customer(customer) is None:
        err.print(f"customer {customer!r} is not in the registry")
        raise typer.Exit(2)
    role, subject = ("manager", manager) if manager else ("customer", customer)
    assert subject is not None
    now = datetime.now(UTC)
    try:
        acc.add_user(db, username, role, subject, _password(password_stdin), now,
                     display_name=name, language=language)
    except acc.AccountError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    acc.audit(db, now, "cli", "user_added", f"user:{username}", f"{role} {subject}")
    out.print(f"added {role} account {username} ({subject})", highlight=False)


@users_app.command("passwd")
def passwd(username: str, password_stdin: StdinOpt = False, config: ConfigOpt = None) -> None:
    """Set a new password (every open session of the account ends)."""
    from gridwatch.web import _accounts as acc

    _, db = _db(config)
    now = datetime.now(UTC)
    try:
        acc.set_password(db, username, _password(password_stdin), now)
    except acc.AccountError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    acc.audit(db, now, "cli", "password_changed", f"user:{username}")
    out.print(f"password of {username} changed", highlight=False)


def _set_disabled(username: str, disabled: bool, config: Path | None) -> None:
    from gridwatch.web import _accounts as acc

    _, db = _db(config)
    now = datetime.now(UTC)
    try:
        acc.set_disabled(db, username, disabled, now)
    except acc.AccountError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    word = "disabled" if disabled else "enabled"
    acc.audit(db, now, "cli", f"user_{word}", f"user:{username}")
    out.print(f"{username} {word}", highlight=False)


@users_app.command("disable")
def disable(username: str, config: ConfigOpt = None) -> None:
    """Disable an account; its sessions end at once."""
    _set_disabled(username, True, config)


@users_app.command("enable")
def enable(username: str, config: ConfigOpt = None) -> None:
    """Enable a disabled account again."""
    _set_disabled(username, False, config)


@users_app.command("list")
def list_users(config: ConfigOpt = None) -> None:
    """Accounts, with role, registry id, language and state."""
    from gridwatch.web import _accounts as acc

    _, db = _db(config)
    table = Table("user", "role", "id", "name", "language", "state")
    for u in acc.list_users(db):
        table.add_row(u.username, u.role, u.subject, u.display_name, u.language,
                      "disabled" if u.disabled else "active")
    out.print(table)


def digest(
    config: ConfigOpt = None,
    send: Annotated[bool, typer.Option("--send", help="Also email managers who have an "
                                       "email address (alerts.smtp).")] = False,
) -> None:
    """Build every manager's weekly digest (alerts, verdicts, time to acknowledge, false-alarm
    trend) for the workspace, and email it with --send."""
    from gridwatch.alerts._registry import Registry
    from gridwatch.web._digest import send_digests

    settings, db = _db(config)
    reg = Registry.load(settings.alerts.registry)
    link = settings.web.public_url or f"http://{settings.web.host}:{settings.web.port}"
    for d in send_digests(db, reg, datetime.now(UTC),
                          smtp=settings.alerts.smtp if send else None, link=link):
        out.print(f"[bold]{d.manager_id}[/]\n{d.text}\n", highlight=False)


def verdicts_report(config: Path | None, days: float | None) -> int:
    """Print precision by type and by cell from the managers' verdicts; returns an exit code."""
    from gridwatch.web._verdicts import score_verdicts

    _, db = _db(config)
    since = datetime.now(UTC) - timedelta(days=days) if days else None
    scores = score_verdicts(db, since)
    if not scores["all"]:
        out.print("no verdicts yet")
        return 0
    for group in ("type", "cell", "all"):
        table = Table(group, "confirmed", "false alarm", "site visit", "precision",
                      title=f"precision by {group} (from managers' verdicts)")
        for key, s in sorted(scores[group].items()):
            table.add_row(key, str(s.confirmed), str(s.false_alarm), str(s.site_visit),
                          "-" if s.precision is None else f"{s.precision:.3f}")
        out.print(table)
    return 0
