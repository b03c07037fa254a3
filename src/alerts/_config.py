"""Settings of the alert router and its channels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator

from gridwatch._config_base import Section, reject_placeholder


class SmtpSettings(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "gridwatch@localhost"

    _no_placeholder = field_validator("password")(reject_placeholder)


class AlertSettings(Section):
    enabled: bool = True
    registry: Path = Path("config/registry.yaml")
    routes: Path = Path("config/routes.yaml")
    templates: Path = Path("config/templates")
    state_db: Path = Path("var/alerts.sqlite")
    jsonl_out: Path | None = Path("var/alerts.jsonl")
    group_wait_s: Annotated[float, Field(ge=0)] = 30.0
    group_interval_s: Annotated[float, Field(ge=0)] = 300.0
    repeat_interval_s: Annotated[float, Field(ge=0)] = 4 * 3600.0
    escalate_after_s: Annotated[float, Field(ge=0)] = 1800.0
    webhook_secret: SecretStr | None = None
    alertmanager_url: str | None = None
    smtp: SmtpSettings = SmtpSettings()

    _no_placeholder = field_validator("webhook_secret")(reject_placeholder)
