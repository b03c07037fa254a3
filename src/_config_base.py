"""Base class and helpers shared by every settings section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr

_PLACEHOLDERS = {"changeme", "change-me", "password", "secret", "xxx", "todo", "<token>", "..."}


class Section(BaseModel):
    """A frozen settings section: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def known_zone(value: str | None) -> str | None:
    """Refuse a time zone that is not an IANA name this machine knows (None passes)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if value is None:
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name like Asia/Shanghai)") from None
    return value


def reject_placeholder(value: SecretStr | None) -> SecretStr | None:
    """Refuse a secret that is obviously a placeholder copied from an example file."""
    if value is not None and value.get_secret_value().strip().lower() in _PLACEHOLDERS:
        raise ValueError("is a placeholder value; set the real secret in the environment")
    return value
