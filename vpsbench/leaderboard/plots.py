"""Inline SVG plots drawn in Python: STQ-vs-AQ/SQ scatter plots and per-class IoU bars.

Every label is escaped; coordinates are rounded to 0.1 px so the same numbers give the same bytes.
Styling uses presentation attributes only (the pages' CSP allows no inline ``style``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from vpsbench.records import neutralise_bidi

REPRODUCED_COLOUR = "#1a7f37"
REPORTED_COLOUR = "#9a6700"
STAND_IN_COLOUR = "#6e7781"
AXIS_COLOUR = "#57606a"
GRID_COLOUR = "#d0d7de"
LABEL_CHARACTERS = 28
LABEL_GAP = 11.0  # px between label baselines (10 px font)


def escape(text: str) -> str:
    """Escape a label for SVG text, with bidirectional controls made visible."""
    return html.escape(neutralise_bidi(text))


@dataclass(frozen=True)
class ScatterPoint:
    """One method on a scatter plot (values are fractions in [0, 1])."""

    label: str
    x: float
    y: float
    reported: bool
    stand_in: bool = False  # a weight-free stand-in: grey, never the method's own marker


def _number(value: float) -> str:
    """A coordinate with at most one decimal, no trailing zeros (deterministic text)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _short(label: str) -> str:
    """A label cut to fit next to a point (the full text is in the tooltip)."""
    return label if len(label) <= LABEL_CHARACTERS else label[: LABEL_CHARACTERS - 1] + "…"


def axis_ticks(values: Sequence[float]) -> list[float]:
    """Round ticks from 0 past the largest value: every 10 % up to 50 %, else every 20 %."""
    largest = min(1.0, max(values, default=0.0))
    step = 0.1 if largest < 0.5 else 0.2
    count = max(1, math.ceil(largest / step - 1e-9))
    if largest / step >= count - 1e-9 and count * step < 1.0 - 1e-9:
        count += 1  # keep a point on the top edge off the frame
    return [round(step * i, 1) for i in range(count + 1)]


def _percent(value: float) -> str:
    """A fraction in % with one decimal (tooltips and bar labels)."""
    return f"{100 * value:.1f}"


def spread_labels(baselines: Sequence[float], gap: float, low: float, high: float) -> list[float]:
    """Move label baselines apart by at least ``gap`` (keeping their order), within [low, high]."""
    order = sorted(range(len(baselines)), key=lambda i: (baselines[i], i))
    placed = list(baselines)
    previous = low - gap
    for i in order:
        placed[i] = max(baselines[i], previous + gap)
        previous = placed[i]
    following = high + gap
    for i in reversed(order):
        placed[i] = min(placed[i], following - gap)
        following = placed[i]
    return placed


def _scatter_point(
    point: ScatterPoint,
    x: float,
    y: float,
    label_on_left: bool,
    label_y: float,
    x_name: str,
    y_name: str,
) -> str:
    """One marker with its tooltip and label (a leader line when the label had to move)."""
    colour = REPORTED_COLOUR if point.reported else REPRODUCED_COLOUR
    kind = "reported" if point.reported else "reproduced"
    if point.stand_in:
        colour, kind = STAND_IN_COLOUR, f"{kind} stand-in"
    tooltip = (
        f"{point.label}: {y_name} {_percent(point.y)} %, {x_name} {_percent(point.x)} % ({kind})"
    )
    marker = (
        f'fill="#ffffff" stroke="{colour}" stroke-width="2" stroke-dasharray="3 2"'
        if point.reported or point.stand_in
        else f'fill="{colour}" stroke="{colour}" stroke-width="1"'
    )
    label_x = x - 8 if label_on_left else x + 8
    anchor = "end" if label_on_left else "start"
    leader = ""
    if abs(label_y - 4 - y) > 3:
        leader = (
            f'<line x1="{_number(x)}" y1="{_number(y)}" x2="{_number(label_x)}" '
            f'y2="{_number(label_y - 4)}" stroke="{AXIS_COLOUR}" stroke-width="0.5"/>'
        )
    return (
        f'<g class="point {kind}"><title>{escape(tooltip)}</title>{leader}'
        f'<circle cx="{_number(x)}" cy="{_number(y)}" r="5" {marker}/>'
        f'<text x="{_number(label_x)}" y="{_number(label_y)}" font-size="10" '
        f'text-anchor="{anchor}">{escape(_short(point.label))}</text></g>'
    )


