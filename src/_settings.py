"""The one frozen settings root: a YAML settings file plus ``GRIDWATCH_*`` environment.

Precedence, highest first: values passed in code, the environment (``GRIDWATCH_MQTT__PORT=1884``;
nested sections joined with ``__``), the YAML file, the defaults. Built once in ``main()`` and
passed down; nothing reads settings at import time.

The settings file is the first of: the ``--config`` flag, ``$GRIDWATCH_CONFIG``,
``./config/gridwatch.yaml``, ``$XDG_CONFIG_HOME/gridwatch/gridwatch.yaml`` (default
``~/.config/...``), ``/etc/gridwatch/gridwatch.yaml`` (:func:`find_config`). All state (journal,
dead letters, spool, alert database, recovery) lives under ``engine.data_dir``
(:func:`place_state`), never in whatever directory a command was started from.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from gridwatch._config_base import Section
from gridwatch._redact import mask_credentials
from gridwatch.alerts._config import AlertSettings
from gridwatch.ingest._config import IngestSettings, MqttSettings, TopicSettings
from gridwatch.models._config import DetectionSettings
from gridwatch.storage._config import InfluxSettings
from gridwatch.web._config import WebSettings

#: The settings file of a checkout, looked for in the current directory.
DEFAULT_CONFIG = Path("config/gridwatch.yaml")




class ConfigError(Exception):
    """The configuration cannot be used. ``str()`` is one line naming the field and the problem."""


class EngineSettings(Section):
    #: Where all state lives: journal, dead letters, storage spool, alert database and record,
    #: recovery. Relative state paths of the other sections are taken under it. Unset: see
    #: :func:`default_data_dir`. A relative value in a settings file is taken from the file's
    #: folder; from the environment, from the current directory.
    data_dir: Path | None = None
    #: bytewax epoch length: how much work a crash may make the engine redo. bytewax snapshots
    #: the state at the end of every epoch (there is no separate snapshot interval).
    epoch_s: float = 2.0
    #: Directory of bytewax recovery partitions; recovery is off when unset.
    recovery_dir: Path | None = None
    backup_interval_s: float = 0.0
    workers: int = 1
    #: Warm start: in a cell without recovery state, seed each meter from its stored
    #: readings of this many days before its first reading (InfluxQL ``/query``; a week:
    #: the whole time-of-week baseline); 0 turns it off. Only when the database holds
    #: readings: a cell's first batch asks for all of its registry meters at once (one query
    #: per 200 meters), and the cell steps their history before its readings.
    warm_start_days: float = 7.0
    #: Cluster placement (``gridwatch run -i/-a``): process id -> grid cells (ids or
    #: ``fnmatch`` patterns such as ``north-*``) that process watches. Put each cell where its
    #: meters' readings arrive (the process whose collector hears them), and its readings never
    #: cross between processes. Cells named nowhere go where bytewax's hash sends them.
    #: Changing it changes the cells' keys: start it with a fresh recovery directory.
    placement: dict[Annotated[int, Field(ge=0)],
                    list[Annotated[str, Field(min_length=1, max_length=128)]]] = \
        Field(default_factory=dict)
    #: The placed cells' readings reach only their own process: each process's collector
    #: subscribes to its own cells' topics (no shared subscription for them). A placed cell
    #: then steps its readings as they come instead of waiting for every process's partition
    #: to deliver up to their time. Leave it off when the collectors share the subscription.
    placement_exclusive: bool = False
    #: The cycle collector of ``gridwatch run`` and ``replay``: once the dataflow is built,
    #: the start-up objects are frozen (``gc.freeze``, never scanned again) and a collection
    #: of the youngest generation starts after this many new container objects (Python's
    #: own: 700; the older generations every 20 of the younger). 0 leaves Python's settings.
    #: Higher: fewer, longer pauses (0.15-0.23 s each at 250,000 in a 100,000-meter
    #: engine); the pauses are exported as ``gridwatch_gc_pause_seconds``. See
    #: docs/performance.md, "Garbage collection".
    gc_threshold: Annotated[int, Field(ge=0)] = 250_000
    #: ``gridwatch run`` runs its MQTT collector in a process of its own, which writes the
    #: journal that the dataflow follows: decoding and journaling no longer share the
    #: dataflow's interpreter lock, at the cost of the in-memory hand-over (the dataflow
    #: decodes every record). ``auto`` (the default): in a process of its own when this
    #: machine has two cores or more for each engine process on it, a thread of the engine
    #: otherwise; ``true``/``false`` decide. See docs/scaling.md, "The collector in a process
    #: of its own". The engine restarts the process if it ends, the process stops when the
    #: engine is gone, and the engine's metrics endpoint serves the process's metrics too.
    collector_process: bool | Literal["auto"] = "auto"
    #: The collector process also serves its own metrics (``gridwatch_ingest_*``) on this
    #: port (+ the process id in a cluster); 0: only through the engine's endpoint.
    collector_metrics_port: Annotated[int, Field(ge=0, le=65_535)] = 0

    @field_validator("placement")
    @classmethod
    def _one_process_per_pattern(cls, value: dict[int, list[str]]) -> dict[int, list[str]]:
        seen: dict[str, int] = {}
        for pid, patterns in value.items():
            for pattern in patterns:
                if pattern in seen and seen[pattern] != pid:
                    raise ValueError(f"{pattern!r} is placed on process {seen[pattern]} and on "
                                     f"process {pid}")
                seen[pattern] = pid
        return value

    @model_validator(mode="before")
    @classmethod
    def _removed_settings(cls, data: Any) -> Any:
        if isinstance(data, dict) and "snapshot_every_s" in data:
            raise ValueError("snapshot_every_s was removed: bytewax snapshots the state at the "
                             "end of every epoch, so engine.epoch_s sets how often")
        return data


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
    web: WebSettings = WebSettings()

    @model_validator(mode="after")
    def _exclusive_regions_apart(self) -> Settings:
        # A region two processes hear reaches both journals' partitions: a placed cell would
        # then step readings from two partitions as if from one.
        if self.engine.placement_exclusive:
            for region, pids in self.topics.shared_regions().items():
                raise ValueError(
                    f"topics.regions: region {region!r} is listed for processes "
                    f"{', '.join(map(str, pids))}, but engine.placement_exclusive needs "
                    "each region's readings to reach one process only")
        return self

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
        shown = " (got ***)" if secretish else f" (got {mask_credentials(repr(value))})"
    more = f"; and {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
    return mask_credentials(f"{source}: {field}: {msg}{shown}{more}")


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings file (``path``, else the first found by :func:`find_config`), apply
    the environment and ``overrides``, validate everything, and place the state under
    ``engine.data_dir`` (:func:`place_state`).

    Raises :class:`ConfigError` with a one-line message on any problem.
    """
    found = find_config(path)
    cfg_path = found.path
    data: dict[str, Any] = {}
    if cfg_path is not None:
        if not cfg_path.exists():
            raise ConfigError(f"{cfg_path}: no such configuration file")
        data = _anchor_data_dir(_read_yaml(cfg_path), cfg_path)
    source = str(cfg_path) if cfg_path is not None else "settings"
    token = _FILE_DATA.set(data)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None
    finally:
        _FILE_DATA.reset(token)
    return place_state(settings)


