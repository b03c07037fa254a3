"""Wiring: ``build_router(settings)`` and the ``RouterService`` thread that ticks, delivers,
reloads the registry on change and takes acknowledgements from the MQTT command topic."""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from gridwatch.alerts._channels import (
    AlertmanagerNotifier,
    AppriseNotifier,
    EmailNotifier,
    MqttNotifier,
    Notifier,
    WebhookNotifier,
)
from gridwatch.alerts._registry import Registry
from gridwatch.alerts._router import Clock, Router, UnknownAlert
from gridwatch.alerts._routes import RouteTree
from gridwatch.alerts._templates import Templates

if TYPE_CHECKING:
    from gridwatch._settings import Settings

log = logging.getLogger("gridwatch.alerts")


def _mqtt_login(settings: Settings) -> tuple[str | None, Any]:
    a, m = settings.alerts, settings.mqtt
    if a.mqtt_username:
        return a.mqtt_username, a.mqtt_password
    password = m.password
    if password is None and m.password_file is not None:
        from pydantic import SecretStr

        password = SecretStr(m.password_file.read_text().strip())
    return m.username, password


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """One notifier per channel, configured from the settings."""
    a = settings.alerts
    username, password = _mqtt_login(settings)
    return {
        "mqtt": MqttNotifier(settings.mqtt.host, settings.mqtt.port,
                             client_id=a.mqtt_client_id, username=username, password=password),
        "webhook": WebhookNotifier(a.webhook_secret, header=a.webhook_signature_header),
        "email": EmailNotifier(a.smtp),
        "alertmanager": AlertmanagerNotifier(),
        "apprise": AppriseNotifier(),
    }


def build_router(settings: Settings, *, clock: Clock | None = None,
                 notifiers: dict[str, Notifier] | None = None) -> Router:
    """The router described by ``settings.alerts``: registry, routes, templates, state
    database, JSONL file and the channel notifiers. Raises RegistryError/TemplateError with a
    one-line message when a file is wrong."""
    a = settings.alerts
    routes = RouteTree.load(a.routes)
    return Router(
        Registry.load(a.registry),
        routes,
        db=a.state_db,
        templates=Templates(a.templates),
        notifiers=notifiers if notifiers is not None else build_notifiers(settings),
        settings=a,
        clock=clock,
        jsonl_out=a.jsonl_out,
        inhibit_rules=routes.inhibit,
        registry_path=a.registry,
    )


