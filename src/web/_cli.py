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
                                       "email address (alerts.smtp), unless already sent.")
                    ] = False,
    force: Annotated[bool, typer.Option("--force", help="With --send: send again even when "
                                        "this week's digest was already sent.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Show how the digests of the last "
                                         "weeks were delivered, and stop.")] = False,
) -> None:
    """Build every manager's digest of the week just ended (alerts, verdicts, time to
    acknowledge, false-alarm trend) for the workspace, and email it with --send. The running
    workspace sends it by itself each week (web.digest_*); a week goes out once per manager."""
    from gridwatch.alerts._registry import Registry
    from gridwatch.web._digest import send_digests, send_states
    from gridwatch.web._digest_schedule import digest_zone, last_due

    settings, db = _db(config)
    if status:
        states = send_states(db)
        if not states:
            out.print("no digest sent or claimed yet")
        for st in states:  # one line each, never cut to the terminal's width
            out.print(f"{st.week_start} {st.manager_id} {st.status} attempts={st.attempts} "
                      f"to={st.recipient or '-'} by={st.by} at={st.updated_at}"
                      + (f" error={st.error}" if st.error else ""),
                      highlight=False, soft_wrap=True, markup=False)
        return
    w = settings.web
    reg = Registry.load(settings.alerts.registry)
    link = w.public_url or f"http://{w.host}:{w.port}"
    now = datetime.now(UTC)
    due = last_due(now, w.digest_weekday, w.digest_hour, digest_zone(settings))
    failed = 0
    for d in send_digests(db, reg, due, smtp=settings.alerts.smtp if send else None, link=link,
                          force=force, by="cli", max_attempts=w.digest_max_attempts,
                          retry_s=w.digest_retry_s, clock=lambda: datetime.now(UTC)):
        note = {"kept": "kept in the app" + (" (no email address)" if send else ""),
                "already sent": "already sent (--force sends it again)",
                "already claimed": "already being sent, or its sender stopped before it "
                                   "knew the outcome (--force sends it again)",
                "already failed": "sending failed before, retried later by the workspace "
                                  "(--force now)",
                "already kept": "kept in the app (no email address)"}.get(d.delivery,
                                                                          d.delivery)
        head = f"[bold]{d.manager_id}[/] {d.week_start}" + (f": {note}" if note else "")
        if d.error:
            head += f" ({d.error})"
        failed += d.delivery == "failed"
        out.print(f"{head}\n{d.text}\n" if d.text else head, highlight=False)
    if failed:
        raise typer.Exit(1)


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
