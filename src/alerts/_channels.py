"""Channels: thin adapters that send one rendered notification and say how it went.

``Notifier.send(notification) -> Delivery``; a failed delivery says whether it is worth retrying
(a refused connection or an HTTP 503 is; an HTTP 400 or an SMTP 550 is not). Every notification
carries its idempotency key so a receiver can drop a repeat after a crash between sending and
recording the delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import threading
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol, runtime_checkable

import requests
from pydantic import BaseModel, ConfigDict, SecretStr

from gridwatch.alerts._config import SmtpSettings


class Notification(BaseModel):
    """One message to one recipient on one channel, as the outbox keeps it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    recipient: str
    channel: str
    target: str
    kind: str  # alert | notice | storm | escalation | resolved
    status: str  # firing | resolved
    subject: str
    body: str
    language: str = "zh"
    created_at: datetime
    alerts: tuple[dict[str, Any], ...] = ()


class Delivery(BaseModel):
    """How a send went: ``ok``, or a failure that is ``retryable`` or not, with the reason."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    retryable: bool = False
    detail: str = ""

    @classmethod
    def success(cls, detail: str = "") -> Delivery:
        return cls(ok=True, detail=detail)

    @classmethod
    def retry(cls, detail: str) -> Delivery:
        return cls(ok=False, retryable=True, detail=detail)

    @classmethod
    def fail(cls, detail: str) -> Delivery:
        return cls(ok=False, retryable=False, detail=detail)


@runtime_checkable
class Notifier(Protocol):
    """A channel: sends one notification, returns how it went (never raises for IO errors)."""

    def send(self, notification: Notification) -> Delivery: ...


def _http_result(resp: requests.Response) -> Delivery:
    if 200 <= resp.status_code < 300:
        return Delivery.success(f"HTTP {resp.status_code}")
    detail = f"HTTP {resp.status_code}: {resp.text[:200]}"
    if resp.status_code in (408, 425, 429) or resp.status_code >= 500:
        return Delivery.retry(detail)
    return Delivery.fail(detail)


# ------------------------------------------------------------------------------------- MQTT
class MqttNotifier:
    """Publishes the notification as JSON (QoS 1, waiting for the broker's PUBACK) on the topic
    stored as its target: ``gridwatch/managers/{id}/alerts`` or ``.../customers/{id}/notices``."""

    def __init__(self, host: str, port: int, *, client_id: str = "gridwatch-alerts",
                 username: str | None = None, password: SecretStr | None = None,
                 timeout_s: float = 10.0) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.username, self.password, self.timeout_s = username, password, timeout_s
        self._client: Any = None
        self._connected = threading.Event()
        self._refused: str | None = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        import paho.mqtt.client as mqtt

        if self._client is not None and self._connected.is_set():
            return self._client
        self.close()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)
        if self.username:
            client.username_pw_set(
                self.username, self.password.get_secret_value() if self.password else None)
        self._connected.clear()
        self._refused = None

        def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
            if rc == 0:
                self._connected.set()
            else:
                self._refused = str(rc)

        def on_disconnect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
            self._connected.clear()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.connect(self.host, self.port, keepalive=30)
        client.loop_start()
        self._client = client
        if not self._connected.wait(self.timeout_s) or self._refused:
            reason = self._refused or "no CONNACK"
            self.close()
            raise ConnectionError(f"mqtt {self.host}:{self.port} refused the login: {reason}")
        return client

    def send(self, notification: Notification) -> Delivery:
        payload = notification.model_dump_json().encode()
        with self._lock:
            try:
                client = self._connect()
                info = client.publish(notification.target, payload, qos=1)
                info.wait_for_publish(self.timeout_s)
                if not info.is_published():
                    self.close()
                    return Delivery.retry(f"mqtt: no PUBACK within {self.timeout_s}s")
            except (OSError, RuntimeError, ValueError, ConnectionError) as exc:
                self.close()
                return Delivery.retry(f"mqtt {self.host}:{self.port}: {exc}")
        return Delivery.success(f"published to {notification.target}")

    def close(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
            self._client = None
            self._connected.clear()


# ------------------------------------------------------------------------------------- webhook
def alertmanager_webhook_payload(n: Notification, receiver: str) -> dict[str, Any]:
    """The body Prometheus Alertmanager's webhook receiver sends (``version: "4"``)."""
    alerts = [to_alertmanager_alert(a) | {"status": a["state_status"],
                                         "fingerprint": a["fingerprint"]}
              for a in n.alerts]
    labels = [a["labels"] for a in alerts]
    common_labels = {k: v for k, v in labels[0].items()
                     if all(lab.get(k) == v for lab in labels)} if labels else {}
    return {
        "version": "4",
        "groupKey": f"{{}}:{{recipient=\"{n.recipient}\"}}",
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": receiver,
        "groupLabels": {"recipient": n.recipient},
        "commonLabels": common_labels,
        "commonAnnotations": {"summary": n.subject},
        "externalURL": "",
        "alerts": alerts,
    }


class WebhookNotifier:
    """POSTs Alertmanager's webhook JSON, signed: header ``sha256=<HMAC-SHA256(secret, body)>``."""

    def __init__(self, secret: SecretStr | None = None, *,
                 header: str = "X-Gridwatch-Signature", timeout_s: float = 10.0) -> None:
        self.secret, self.header, self.timeout_s = secret, header, timeout_s
        self._session = requests.Session()

    def sign(self, body: bytes) -> str:
        key = self.secret.get_secret_value().encode() if self.secret else b""
        return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()

    def send(self, notification: Notification) -> Delivery:
        body = json.dumps(alertmanager_webhook_payload(notification, notification.recipient),
                          ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": notification.key}
        if self.secret is not None:
            headers[self.header] = self.sign(body)
        try:
            resp = self._session.post(notification.target, data=body, headers=headers,
                                      timeout=self.timeout_s)
        except requests.RequestException as exc:
            return Delivery.retry(f"webhook {notification.target}: {exc.__class__.__name__}")
        return _http_result(resp)


# ------------------------------------------------------------------------------------- email
class EmailNotifier:
    """Plain-text mail over SMTP, with STARTTLS and login when the settings ask for them."""

    def __init__(self, smtp: SmtpSettings, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.smtp = smtp
        self.tls_context = tls_context

    def message(self, n: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.smtp.sender
        msg["To"] = n.target
        msg["Subject"] = n.subject
        msg["Date"] = format_datetime(n.created_at)
        msg["Message-ID"] = make_msgid(idstring=n.key, domain="gridwatch")
        msg["X-Idempotency-Key"] = n.key
        msg.set_content(n.body)
        return msg

    def send(self, notification: Notification) -> Delivery:
        s = self.smtp
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as conn:
                conn.ehlo()
                if s.starttls:
                    conn.starttls(context=self.tls_context or ssl.create_default_context())
                    conn.ehlo()
                if s.username:
                    password = s.password.get_secret_value() if s.password else ""
                    conn.login(s.username, password)
                conn.send_message(self.message(notification))
        except smtplib.SMTPResponseException as exc:
            detail = f"smtp {s.host}:{s.port}: {exc.smtp_code} {exc.smtp_error!r}"
            return Delivery.retry(detail) if exc.smtp_code < 500 else Delivery.fail(detail)
        except smtplib.SMTPRecipientsRefused as exc:
            return Delivery.fail(f"smtp {s.host}:{s.port}: recipients refused {exc.recipients}")
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            return Delivery.retry(f"smtp {s.host}:{s.port}: {exc.__class__.__name__}: {exc}")
        return Delivery.success(f"mailed {notification.target}")


# ------------------------------------------------------------------------------ alertmanager
def to_alertmanager_alert(a: dict[str, Any]) -> dict[str, Any]:
    """One alert in Alertmanager's ``postableAlert`` form (labels and annotations are strings)."""
    out: dict[str, Any] = {
        "labels": {k: str(v) for k, v in a["labels"].items() if v is not None},
        "annotations": {k: str(v) for k, v in a["annotations"].items() if v is not None},
        "startsAt": a["starts_at"],
        "generatorURL": "",
    }
    out["endsAt"] = a.get("ends_at") or "0001-01-01T00:00:00Z"
    return out


class AlertmanagerNotifier:
    """Forwards the alerts to a Prometheus Alertmanager (``POST {target}/api/v2/alerts``)."""

    def __init__(self, *, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def send(self, notification: Notification) -> Delivery:
        alerts = []
        for a in notification.alerts:
            am = to_alertmanager_alert(a)
            if not a.get("ends_at"):
                del am["endsAt"]  # firing: Alertmanager resolves it after resolve_timeout
            alerts.append(am)
        url = notification.target.rstrip("/") + "/api/v2/alerts"
        try:
            resp = self._session.post(url, json=alerts, timeout=self.timeout_s,
                                      headers={"Idempotency-Key": notification.key})
        except requests.RequestException as exc:
            return Delivery.retry(f"alertmanager {url}: {exc.__class__.__name__}")
        return _http_result(resp)


# ------------------------------------------------------------------------------------- apprise
class AppriseNotifier:
    """Any service apprise knows (DingTalk, WeCom, Slack, ...) by its URL, the target."""

    def send(self, notification: Notification) -> Delivery:
        import apprise

        ap = apprise.Apprise()
        if not ap.add(notification.target):
            return Delivery.fail("apprise: the URL is not one apprise understands")
        result = ap.notify(body=notification.body, title=notification.subject)
        if result:
            return Delivery.success("apprise accepted")
        return Delivery.retry("apprise: the service did not accept the notification")