class CommandListener:
    """Subscribes to ``gridwatch/managers/+/commands``; a manager may acknowledge or resolve
    alerts of the cells it manages (primary or backup). The manager id comes from the topic,
    which the broker's ACL ties to the manager's login.

    It connects in the background and keeps reconnecting (``mqtt.reconnect_min_s`` to
    ``reconnect_max_s``), so the engine starts and keeps routing while the broker is down; the
    persistent session brings the commands sent meanwhile. ``refused`` holds the broker's
    answer when it refuses the login (a configuration error)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.commands: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._client: Any = None
        self.connected = threading.Event()
        self.refused: str | None = None
        self._down_logged = False

    def start(self) -> None:
        import paho.mqtt.client as mqtt

        a = self.settings.alerts
        username, password = _mqtt_login(self.settings)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=a.mqtt_client_id + "-cmd", protocol=mqtt.MQTTv311,
                             clean_session=False)
        if username:
            client.username_pw_set(username,
                                   password.get_secret_value() if password else None)
        pattern = a.command_topic.format(manager_id="+")
        parts = pattern.split("/")
        level = parts.index("+")

        m = self.settings.mqtt
        where = f"{m.host}:{m.port}"

        def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
            if rc == 0:
                self.refused = None
                self._down_logged = False
                self.connected.set()
                c.subscribe(pattern, qos=1)
                log.info("alert commands: connected to %s", where)
            else:
                self.refused = str(rc)
                log.error("alert commands: broker %s refused the login: %s", where, rc)

        def on_connect_fail(c: Any, u: Any) -> None:
            if not self._down_logged:
                self._down_logged = True
                log.warning("alert commands: cannot reach %s yet; retrying in the background",
                            where)

        def on_disconnect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
            self.connected.clear()

        def on_message(c: Any, u: Any, msg: Any) -> None:
            manager_id = msg.topic.split("/")[level]
            try:
                data = json.loads(msg.payload)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                data = {"_error": str(exc)}
            self.commands.put((manager_id, data))

        client.on_connect = on_connect
        client.on_connect_fail = on_connect_fail
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        client.reconnect_delay_set(m.reconnect_min_s, max(m.reconnect_min_s, m.reconnect_max_s))
        # connect_async: the network thread connects, and reconnects after a failure, so a
        # broker that is down at start does not stop the engine.
        client.connect_async(m.host, m.port, keepalive=m.keepalive_s)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
            self._client = None


def apply_command(router: Router, manager_id: str, data: dict[str, Any]) -> str:
    """Carry out one manager command; returns what happened (also in the audit trail)."""
    now = router.clock()
    fp = str(data.get("fingerprint", ""))
    action = str(data.get("action", "ack"))
    alert = router.alert(fp) if fp else None
    problem = data.get("_error")
    if problem is None and alert is None:
        problem = f"no alert {fp!r}"
    if problem is None and action not in ("ack", "resolve"):
        problem = f"unknown action {action!r} (ack or resolve)"
    if problem is None and alert is not None:
        cell = router.registry.cell(alert["grid_cell"]) if alert["grid_cell"] else None
        if cell is None or manager_id not in (cell.primary, cell.backup):
            problem = f"{manager_id} does not manage cell {alert['grid_cell']!r}"
    try:
        if problem is None:
            if action == "ack":
                router.ack(fp, by=f"manager:{manager_id}", now=now)
            else:
                router.resolve(fp, by=f"manager:{manager_id}", now=now,
                               reason=str(data.get("reason", "")))
            return "ok"
    except UnknownAlert as exc:
        problem = str(exc)
    with router._tx():
        router._count("commands_rejected")
        router._audit(now, "command_rejected", fingerprint=fp or None,
                      by=f"manager:{manager_id}", detail=f"{action}: {problem}")
    return problem


class RouterService:
    """A daemon thread: every ``interval_s`` it applies manager commands, reloads a changed
    registry, ticks and delivers. ``gridwatch run`` starts it next to the dataflow."""

    def __init__(self, router: Router, interval_s: float = 1.0, *,
                 commands: CommandListener | None = None) -> None:
        self.router = router
        self.interval_s = interval_s
        self.commands = commands
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None,
                      commands: bool = True) -> RouterService:
        """The router of ``build_router(settings)`` served every ``alerts.service_interval_s``,
        with the MQTT command listener unless ``commands`` is false. Call ``start()``."""
        return cls(build_router(settings, clock=clock), settings.alerts.service_interval_s,
                   commands=CommandListener(settings) if commands else None)

    def start(self) -> RouterService:
        # This process owns the database: what a crash left leased is due now.
        released = self.router.release_leases()
        if released:
            log.info("alert outbox: %d pending notification(s) due at start", released)
        if self.commands is not None:
            self.commands.start()
        self._thread = threading.Thread(target=self._run, name="gridwatch-alerts", daemon=True)
        self._thread.start()
        return self

    def run_once(self) -> int:
        """One round; returns the number of notifications delivered."""
        r = self.router
        if self.commands is not None:
            while True:
                try:
                    manager_id, data = self.commands.commands.get_nowait()
                except queue.Empty:
                    break
                apply_command(r, manager_id, data)
        r.maybe_reload()
        r.tick()
        return r.deliver_pending()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep serving; the error is logged and counted
                self.errors += 1
                log.exception("alert service round failed")
            self._stop.wait(self.interval_s)

    def stop(self, timeout: float = 10.0, *, close: bool = False) -> None:
        """Stop the thread (and the command listener); ``close`` also closes the router."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.commands is not None:
            self.commands.stop()
        if close:
            self.router.close()
