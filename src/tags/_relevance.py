"""Which of a customer's tags an alert message shows (``config/tags/relevance.yaml``).

A customer may carry twenty tags; a manager reading a possible-theft alert needs the few that
bear on theft (night use, a sudden drop, arrears, earlier theft alerts), not its dwelling type.
The table says, per alert type, which tags come first (ids or ``*`` patterns, in order) and
which dimensions after them; the rest follow, newest first, and a message shows at most
``limit`` of them and says how many more the workspace holds.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridwatch.tags._catalogue import CatalogueError
from gridwatch.tags._features import ALERT_TYPES

__all__ = ["AlertRelevance", "Relevance", "relevance_for"]

log = logging.getLogger(__name__)

Dimension = Literal["basic", "usage", "value", "needs"]


class AlertRelevance(BaseModel):
    """The tags that matter for one alert type: ids or patterns first, then dimensions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: tuple[str, ...] = ()
    dimensions: tuple[Dimension, ...] = ()


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=5, ge=1, le=50)
    default: AlertRelevance = AlertRelevance(dimensions=("usage", "needs", "value", "basic"))
    alerts: dict[str, AlertRelevance] = {}


class Relevance:
    """The table, checked: alert types are known ones, tag patterns match catalogue tags."""

    def __init__(self, limit: int = 5, default: AlertRelevance | None = None,
                 alerts: Mapping[str, AlertRelevance] | None = None) -> None:
        self.limit = limit
        self.default = default or _Table().default
        self.alerts = dict(alerts or {})

    @classmethod
    def from_data(cls, data: Any, source: str = "relevance",
                  tag_ids: Iterable[str] = ()) -> Relevance:
        try:
            t = _Table.model_validate(data or {})
        except ValidationError as exc:
            e = exc.errors(include_url=False)[0]
            loc = ".".join(str(x) for x in e["loc"])
            raise CatalogueError(f"{source}: {loc}: {e['msg']}") from None
        known = sorted(set(tag_ids))
        for name, rel in [("default", t.default), *t.alerts.items()]:
            if name != "default" and name not in ALERT_TYPES:
                raise CatalogueError(f"{source}: alerts.{name}: unknown alert type (known: "
                                     f"{', '.join(ALERT_TYPES)})")
            for pattern in rel.tags:
                if known and not fnmatch.filter(known, pattern):
                    raise CatalogueError(f"{source}: alerts.{name}: tag {pattern!r} matches "
                                         "no tag of the catalogue")
        return cls(t.limit, t.default, t.alerts)

    @classmethod
    def load(cls, path: str | Path, tag_ids: Iterable[str] = ()) -> Relevance:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CatalogueError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except yaml.YAMLError:
            raise CatalogueError(f"{path}: not valid YAML") from None
        return cls.from_data(data, str(path), tag_ids)

    def rank(self, alert_type: str, tag: str, dimension: str) -> tuple[int, int]:
        """Lower comes first: (0, i) for the i-th listed pattern, (1, j) for the j-th listed
        dimension, (2, 0) for any other tag."""
        rel = self.alerts.get(alert_type, self.default)
        for i, pattern in enumerate(rel.tags):
            if fnmatch.fnmatchcase(tag, pattern):
                return (0, i)
        if dimension in rel.dimensions:
            return (1, rel.dimensions.index(dimension))
        return (2, 0)

    def select(self, alert_type: str, notes: Sequence[Mapping[str, Any]]
               ) -> tuple[list[Mapping[str, Any]], int]:
        """The notes a message about an ``alert_type`` alert shows (at most ``limit``, most
        relevant first; among equals the newest) and how many it leaves to the workspace.
        ``notes`` are :meth:`TagNotes.for_message` dicts (tag, dimension, days, ...)."""
        order = sorted(notes, key=lambda n: (*self.rank(alert_type, n["tag"], n["dimension"]),
                                             n.get("days", 0), n["tag"]))
        shown = order[:self.limit]
        return shown, len(order) - len(shown)


@lru_cache(maxsize=8)
def _cached(path: str, mtime: float) -> Relevance:
    return Relevance.load(path)


def relevance_for(catalogue: str | Path | None) -> Relevance:
    """The table of a catalogue folder (``relevance.yaml`` in it), read again when the file
    changes; the built-in default (at most 5 tags: usage, needs, value, then basic facts) when
    there is none or it cannot be read (a message never fails for its tags)."""
    if catalogue is not None:
        folder = Path(catalogue)
        path = folder / "relevance.yaml" if folder.is_dir() else folder.parent / "relevance.yaml"
        try:
            return _cached(str(path), path.stat().st_mtime)
        except FileNotFoundError:
            pass
        except (OSError, CatalogueError) as exc:
            log.warning("messages choose their tags by the default order: %s", exc)
    return Relevance()
