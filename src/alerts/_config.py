"""Settings of the alert router and its channels."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from gridwatch._config_base import Section, known_zone, reject_placeholder

_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class SmtpSettings(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "gridwatch@localhost"
    timeout_s: Annotated[float, Field(gt=0)] = 10.0

    _no_placeholder = field_validator("password")(reject_placeholder)


class QuietHours(Section):
    """Local hours when customer notices wait (critical ones still go out)."""

    enabled: bool = True
    start: Annotated[str, Field(pattern=_HHMM)] = "22:00"
    end: Annotated[str, Field(pattern=_HHMM)] = "07:00"
    timezone: str = "Asia/Shanghai"

    _known_zone = field_validator("timezone")(known_zone)


class RetrySettings(Section):
    """Delivery retries: exponential backoff from ``base_s`` doubling up to ``max_s``."""

    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 12
    base_s: Annotated[float, Field(gt=0)] = 2.0
    max_s: Annotated[float, Field(gt=0)] = 600.0


class AlertSettings(Section):
    """The ``alerts`` section: files, state database, timing of the lifecycle, channels."""

    enabled: bool = True
    registry: Path = Path("config/registry.yaml")
    routes: Path = Path("config/routes.yaml")
    templates: Path = Path("config/templates")
    state_db: Path = Path("alerts.sqlite")
    jsonl_out: Path | None = Path("alerts.jsonl")
    group_wait_s: Annotated[float, Field(ge=0)] = 30.0
    group_interval_s: Annotated[float, Field(ge=0)] = 300.0
    #: Re-notify managers of a still-firing, unacknowledged alert this often; 0 turns it off.
    repeat_interval_s: Annotated[float, Field(ge=0)] = 4 * 3600.0
    #: Escalate to the cell's backup manager when not acknowledged by then; 0 turns it off.
    escalate_after_s: Annotated[float, Field(ge=0)] = 1800.0
    webhook_secret: SecretStr | None = None
    #: HTTP header carrying ``sha256=<hex HMAC of the body>`` on webhook deliveries.
    webhook_signature_header: str = "X-Gridwatch-Signature"
    alertmanager_url: str | None = None
    smtp: SmtpSettings = SmtpSettings()
    #: A cell manager gets one storm summary instead of single alerts when a group holds at
    #: least this many firing alerts.
    storm_threshold: Annotated[int, Field(ge=2)] = 10
    quiet_hours: QuietHours = QuietHours()
    #: Non-critical notices per customer per rolling hour; the rest wait (never dropped).
    customer_rate_per_hour: Annotated[int, Field(ge=1)] = 4
    retry: RetrySettings = RetrySettings()
    #: Language of manager messages and of customer notices without a language of their own.
    language: Literal["zh", "en"] = "zh"
    #: MQTT login of the router (falls back to the ``mqtt`` section's host, port and login).
    mqtt_client_id: Annotated[str, Field(min_length=1, max_length=64)] = "gridwatch-alerts"
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    manager_topic: str = "gridwatch/managers/{manager_id}/alerts"
    customer_topic: str = "gridwatch/customers/{customer_id}/notices"
    #: Managers publish ``{"fingerprint": ..., "action": "ack"}`` here to acknowledge.
    command_topic: str = "gridwatch/managers/{manager_id}/commands"
    #: How often ``RouterService`` ticks and delivers, seconds.
    service_interval_s: Annotated[float, Field(gt=0)] = 1.0
    #: Tag catalogue the running engine evaluates each day (docs/tags.md); None: no tags.
    tags_catalogue: Path | None = Path("config/tags")
    #: Time-of-use schedule of the tariff-period features.
    tariff: Path = Path("config/tariffs/guangdong.yaml")
    #: Tag store (imports, features, tags, history); unset: tags.sqlite beside ``state_db``.
    tags_db: Path | None = None
    #: A day's tags are evaluated once no profile of it arrived for this long (or a later
    #: day's profile arrives), seconds.
    tags_settle_s: Annotated[float, Field(gt=0)] = 5.0

    _no_placeholder = field_validator("webhook_secret", "mqtt_password")(reject_placeholder)

    @field_validator("manager_topic", "command_topic")
    @classmethod
    def _has_manager(cls, v: str) -> str:
        if "{manager_id}" not in v or re.search(r"[+#]", v):
            raise ValueError(f"topic {v!r} must contain {{manager_id}} and no wildcard")
        return v

    @field_validator("customer_topic")
    @classmethod
    def _has_customer(cls, v: str) -> str:
        if "{customer_id}" not in v or re.search(r"[+#]", v):
            raise ValueError(f"topic {v!r} must contain {{customer_id}} and no wildcard")
        return v
