"""``gridwatch alerts list|show|ack|resolve|silence|route-test|outbox|requeue|deliver`` and
``gridwatch acl``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from gridwatch.alerts._router import Router

alerts_app = typer.Typer(help="Inspect and act on alerts: list, show, ack, resolve, silence, "
                         "route-test, outbox.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Settings file.")]
ByOpt = Annotated[str, typer.Option("--by", help="Who does it (kept in the audit trail).")]
LangOpt = Annotated[str | None, typer.Option(
    "--lang", help="Language of summaries and evidence: zh or en (default: alerts.language).")]


def _lang(lang: str | None, router: Router) -> str:
    """The language asked for, else the one the managers' messages are written in."""
    if lang is None:
        return router.settings.language
    if lang not in ("zh", "en"):
        raise typer.BadParameter(f"{lang!r}: use zh or en", param_hint="--lang")
    return lang


def _summary(alert: dict[str, object], lang: str) -> str:
    """The alert's summary in ``lang`` (the stored one is the detector's English)."""
    import json

    from gridwatch._i18n_terms import summary_text

    try:
        evidence = json.loads(str(alert.get("evidence") or "{}"))
    except ValueError:
        evidence = {}
    return summary_text(lang, str(alert["type"]), str(alert["state"]),
                        evidence if isinstance(evidence, dict) else {},
                        str(alert.get("summary") or ""))


