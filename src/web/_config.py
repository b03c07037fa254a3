"""Settings of the manager's workspace (the ``web`` section)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator

from gridwatch._config_base import Section, known_zone, reject_placeholder

__all__ = ["WebSettings"]


class WebSettings(Section):
    """Where ``gridwatch serve`` listens and how it keeps accounts and sessions."""

    #: Also serve the workspace from ``gridwatch run``.
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    #: Accounts, sessions, verdicts and the web audit live here; the alert router's state
    #: database when unset (its tables are prefixed ``web_``).
    db: Path | None = None
    #: Key that signs session cookies. When unset, a random key is kept in ``secret_file``
    #: (a relative path is taken under ``engine.data_dir``, like the other state).
    secret_key: SecretStr | None = None
    secret_file: Path = Path("web.secret")
    session_ttl_s: Annotated[float, Field(gt=0)] = 12 * 3600.0
    #: Send cookies only over HTTPS (turn on behind a TLS proxy).
    cookie_secure: bool = False
    #: Failed logins allowed per account and per client address within ``login_window_s``.
    login_max_failures: Annotated[int, Field(ge=1)] = 5
    login_window_s: Annotated[float, Field(gt=0)] = 900.0
    #: Hours of load shown around an alert by default.
    chart_hours: Annotated[float, Field(gt=0, le=24 * 31)] = 24.0
    #: How often the alert list asks for new alerts (seconds).
    poll_s: Annotated[int, Field(ge=2, le=3600)] = 15
    page_size: Annotated[int, Field(ge=10, le=1000)] = 100
    #: Address of the workspace in links sent by email (digests); ``http://host:port`` when unset.
    public_url: str | None = None
    #: The workspace builds every manager's weekly digest by itself (off: only
    #: ``gridwatch digest`` does).
    digest_enabled: bool = True
    #: Day (0 = Monday … 6 = Sunday) and local hour when the digest of the week just ended is
    #: due; a workspace that is down then catches up once when it starts that week.
    digest_weekday: Annotated[int, Field(ge=0, le=6)] = 0
    digest_hour: Annotated[int, Field(ge=0, le=23)] = 8
    #: IANA time zone of ``digest_hour``; the detection time zone (``detection.timezone``) when
    #: unset.
    digest_timezone: str | None = None
    #: Also email the digest (``alerts.smtp``) to managers who have an email address; it is
    #: kept for ``/digest`` either way.
    digest_send: bool = True
    #: Sends of one manager's digest tried at most this often, ``digest_retry_s`` apart.
    digest_max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    digest_retry_s: Annotated[float, Field(gt=0)] = 1800.0

    _no_placeholder = field_validator("secret_key")(reject_placeholder)

    _known_zone = field_validator("digest_timezone")(known_zone)
