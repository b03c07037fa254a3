"""The one frozen settings root: ``config/gridwatch.yaml`` plus ``GRIDWATCH_*`` environment.

Precedence, highest first: values passed in code, the environment (``GRIDWATCH_MQTT__PORT=1884``;
nested sections joined with ``__``), the YAML file, the defaults. Built once in ``main()`` and
passed down; nothing reads settings at import time.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from gridwatch._config_base import Section
from gridwatch.alerts._config import AlertSettings
from gridwatch.ingest._config import IngestSettings, MqttSettings, TopicSettings
from gridwatch.models._config import DetectionSettings
from gridwatch.storage._config import InfluxSettings

DEFAULT_CONFIG = Path("config/gridwatch.yaml")


class ConfigError(Exception):
    """The configuration cannot be used. ``str()`` is one line naming the field and the problem."""


class EngineSettings(Section):
    #: bytewax epoch length: how much work a crash may make the engine redo.
    epoch_s: float = 2.0
    #: Directory of bytewax recovery partitions; recovery is off when unset.
    recovery_dir: Path | None = None
    snapshot_every_s: float = 10.0
    backup_interval_s: float = 0.0
    workers: int = 1
    #: Warm start: without recovery state, seed each meter from its stored readings of this
    #: many days before its first reading (InfluxQL ``/query``); 0 turns it off. Costs one
    #: query per cell batch with new meters during each cell's first intervals.
    warm_start_days: float = 0.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRIDWATCH_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        validate_default=True,
    )

    mqtt: MqttSettings = MqttSettings()
    topics: TopicSettings = TopicSettings()
    ingest: IngestSettings = IngestSettings()
    detection: DetectionSettings = DetectionSettings()
    influx: InfluxSettings = InfluxSettings()
    alerts: AlertSettings = AlertSettings()
    engine: EngineSettings = EngineSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Values passed in code, then the environment, then the file being loaded.
        file_source = InitSettingsSource(settings_cls, init_kwargs=_FILE_DATA.get() or {})
        return (init_settings, env_settings, file_source)


#: The YAML content while :func:`load_settings` builds the root (a source of its own, below the
#: environment); empty otherwise.
_FILE_DATA: ContextVar[dict[str, Any] | None] = ContextVar("gridwatch_settings_file", default=None)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError(f"{path}: the top level must be a mapping of sections, not {kind}")
    return data


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line: the first bad field, its problem and value, and how many more there are."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = ".".join(str(p) for p in first["loc"]) or "(root)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown setting (check the spelling)"
    value = first.get("input")
    shown = ""
    if first["type"] != "extra_forbidden" and not isinstance(value, dict | list):
        secretish = any(s in field for s in ("password", "token", "secret"))
        shown = " (got ***)" if secretish else f" (got {value!r})"
    more = f"; and {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
    return f"{source}: {field}: {msg}{shown}{more}"


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (``path``, else ``$GRIDWATCH_CONFIG``, else ``config/gridwatch.yaml``
    when present), apply the environment and ``overrides``, and validate everything.

    Raises :class:`ConfigError` with a one-line message on any problem.
    """
    explicit = path is not None or "GRIDWATCH_CONFIG" in os.environ
    cfg_path = Path(path or os.environ.get("GRIDWATCH_CONFIG") or DEFAULT_CONFIG)
    data: dict[str, Any] = {}
    if cfg_path.exists():
        data = _read_yaml(cfg_path)
    elif explicit:
        raise ConfigError(f"{cfg_path}: no such configuration file")
    source = str(cfg_path) if cfg_path.exists() else "settings"
    token = _FILE_DATA.set(data)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None
    finally:
        _FILE_DATA.reset(token)