def _router(config: Path | None) -> Router:
    """The router over the configured state database, without network channels."""
    from gridwatch._cli_common import settings_or_exit
    from gridwatch.alerts._registry import RegistryError
    from gridwatch.alerts._service import build_router
    from gridwatch.alerts._templates import TemplateError

    settings = settings_or_exit(config)
    try:
        return build_router(settings, notifiers={})
    except (RegistryError, TemplateError) as exc:
        err.print(f"[bold red]config error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _duration(text: str) -> timedelta:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if not m:
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 2h or 1d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
    return timedelta(**{unit: float(m.group(1))})


@alerts_app.command("list")
def list_alerts(
    config: ConfigOpt = None,
    state: Annotated[str | None, typer.Option(help="firing, acknowledged or resolved")] = None,
    cell: Annotated[str | None, typer.Option(help="Only this grid cell.")] = None,
    tsv: Annotated[bool, typer.Option("--tsv", help="Tab-separated lines, for scripts.")] = False,
    lang: LangOpt = None,
) -> None:
    """List alerts, oldest first, each with its summary."""
    router = _router(config)
    language = _lang(lang, router)
    if tsv:
        for a in router.alerts(state=state, grid_cell=cell):
            print("\t".join([*(str(a[k] or "") for k in (
                "fingerprint", "state", "severity", "grid_cell", "customer_id", "onset",
                "acked_by")), _summary(a, language).replace("\t", " ")]))
        return
    table = Table("fingerprint", "state", "severity", "cell", "customer", "since", "acked by",
                  "summary")
    for a in router.alerts(state=state, grid_cell=cell):
        table.add_row(a["fingerprint"], a["state"], a["severity"], a["grid_cell"] or "-",
                      a["customer_id"] or "-", a["onset"][:16], a["acked_by"] or "",
                      _summary(a, language))
    out.print(table)
    out.print(f"counters: {router.counters()}", highlight=False)


@alerts_app.command("show")
def show(fingerprint: str, config: ConfigOpt = None, lang: LangOpt = None) -> None:
    """One alert, its summary and evidence in the reader's language, and its full audit
    trail (who did what, when)."""
    import json

    from gridwatch._i18n_terms import evidence_items

    router = _router(config)
    language = _lang(lang, router)
    alert = router.alert(fingerprint)
    if alert is None:
        err.print(f"no alert {fingerprint!r}")
        raise typer.Exit(1)
    for key, value in alert.items():
        if key == "summary":
            value = _summary(alert, language)
        elif key == "evidence":
            try:
                doc = json.loads(value or "{}")
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                value = "; ".join(f"{k}: {v}" for k, v in evidence_items(language, doc))
        out.print(f"{key:>13}: {value}", highlight=False)
    table = Table("at", "action", "by", "recipient", "detail")
    for row in router.audit_trail(fingerprint):
        table.add_row(row["at"][:19], row["action"], row["by"], row["recipient"] or "",
                      row["detail"])
    out.print(table)


@alerts_app.command("ack")
def ack(fingerprint: str, by: ByOpt, config: ConfigOpt = None) -> None:
    """Acknowledge an open alert: stops repeats and escalation."""
    from gridwatch.alerts._router import UnknownAlert

    try:
        _router(config).ack(fingerprint, by=by)
    except UnknownAlert as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    out.print(f"acknowledged {fingerprint}")


@alerts_app.command("resolve")
def resolve(fingerprint: str, by: ByOpt, config: ConfigOpt = None,
            reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")] = ""
            ) -> None:
    """Resolve an open alert by hand; whoever was told gets a resolved notice."""
    from gridwatch.alerts._router import UnknownAlert

    try:
        _router(config).resolve(fingerprint, by=by, reason=reason)
    except UnknownAlert as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    out.print(f"resolved {fingerprint}")


@alerts_app.command("silence")
def silence(
    by: ByOpt,
    match: Annotated[list[str], typer.Option("--match", "-m",
                                             help="label=value, repeatable (type, meter_id, "
                                                  "grid_cell, customer_id, severity, ...)")],
    duration: Annotated[str, typer.Option("--for", help="How long: 30m, 2h, 1d.")] = "2h",
    comment: str = "",
    config: ConfigOpt = None,
) -> None:
    """Mute notifications of matching alerts for a while (they are still recorded)."""
    matchers = {}
    for m in match:
        key, sep, value = m.partition("=")
        if not sep or not key or not value:
            raise typer.BadParameter(f"{m!r} is not label=value")
        matchers[key.strip()] = value.strip()
    now = datetime.now(UTC)
    try:
        sid = _router(config).silence(matchers, now + _duration(duration), by=by, now=now,
                                      comment=comment)
    except ValueError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    out.print(f"silence {sid} until {(now + _duration(duration)).isoformat()}")


@alerts_app.command("route-test")
def route_test(
    meter: Annotated[str, typer.Option(help="Meter id of the sample alert.")],
    type_: Annotated[str, typer.Option("--type", help="Event type.")] = "abnormal_consumption",
    severity: Annotated[str, typer.Option(help="info, warning or critical.")] = "warning",
    tags: Annotated[str, typer.Option(help="Comma-separated profile tags.")] = "",
    config: ConfigOpt = None,
) -> None:
    """Show where a sample alert would go: labels, matching routes, recipients, channels."""
    router = _router(config)
    cust = router.registry.customer_for_meter(meter)
    labels = {
        "fingerprint": f"{meter}/{type_}", "meter_id": meter, "type": type_,
        "severity": severity, "customer_id": cust.id if cust else None,
        "grid_cell": cust.grid_cell if cust else None,
        "customer_class": cust.customer_class.value if cust else None,
        "tags": tuple(t.strip() for t in tags.split(",") if t.strip()), "segment": None,
    }
    out.print(f"labels: {labels}", highlight=False)
    for route in router.routes.match(labels):
        out.print(f"route: {route.name or '(unnamed)'} -> {', '.join(route.receivers or ())}",
                  highlight=False)
    cell = router.registry.cell(labels["grid_cell"]) if labels["grid_cell"] else None
    for receiver in router.routes.receivers_for(labels):
        if receiver == "cell_manager":
            recipient = f"manager:{cell.primary}" if cell else None
            if cell and cell.backup:
                out.print(f"  (escalates to manager:{cell.backup} when not acknowledged in "
                          f"{router.settings.escalate_after_s:g}s)", highlight=False)
        elif receiver == "backup_manager":
            recipient = f"manager:{cell.backup}" if cell and cell.backup else None
        elif receiver == "customer":
            recipient = f"customer:{cust.id}" if cust and cust.notices else None
        else:
            recipient = f"receiver:{receiver}"
        if recipient is None:
            out.print(f"{receiver}: nobody (not in the registry or not opted in)")
            continue
        channels, lang, audience, name = router._channels_for(recipient)
        targets = ", ".join(f"{c} {t}" for c, t in channels) or "no channel"
        out.print(f"{receiver}: {recipient} ({name}, {lang}, {audience}): {targets}",
                  highlight=False)


@alerts_app.command("outbox")
def outbox(
    config: ConfigOpt = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed")] = None,
) -> None:
    """The outbox: every notification, its channel, attempts and last error."""
    router = _router(config)
    table = Table("id", "status", "recipient", "channel", "attempts", "next attempt", "error")
    for o in router.outbox(status):
        table.add_row(str(o["id"]), o["status"], o["recipient"], o["channel"],
                      str(o["attempts"]), o["next_attempt_at"][:19], o["last_error"] or "")
    out.print(table)


@alerts_app.command("requeue")
def requeue(outbox_id: int, by: ByOpt, config: ConfigOpt = None) -> None:
    """Retry a failed outbox entry from scratch (after fixing its channel)."""
    try:
        _router(config).requeue(outbox_id, by=by)
    except KeyError as exc:
        err.print(exc.args[0])
        raise typer.Exit(1) from None
    out.print(f"outbox #{outbox_id} queued again")


@alerts_app.command("deliver")
def deliver(config: ConfigOpt = None) -> None:
    """Tick once and deliver the outbox now, with the configured channels."""
    from gridwatch._cli_common import settings_or_exit
    from gridwatch.alerts._service import build_router

    router = build_router(settings_or_exit(config))
    made = router.tick()
    sent = router.deliver_pending()
    out.print(f"{made} notification(s) made, {sent} delivered; "
              f"{len(router.outbox('pending'))} pending, {len(router.outbox('failed'))} failed")
    router.close()


def acl_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for acl, passwd and "
                                          "credentials.csv.")] = Path("var/mosquitto"),
    router_user: Annotated[str | None, typer.Option(help="The router's MQTT login (default: "
                                                    "alerts.mqtt_username or mqtt.username "
                                                    "or gridwatch-alerts).")] = None,
    collector_user: Annotated[str | None, typer.Option(
        help="The collector's MQTT login (default: mqtt.username or gridwatch-collector).")]
        = None,
    region: Annotated[list[str] | None, typer.Option(
        "--region", help="A region whose concentrators get a login (region-<name>) that may "
                         "publish only that region's reading and batch topics (repeat).")]
        = None,
    meter_logins: Annotated[bool, typer.Option(
        "--meter-logins", help="Also one login per registry meter (its id), allowed to "
                               "publish only its own reading topic.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Write a mosquitto ACL and password file for the deployment: the collector reads readings
    and writes dead letters; each region's concentrators (and, with --meter-logins, each meter)
    publish only their own topics; each manager reads only its own alerts topic, each
    industrial customer only its own notices topic; the router writes alerts and reads
    commands."""
    from gridwatch._cli_common import settings_or_exit
    from gridwatch.alerts._acl import write_acl
    from gridwatch.alerts._registry import Registry, RegistryError

    settings = settings_or_exit(config)
    try:
        registry = Registry.load(settings.alerts.registry)
    except RegistryError as exc:
        err.print(f"[bold red]config error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    a, m = settings.alerts, settings.mqtt
    user = router_user or a.mqtt_username or m.username or "gridwatch-alerts"
    collector = collector_user or m.username or "gridwatch-collector"
    passwords: dict[str, str] = {}
    if m.password is not None and m.username:
        passwords[m.username] = m.password.get_secret_value()
    elif m.password_file is not None and m.username and m.password_file.exists():
        passwords[m.username] = m.password_file.read_text().strip()
    if a.mqtt_password is not None:
        passwords[user] = a.mqtt_password.get_secret_value()
    try:
        files = write_acl(registry, a, out_dir, router_user=user, passwords=passwords,
                          collector_user=collector, topics=settings.topics,
                          regions=region or (), meter_logins=meter_logins)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out.print(f"wrote {files.acl} and {files.passwd} for {len(files.users)} logins; passwords "
              f"in {files.credentials} (mode 0600)")
    out.print(f"collector login: {collector}; router login: {user}", highlight=False)
    out.print(f"mosquitto.conf:\n  allow_anonymous false\n  password_file {files.passwd}\n"
              f"  acl_file {files.acl}", highlight=False)
