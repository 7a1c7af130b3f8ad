"""Small charts drawn on the server: the geometry of SVG bar charts, which templates/admin/
_charts.html turns into markup. No script and no chart library: the page is complete as sent,
and every bar carries a ``<title>`` with its exact number for people who hover or use a
screen reader.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from decimal import Decimal

from nproxy_core.admin.stats import HourlySeries
from nproxy_core.billing.models import decimal_text


@dataclasses.dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclasses.dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclasses.dataclass(frozen=True)
class LegendItem:
    css: str
    label: str
    total: str


@dataclasses.dataclass(frozen=True)
class Chart:
    """A chart ready to draw: a viewBox, its bars, axis labels and grid lines, a legend."""

    id: str
    title: str
    summary: str
    width: int
    height: int
    rects: list[Rect]
    labels: list[Label]
    gridlines: list[float]
    legend: list[LegendItem]
    empty: bool
    #: Where the plot area starts and ends horizontally (for the grid lines).
    plot_left: float = 0
    plot_right: float = 0


def nice_ceiling(value: float) -> float:
    """The top of a chart's scale: the smallest 2, 4 or 10 times a power of ten that holds
    ``value`` (at least 2), so that its half, the middle grid line, is a whole number too."""
    if value <= 2:
        return 2
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 4, 10):
        if step * power >= value and (step * power) % 2 == 0:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _scale(labels: list[Label], left: float, top: float, plot_h: float, peak: float) -> list[float]:
    """The grid lines at nothing, half and the top of the scale (``peak``), each one's value
    added to ``labels`` at the plot's left edge."""
    gridlines: list[float] = []
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        gridlines.append(y)
        labels.append(Label(left - 6, y + 4, _count(peak * fraction), "end"))
    return gridlines


def stacked_hours(
    chart_id: str,
    title: str,
    data: HourlySeries,
    series: Sequence[tuple[str, str, str]],
    *,
    width: int = 720,
    height: int = 220,
) -> Chart:
    """One stacked bar per hour. ``series`` is (name in ``data``, label, css class), bottom
    first."""
    left, right, top, bottom = 44, 8, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    slots = len(data.hours)
    totals = [sum(data.series[name][i] for name, _, _ in series) for i in range(slots)]
    peak = nice_ceiling(max(totals, default=0))
    slot_w = plot_w / max(slots, 1)
    bar_w = max(slot_w * 0.72, 1.0)
    rects: list[Rect] = []
    for i, hour in enumerate(data.hours):
        x = left + i * slot_w + (slot_w - bar_w) / 2
        base = top + plot_h
        for name, label, css in series:
            value = data.series[name][i]
            if not value:
                continue
            h = plot_h * value / peak
            base -= h
            rects.append(Rect(x, base, bar_w, h, css, f"{hour:%H:00} UTC: {_count(value)} {label}"))
    labels = [
        Label(left + i * slot_w + slot_w / 2, height - 8, f"{hour:%H}h")
        for i, hour in enumerate(data.hours)
        if i % 3 == 0 or i == slots - 1
    ]
    gridlines = _scale(labels, left, top, plot_h, peak)
    legend = [LegendItem(css, label, _count(data.total(name))) for name, label, css in series]
    summary = ", ".join(f"{item.total} {item.label}" for item in legend) + " in the last 24 hours"
    return Chart(
        chart_id,
        title,
        summary,
        width,
        height,
        rects,
        labels,
        gridlines,
        legend,
        not any(totals),
        left,
        width - right,
    )


def latency_bars(
    chart_id: str,
    title: str,
    rows: Sequence[tuple[str, float | None, float | None]],
    *,
    width: int = 720,
) -> Chart:
    """Per key (label, p50 ms, p95 ms): a p95 bar with the p50 bar over it."""
    left, right, top, row_h = 150, 70, 8, 26
    height = top * 2 + row_h * max(len(rows), 1)
    plot_w = width - left - right
    peak = nice_ceiling(max((p95 or 0 for _, _, p95 in rows), default=0))
    rects: list[Rect] = []
    labels: list[Label] = []
    for i, (name, p50, p95) in enumerate(rows):
        y = top + i * row_h
        short = name if len(name) <= 22 else name[:21] + "…"
        labels.append(Label(left - 8, y + row_h / 2 + 4, short, "end"))
        if p95 is None:
            labels.append(Label(left + 4, y + row_h / 2 + 4, "no attempts", "start"))
            continue
        rects.append(
            Rect(left, y + 4, plot_w * p95 / peak, row_h - 8, "s-p95", f"{name}: p95 {p95:,.0f} ms")
        )
        if p50 is not None:
            rects.append(
                Rect(
                    left,
                    y + 8,
                    plot_w * p50 / peak,
                    row_h - 16,
                    "s-p50",
                    f"{name}: p50 {p50:,.0f} ms",
                )
            )
        labels.append(
            Label(left + plot_w * p95 / peak + 6, y + row_h / 2 + 4, f"{p95:,.0f} ms", "start")
        )
    legend = [LegendItem("s-p50", "p50", ""), LegendItem("s-p95", "p95", "")]
    summary = f"latency of {len(rows)} keys over the last 24 hours"
    return Chart(
        chart_id,
        title,
        summary,
        width,
        height,
        rects,
        labels,
        [],
        legend,
        not any(p95 is not None for _, _, p95 in rows),
        left,
        width - right,
    )


def daily_amounts(
    chart_id: str,
    title: str,
    days: Sequence[dt.datetime],
    amounts: Sequence[Decimal],
    currency: str,
    *,
    width: int = 720,
    height: int = 200,
) -> Chart:
    """One bar per day of an amount of money (revenue in one currency). The bars' heights are
    geometry; every number written (titles, axis, legend) is the exact decimal."""
    left, right, top, bottom = 64, 8, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    slots = len(days)
    top_value = max(amounts, default=Decimal(0))
    peak = nice_ceiling(float(top_value))
    slot_w = plot_w / max(slots, 1)
    bar_w = max(slot_w * 0.72, 1.0)
    rects = [
        Rect(
            left + i * slot_w + (slot_w - bar_w) / 2,
            top + plot_h - plot_h * float(amount) / peak,
            bar_w,
            plot_h * float(amount) / peak,
            "s-revenue",
            f"{day:%Y-%m-%d}: {decimal_text(amount)} {currency}",
        )
        for i, (day, amount) in enumerate(zip(days, amounts, strict=True))
        if amount
    ]
    labels = [
        Label(
            left + i * slot_w + slot_w / 2 if i < slots - 1 else width - right,
            height - 8,
            f"{day:%d %b}",
            "middle" if i < slots - 1 else "end",
        )
        for i, day in enumerate(days)
        if i % 7 == (slots - 1) % 7
    ]
    gridlines = _scale(labels, left, top, plot_h, peak)
    total = sum(amounts, Decimal(0))
    legend = [LegendItem("s-revenue", f"revenue ({currency})", decimal_text(total))]
    best = max(range(slots), key=lambda i: amounts[i], default=None)
    summary = f"{decimal_text(total)} {currency} in the last {slots} days"
    if best is not None and amounts[best]:
        summary += f", most on {days[best]:%Y-%m-%d} ({decimal_text(amounts[best])} {currency})"
    return Chart(
        chart_id,
        title,
        summary,
        width,
        height,
        rects,
        labels,
        gridlines,
        legend,
        not any(amounts),
        left,
        width - right,
    )