# -- where the settings file and the state are ---------------------------------------------


@dataclass(frozen=True)
class ConfigSource:
    """The settings file a command uses (``None``: none was found, the defaults apply) and how
    it was chosen."""

    path: Path | None
    how: str

    def describe(self) -> str:
        if self.path is None:
            return f"no settings file ({self.how}); defaults and GRIDWATCH_* variables"
        return f"{self.path} ({self.how})"


def user_config_dir() -> Path:
    """``$XDG_CONFIG_HOME/gridwatch``, by default ``~/.config/gridwatch``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gridwatch"


def config_search_path() -> list[Path]:
    """Where a settings file is looked for when neither ``--config`` nor
    ``$GRIDWATCH_CONFIG`` names one, in order."""
    return [DEFAULT_CONFIG, user_config_dir() / "gridwatch.yaml",
            Path("/etc/gridwatch/gridwatch.yaml")]


def find_config(path: Path | None = None) -> ConfigSource:
    """The settings file to use: ``path`` (the ``--config`` flag), else
    ``$GRIDWATCH_CONFIG``, else the first file of :func:`config_search_path` that exists.
    A named file is returned even when missing, so that loading it fails clearly."""
    if path is not None:
        return ConfigSource(Path(path), "--config")
    named = os.environ.get("GRIDWATCH_CONFIG")
    if named:
        return ConfigSource(Path(named), "$GRIDWATCH_CONFIG")
    for candidate in config_search_path():
        if candidate.is_file():
            return ConfigSource(candidate.absolute(), "found in the search path")
    looked = ", ".join(str(p) for p in config_search_path())
    return ConfigSource(None, f"looked for {looked}")


def default_data_dir() -> Path:
    """Where state lives when ``engine.data_dir`` is not set: ``/var/lib/gridwatch`` for root,
    else ``$XDG_STATE_HOME/gridwatch`` (by default ``~/.local/state/gridwatch``)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/gridwatch")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gridwatch"


def _anchor_data_dir(data: dict[str, Any], cfg_path: Path) -> dict[str, Any]:
    """A relative ``engine.data_dir`` written in a settings file is taken from the file's
    folder, so the state stays beside the file wherever the command starts."""
    engine = data.get("engine")
    if isinstance(engine, dict) and isinstance(engine.get("data_dir"), str):
        d = Path(engine["data_dir"]).expanduser()
        if not d.is_absolute():
            engine = engine | {"data_dir": str((cfg_path.parent / d).resolve())}
            data = data | {"engine": engine}
    return data


#: The settings that hold state: (section, field). A relative value is taken under
#: ``engine.data_dir``.
STATE_PATHS: tuple[tuple[str, str], ...] = (
    ("ingest", "journal_dir"),
    ("ingest", "deadletter_dir"),
    ("influx", "spool_dir"),
    ("alerts", "state_db"),
    ("alerts", "jsonl_out"),
    ("engine", "recovery_dir"),
    ("web", "db"),
    ("web", "secret_file"),
)


def place_state(settings: Settings) -> Settings:
    """The settings with ``engine.data_dir`` made absolute (its default when unset) and every
    relative state path of :data:`STATE_PATHS` taken under it."""
    data_dir = (settings.engine.data_dir or default_data_dir()).expanduser().resolve()
    updates: dict[str, dict[str, Any]] = {"engine": {"data_dir": data_dir}}
    for section, name in STATE_PATHS:
        value = getattr(getattr(settings, section), name)
        if isinstance(value, Path) and not value.expanduser().is_absolute():
            updates.setdefault(section, {})[name] = data_dir / value
    return settings.model_copy(update={
        section: getattr(settings, section).model_copy(update=fields)
        for section, fields in updates.items()
    })
