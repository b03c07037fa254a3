"""Stable, descriptive names for load segments (``segment_name``).

The function lives in :mod:`gridwatch._segnames`, beside the other shared value types, so the
segment model (:mod:`gridwatch.models`) names its clusters without importing the tag package.
"""

from __future__ import annotations

from gridwatch._segnames import SEGMENT_SHAPES, segment_name

__all__ = ["SEGMENT_SHAPES", "segment_name"]
