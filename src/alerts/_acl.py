"""``gridwatch acl``: a mosquitto ACL and password file for the whole deployment.

- the collector's login reads the reading, batch and telemetry topics and writes dead letters;
- each region's concentrators (one login per region) write only the reading and batch topics of
  their region; with meter logins, each meter writes only its own reading topic;
- each manager's login reads only its own alerts topic and writes only its own command topic;
- each industrial (or opted-in) customer's login reads only its own notices topic;
- the router's login writes the alert topics and reads the command topics.

A login used for two roles (the collector and the router sharing ``mqtt.username``) gets the
rules of both. Passwords are generated once, kept in a credentials file readable by its owner
only, and stored in the password file as mosquitto's PBKDF2-SHA512 hashes (``$7$``).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gridwatch._schemas import CustomerClass
from gridwatch.alerts._config import AlertSettings
from gridwatch.alerts._registry import Registry

if TYPE_CHECKING:
    from gridwatch.ingest._config import TopicSettings

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default


def mosquitto_hash(password: str, *, salt: bytes | None = None,
                   iterations: int = PBKDF2_ITERATIONS) -> str:
    """A mosquitto 2.x password-file hash: ``$7$<iterations>$<salt b64>$<hash b64>``."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=64)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


@dataclass(frozen=True)
class AclFiles:
    acl: Path
    passwd: Path
    credentials: Path
    users: tuple[str, ...]


def _read_credentials(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as fh:
        return {row["user"]: row["password"] for row in csv.DictReader(fh)
                if row.get("user") and row.get("password")}


def acl_rules(registry: Registry, alerts: AlertSettings, *, router_user: str,
              extra: Mapping[str, Sequence[str]] | None = None,
              collector_user: str | None = None, topics: TopicSettings | None = None,
              regions: Sequence[str] = (), meter_logins: bool = False,
              region_user: str = "region-{region}") -> dict[str, list[str]]:
    """user -> ACL lines (``topic read|write|readwrite <filter>``), in a stable order.

    With ``topics`` (the settings' ``topics`` section): a ``collector_user`` login, one login
    per region in ``regions`` (``region_user`` with ``{region}``) and, with ``meter_logins``,
    one login per registry meter (its id)."""
    rules: dict[str, list[str]] = {}

    def add(user: str, lines: Sequence[str], role: str, *, shared: bool = False) -> None:
        if user in rules and not shared:
            raise ValueError(f"{role} login {user!r} is also another login of the deployment")
        rules.setdefault(user, [])
        rules[user].extend(line for line in lines if line not in rules[user])

    add(router_user, [
        f"topic write {alerts.manager_topic.format(manager_id='+')}",
        f"topic write {alerts.customer_topic.format(customer_id='+')}",
        f"topic read {alerts.command_topic.format(manager_id='+')}",
    ], "router")
    if topics is not None:
        if collector_user:
            # The engine may use one login for its collector and its router: both roles.
            add(collector_user, [*(f"topic read {f}" for f in topics.reading_filters),
                                 *(f"topic read {f}" for f in topics.batch_filters),
                                 f"topic read {topics.telemetry}",
                                 f"topic write {topics.deadletter}"], "collector", shared=True)
        for region in regions:  # every reading and batch filter, in the region's place
            add(region_user.format(region=region),
                [f"topic write {topics.with_level(f, topics.region_level(f), region)}"
                 for f in (*topics.reading_filters, *topics.batch_filters)], "region")
        if meter_logins:
            for meter_id in sorted({m.id for c in registry.customers for m in c.meters}):
                level = topics.meter_id_level
                add(meter_id, [f"topic write {topics.with_level(f, level, meter_id)}"
                               for f in topics.reading_filters], "meter")
    for mgr in registry.managers:
        add(mgr.id, [
            f"topic read {alerts.manager_topic.format(manager_id=mgr.id)}",
            f"topic write {alerts.command_topic.format(manager_id=mgr.id)}",
        ], "manager")
    for cust in registry.customers:
        if cust.customer_class == CustomerClass.INDUSTRIAL or cust.notices:
            if cust.id in rules:
                raise ValueError(f"customer id {cust.id!r} is also a manager or service login")
            rules[cust.id] = [f"topic read {alerts.customer_topic.format(customer_id=cust.id)}"]
    for user, lines in (extra or {}).items():
        rules.setdefault(user, []).extend(lines)
    return rules


def write_acl(registry: Registry, alerts: AlertSettings, out_dir: Path, *,
              router_user: str = "gridwatch-alerts",
              extra: Mapping[str, Sequence[str]] | None = None,
              passwords: Mapping[str, str] | None = None,
              collector_user: str | None = None, topics: TopicSettings | None = None,
              regions: Sequence[str] = (), meter_logins: bool = False) -> AclFiles:
    """Write ``acl``, ``passwd`` and ``credentials.csv`` (mode 0600) under ``out_dir``.

    Existing credentials are kept, so re-running after a registry change only adds logins.
    ``passwords`` sets chosen ones (for example the router's and the collector's, from the
    settings). See :func:`acl_rules` for the logins.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rules = acl_rules(registry, alerts, router_user=router_user, extra=extra,
                      collector_user=collector_user, topics=topics, regions=regions,
                      meter_logins=meter_logins)
    cred_path = out_dir / "credentials.csv"
    creds = _read_credentials(cred_path)
    creds.update(passwords or {})
    for user in rules:
        creds.setdefault(user, secrets.token_urlsafe(18))
    lines = ["# gridwatch: generated by 'gridwatch acl' from the registry; do not edit.", ""]
    for user, user_rules in rules.items():
        lines.append(f"user {user}")
        lines.extend(user_rules)
        lines.append("")
    acl = out_dir / "acl"
    acl.write_text("\n".join(lines), encoding="utf-8")
    passwd = out_dir / "passwd"
    _write_private(passwd, "".join(f"{u}:{mosquitto_hash(creds[u])}\n" for u in rules))
    body = "user,password\n" + "".join(f"{u},{p}\n" for u, p in sorted(creds.items()))
    _write_private(cred_path, body)
    return AclFiles(acl=acl, passwd=passwd, credentials=cred_path, users=tuple(rules))


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
