"""Stable, descriptive names for load segments, derived from a segment's centroid curve
(re-exported by ``gridwatch.tags``).

``segment_name(curve24, cls)`` is a pure function of the shape: the same centroid always gets the
same name, whatever the cluster's index, so a route or a strategy can name a segment
(``evening-peak households``) and keep working when the clusters are re-learned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SEGMENT_SHAPES", "segment_name"]

_PLURAL = {"residential": "households", "commercial": "businesses", "industrial": "plants",
           "agricultural": "farms"}

#: Every shape word a name can start with (after an optional ``sharp``).
SEGMENT_SHAPES = ("inactive", "round-the-clock", "night-heavy", "long-hours", "evening-peak",
                  "morning-peak", "daytime", "midday-peak", "night-peak")


def segment_name(curve24: Sequence[float] | np.ndarray, cls: str) -> str:
    """A descriptive name for a 24-hour centroid curve (any scale: it is normalised) of customer
    class ``cls``: ``evening-peak households``, ``sharp morning-peak households``,
    ``round-the-clock plants``, ``night-heavy farms``, ``daytime businesses``."""
    c = np.nan_to_num(np.asarray(curve24, dtype=np.float64).reshape(-1), nan=0.0)
    if c.size != 24:
        raise ValueError(f"a centroid curve has 24 hourly values, got {c.size}")
    who = _PLURAL.get(str(cls), f"{cls} customers")
    c = np.clip(c, 0.0, None)
    mean = float(c.mean())
    if mean <= 1e-9:
        return f"inactive {who}"
    c = c / mean
    top = float(c.max())
    hour = int(c.argmax())
    high_hours = int((c >= 0.7 * top).sum())
    night = float(c[0:6].mean())
    day = float(c[8:18].mean())
    if float(c.min()) >= 0.67 * top:
        return f"round-the-clock {who}"
    if night >= 1.3:
        return f"night-heavy {who}"
    if high_hours >= 14:
        return f"long-hours {who}"
    sharp = "sharp " if top >= 3.0 else ""
    if 17 <= hour <= 22:
        return f"{sharp}evening-peak {who}"
    if 6 <= hour <= 10:
        return f"{sharp}morning-peak {who}"
    if 11 <= hour <= 16:
        return f"{sharp}daytime {who}" if day >= 1.5 else f"{sharp}midday-peak {who}"
    return f"{sharp}night-peak {who}"
