"""gridwatch.tags: customer profiles and the tag system.

A catalogue of tags (``config/tags/*.yaml``) over four dimensions (basic attributes, usage
behaviour, value, needs), each defined in a small safe expression language over per-customer
features kept online from the daily profiles, registry attributes and imported data; the reason
of each tag; tag history; descriptive segment names; service strategies.

Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridwatch._lazy import lazy_exports

if TYPE_CHECKING:
    from gridwatch.tags._catalogue import Catalogue, CatalogueError, Tag, canonical_tag
    from gridwatch.tags._engine import Attributes, TagEngine, TagHit
    from gridwatch.tags._expr import ExprError, evaluate, parse
    from gridwatch.tags._features import CustomerFeatures, FeatureTable, ProfileBatch
    from gridwatch.tags._labels import LabelExpr
    from gridwatch.tags._segments import segment_name
    from gridwatch.tags._store import TagStore
    from gridwatch.tags._strategy import Strategies, Strategy
    from gridwatch.tags._tariff import TariffError, TouSchedule

_WHERE = {
    "Catalogue": "_catalogue", "CatalogueError": "_catalogue", "Tag": "_catalogue",
    "canonical_tag": "_catalogue",
    "Attributes": "_engine", "TagEngine": "_engine", "TagHit": "_engine",
    "ExprError": "_expr", "evaluate": "_expr", "parse": "_expr",
    "CustomerFeatures": "_features", "FeatureTable": "_features", "ProfileBatch": "_features",
    "LabelExpr": "_labels",
    "segment_name": "_segments",
    "TagStore": "_store",
    "Strategies": "_strategy", "Strategy": "_strategy",
    "TariffError": "_tariff", "TouSchedule": "_tariff",
}

__all__ = [
    "Attributes",
    "Catalogue",
    "CatalogueError",
    "CustomerFeatures",
    "ExprError",
    "FeatureTable",
    "LabelExpr",
    "ProfileBatch",
    "Strategies",
    "Strategy",
    "Tag",
    "TagEngine",
    "TagHit",
    "TagStore",
    "TariffError",
    "TouSchedule",
    "canonical_tag",
    "evaluate",
    "parse",
    "segment_name",
]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