def scatter_svg(points: Sequence[ScatterPoint], x_name: str, y_name: str, title: str) -> str:
    """A scatter plot of ``y_name`` against ``x_name`` (both in %), one labelled dot per method."""
    width, height = 440, 320
    left, right, top, bottom = 48, 24, 28, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    x_ticks = axis_ticks([p.x for p in points])
    y_ticks = axis_ticks([p.y for p in points])
    x_max, y_max = x_ticks[-1], y_ticks[-1]

    def sx(value: float) -> float:
        """Screen x of a value."""
        return left + plot_w * value / x_max

    def sy(value: float) -> float:
        """Screen y of a value (up is larger)."""
        return top + plot_h * (1 - value / y_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot scatter" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    for xv in x_ticks:
        tick_x = _number(sx(xv))
        parts.append(
            f'<line x1="{tick_x}" y1="{top}" x2="{tick_x}" y2="{top + plot_h}" '
            f'stroke="{GRID_COLOUR}"/><text x="{tick_x}" y="{top + plot_h + 14}" font-size="10" '
            f'text-anchor="middle" fill="{AXIS_COLOUR}">{100 * xv:.0f}</text>'
        )
    for yv in y_ticks:
        tick_y = _number(sy(yv))
        parts.append(
            f'<line x1="{left}" y1="{tick_y}" x2="{left + plot_w}" y2="{tick_y}" '
            f'stroke="{GRID_COLOUR}"/><text x="{left - 6}" y="{tick_y}" font-size="10" '
            f'text-anchor="end" dominant-baseline="middle" fill="{AXIS_COLOUR}">'
            f"{100 * yv:.0f}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" font-size="11" text-anchor="middle">'
        f"{escape(x_name)} (%)</text>"
    )
    parts.append(
        f'<text x="12" y="{top + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">{escape(y_name)} (%)</text>'
    )
    ordered = sorted(points, key=lambda p: (p.x, p.y, p.label))
    on_right = [sx(p.x) > left + plot_w / 2 for p in ordered]
    label_y = [sy(p.y) + 4 for p in ordered]
    for side in (False, True):
        members = [i for i, right in enumerate(on_right) if right == side]
        spread = spread_labels([label_y[i] for i in members], LABEL_GAP, top + 8, top + plot_h)
        for i, placed in zip(members, spread, strict=True):
            label_y[i] = placed
    for point, right, text_y in zip(ordered, on_right, label_y, strict=True):
        parts.append(_scatter_point(point, sx(point.x), sy(point.y), right, text_y, x_name, y_name))
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(values: Sequence[tuple[str, float]], title: str) -> str:
    """Horizontal bars, one per class, of fractions in [0, 1] shown in %."""
    label_w, bar_w, row_h, top = 150, 300, 18, 30
    width, height = label_w + bar_w + 60, top + row_h * max(len(values), 1) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot bars" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    for index, (name, value) in enumerate(values):
        y = top + index * row_h
        length = _number(bar_w * value)
        parts.append(
            f'<g class="bar"><title>{escape(name)}: {_percent(value)} %</title>'
            f'<text x="{label_w - 6}" y="{y + 12}" font-size="11" text-anchor="end">'
            f"{escape(_short(name))}</text>"
            f'<rect x="{label_w}" y="{y + 2}" width="{length}" height="{row_h - 5}" '
            f'fill="{REPRODUCED_COLOUR}"/>'
            f'<text x="{_number(label_w + bar_w * value + 4)}" y="{y + 12}" font-size="10" '
            f'fill="{AXIS_COLOUR}">{_percent(value)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
