"""Charts drawn on the server as SVG: no script, nothing fetched, readable on a phone.

:func:`load_chart` draws a meter's load around an alert (readings, the expected curve and its
band, onset and raise marked); :func:`bar_chart` draws counts per day or a typical day.
Both are pure functions of their values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

__all__ = ["bar_chart", "expected_band", "load_chart"]

W, H = 720, 280
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 14, 34


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and math.isfinite(v)]


def expected_band(scores: Sequence[tuple[datetime, float, float, float]], band_hi: float,
                  band_lo: float | None = None) -> list[tuple[datetime, float, float, float]]:
    """(time, expected, low, high) from the detector's scores ``(time, kw, expected_kw, z)``.

    The detectors judge log-load, so the band is a ratio around the usual level: the spread
    behind a score is read back from the score itself (``|ln(kw / expected)| / z``), and its
    median over the window sets the band at ``band_hi`` (``band_lo``) spreads above (below).
    """
    spreads = sorted(abs(math.log(kw / exp)) / z for _, kw, exp, z in scores
                     if math.isfinite(kw) and math.isfinite(exp) and math.isfinite(z)
                     and z > 0.05 and kw > 0 and exp > 0)
    spread = spreads[len(spreads) // 2] if spreads else 0.0
    # a wild score (a meter's first readings, a corrupt value) must not overflow the band
    up = math.exp(min(band_hi * spread, 50.0))
    down = math.exp(-min((band_lo if band_lo is not None else band_hi) * spread, 50.0))
    out = []
    for t, _, exp, _ in scores:
        hi = exp * up
        if math.isfinite(exp) and math.isfinite(hi):
            out.append((t, exp, max(exp * down, 0.0), hi))
    return out


def load_chart(readings: Sequence[tuple[datetime, float]],
               band: Sequence[tuple[datetime, float, float, float]],
               marks: Sequence[tuple[datetime, str]], *, start: datetime, end: datetime,
               labels: dict[str, str] | None = None) -> Markup:
    """An SVG of load (kW) over ``[start, end)`` with the expected band and vertical marks."""
    labels = labels or {}
    span = max((end - start).total_seconds(), 1.0)
    values = _finite([kw for _, kw in readings] + [hi for *_, hi in band]
                     + [lo for _, _, lo, _ in band])
    top = max(values) if values else 1.0
    bottom = min(0.0, *values) if values else 0.0
    top = top + (top - bottom) * 0.08 or 1.0
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(t: datetime) -> float:
        return PAD_L + plot_w * min(max((t - start).total_seconds() / span, 0.0), 1.0)

    def y(v: float) -> float:
        return PAD_T + plot_h * (1 - (v - bottom) / ((top - bottom) or 1.0))

    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
             f'aria-label="{escape(labels.get("title", "load"))}" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):
        v = bottom + (top - bottom) * i / 4
        parts.append(f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" '
                     f'y2="{y(v):.1f}"/><text class="axis" x="{PAD_L - 4}" y="{y(v) + 4:.1f}" '
                     f'text-anchor="end">{v:.3g}</text>')
    for i in range(5):
        t = start + (end - start) * (i / 4)
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        minor = " minor" if i % 2 else ""  # hidden on a phone, where labels would collide
        parts.append(f'<text class="axis{minor}" x="{x(t):.1f}" y="{H - 14}" '
                     f'text-anchor="{anchor}">{t:%m-%d %H:%M}</text>')
    pts_band = [(t, lo, hi) for t, _, lo, hi in band if start <= t < end]
    if len(pts_band) >= 2:
        upper = " ".join(f"{x(t):.1f},{y(hi):.1f}" for t, _, hi in pts_band)
        lower = " ".join(f"{x(t):.1f},{y(lo):.1f}" for t, lo, _ in reversed(pts_band))
        parts.append(f'<polygon class="band" points="{upper} {lower}"><title>'
                     f'{escape(labels.get("band", "expected band"))}</title></polygon>')
        line = " ".join(f"{x(t):.1f},{y(e):.1f}" for t, e, _, _ in band if start <= t < end)
        parts.append(f'<polyline class="expected" points="{line}"/>')
    shown = [(t, kw) for t, kw in readings if start <= t < end and math.isfinite(kw)]
    if shown:
        line = " ".join(f"{x(t):.1f},{y(kw):.1f}" for t, kw in shown)
        parts.append(f'<polyline class="readings" points="{line}"><title>'
                     f'{escape(labels.get("readings", "readings"))}</title></polyline>')
    else:
        parts.append(f'<text class="empty" x="{W / 2}" y="{H / 2}" text-anchor="middle">'
                     f'{escape(labels.get("no_data", "no data"))}</text>')
    for i, (t, name) in enumerate(marks):
        if start <= t <= end:
            parts.append(f'<line class="mark mark-{escape(name)}" x1="{x(t):.1f}" '
                         f'x2="{x(t):.1f}" y1="{PAD_T}" y2="{H - PAD_B}"/><text class="mark-label"'
                         f' x="{x(t) + 3:.1f}" y="{PAD_T + 10 + 13 * i}">'
                         f'{escape(labels.get(name, name))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(values: Sequence[tuple[str, float]], *, title: str = "") -> Markup:
    """Bars of ``(label, value)``; every fourth label printed."""
    w, h, pad_b, pad_t = 720, 160, 24, 10
    n = max(len(values), 1)
    top = max(_finite([v for _, v in values]) or [1.0]) or 1.0
    bw = (w - 40) / n
    parts = [f'<svg class="chart bars" viewBox="0 0 {w} {h}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, v) in enumerate(values):
        v = v if math.isfinite(v) else 0.0
        bh = (h - pad_b - pad_t) * max(v, 0.0) / top
        xx = 30 + i * bw
        parts.append(f'<rect class="bar" x="{xx + 1:.1f}" y="{h - pad_b - bh:.1f}" '
                     f'width="{max(bw - 2, 1):.1f}" height="{bh:.1f}"><title>{escape(label)}: '
                     f'{v:.3g}</title></rect>')
        if i % max(n // 8, 1) == 0:
            parts.append(f'<text class="axis" x="{xx + bw / 2:.1f}" y="{h - 8}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append(f'<text class="axis" x="26" y="{pad_t + 8}" text-anchor="end">{top:.3g}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
