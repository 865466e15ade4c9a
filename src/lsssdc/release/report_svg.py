"""Inline SVG charts for the reviewer report: bars and lines on linear or logarithmic scales.

Plain text, built from the figures the report already holds: no plotting library, no fonts
or images from outside the page, and the same figures give the same bytes (coordinates are
rounded to one decimal). Every chart has a ``<title>`` and its numbers on or beside the marks,
so a small count stays readable on a log scale. Colours come from the page's stylesheet
(classes ``s0``..``s3``), so the print stylesheet can change them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

Fmt = Callable[[float], str]

WIDTH, HEIGHT = 680, 270
_ML, _MR, _MT, _MB = 64, 12, 30, 46


def _f(x: float) -> str:
    """A coordinate: one decimal, no trailing zero, never '-0'."""
    s = f"{x:.1f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _text(x: float, y: float, s: str, cls: str = "", anchor: str = "middle", rotate: bool = False) -> str:
    attrs = f'x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}"'
    if cls:
        attrs += f' class="{cls}"'
    if rotate:
        attrs += f' transform="rotate(-90 {_f(x)} {_f(y)})"'
    return f"<text {attrs}>{escape(s)}</text>"


class _Scale:
    """Value -> pixel on an axis of length ``span``: linear from 0, or log10 from ``floor``."""

    def __init__(self, top: float, span: float, log: bool, floor: float = 0.5) -> None:
        self.log, self.span = log, span
        if log:
            self.lo = math.log10(floor)
            self.hi = max(math.ceil(math.log10(max(top, 1.0)) - 1e-9), 1)
            self.top = 10.0**self.hi
        else:
            self.lo, self.top = 0.0, _nice(top)

    def __call__(self, v: float) -> float:
        if self.log:
            if v <= 0:
                return 0.0
            return max((math.log10(v) - self.lo) / (self.hi - self.lo), 0.0) * self.span
        return (v / self.top) * self.span if self.top else 0.0

    def ticks(self) -> list[float]:
        if self.log:
            return [10.0**e for e in range(self.hi + 1)]
        return [self.top * i / 5 for i in range(6)]


def _nice(v: float) -> float:
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if v <= m * e + 1e-12:
            return m * e
    return 10 * e


def _frame(title: str, body: list[str], width: int, height: int) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" class="chart"><title>{escape(title)}</title>'
    )
    return Markup(head + "".join(body) + "</svg>")


def _legend(series: Sequence[tuple[str, str]], width: int) -> list[str]:
    out, x = [], float(_ML)
    for label, cls in series:
        out.append(f'<rect x="{_f(x)}" y="8" width="10" height="10" class="{cls}"/>')
        out.append(_text(x + 14, 17, label, "legend", "start"))
        x += 26 + 6.5 * len(label)
    return out


def bars(
    title: str,
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    log: bool,
    x_label: str,
    y_label: str,
    fmt: Fmt,
    tick_fmt: Fmt | None = None,
    marker: tuple[float, str] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """Grouped vertical bars; each bar carries its value. ``marker`` is a dashed vertical line at
    a position in group units (0 = left edge of the first group) with a label."""
    pw, ph = width - _ML - _MR, height - _MT - _MB
    top = max([max(vals, default=0) for _, vals, _ in series] + [1])
    scale = _Scale(top, ph, log)
    body = _legend([(label, cls) for label, _, cls in series], width)
    base = _MT + ph
    for t in scale.ticks():
        y = base - scale(t)
        body.append(f'<line x1="{_ML}" y1="{_f(y)}" x2="{_ML + pw}" y2="{_f(y)}" class="grid"/>')
        body.append(_text(_ML - 4, y + 3, (tick_fmt or fmt)(t), "tick", "end"))
    band = pw / max(len(groups), 1)
    bw = band * 0.82 / max(len(series), 1)
    for i, g in enumerate(groups):
        x0 = _ML + i * band + band * 0.09
        for j, (_, vals, cls) in enumerate(series):
            v = vals[i]
            h = scale(v)
            x = x0 + j * bw
            if h > 0:
                body.append(
                    f'<rect x="{_f(x)}" y="{_f(base - h)}" width="{_f(max(bw - 1, 1))}" '
                    f'height="{_f(h)}" class="{cls}"/>'
                )
            label = fmt(v)
            if bw >= 6.2 * len(label) + 2:
                body.append(_text(x + bw / 2, base - h - 3, label, "val"))
            else:
                body.append(_text(x + bw / 2 + 3, base - h - 3, label, "val", "start", rotate=True))
        body.append(_text(_ML + (i + 0.5) * band, base + 14, g, "tick"))
    body.append(f'<line x1="{_ML}" y1="{_f(base)}" x2="{_ML + pw}" y2="{_f(base)}" class="axis"/>')
    if marker is not None:
        mx = _ML + marker[0] * band
        body.append(f'<line x1="{_f(mx)}" y1="{_MT}" x2="{_f(mx)}" y2="{_f(base)}" class="marker"/>')
        body.append(_text(mx, _MT - 3, marker[1], "marker-label"))
    body.append(_text(_ML + pw / 2, height - 8, x_label, "axis-label"))
    body.append(_text(14, _MT + ph / 2, y_label, "axis-label", rotate=True))
    return _frame(title, body, width, height)


def lines(
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]], str]],
    *,
    x_label: str,
    y_label: str,
    x_fmt: Fmt,
    y_fmt: Fmt,
    marker: tuple[float, str] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """Lines through points on log-log axes: x in (0, 1] (decades down from 1), y counts (log)."""
    pw, ph = width - _ML - _MR, height - _MT - _MB
    pts = [p for _, ps, _ in series for p in ps if p[0] > 0 and p[1] > 0]
    x_lo = min([p[0] for p in pts] + [0.1])
    decades = max(math.ceil(-math.log10(x_lo) - 1e-9), 1)
    ys = _Scale(max([p[1] for p in pts] + [1]), ph, True)

    def xp(x: float) -> float:
        return _ML + (1 - (-math.log10(x)) / decades) * pw

    base = _MT + ph
    body = _legend([(label, cls) for label, _, cls in series], width)
    for t in ys.ticks():
        y = base - ys(t)
        body.append(f'<line x1="{_ML}" y1="{_f(y)}" x2="{_ML + pw}" y2="{_f(y)}" class="grid"/>')
        body.append(_text(_ML - 4, y + 3, y_fmt(t), "tick", "end"))
    for d in range(decades + 1):
        x = 10.0**-d
        body.append(f'<line x1="{_f(xp(x))}" y1="{_MT}" x2="{_f(xp(x))}" y2="{_f(base)}" class="grid"/>')
        body.append(_text(xp(x), base + 14, x_fmt(x), "tick"))
    for _, ps, cls in series:
        ps = [p for p in ps if p[0] > 0 and p[1] > 0]
        if not ps:
            continue
        path = " ".join(f"{_f(xp(x))},{_f(base - ys(y))}" for x, y in ps)
        body.append(f'<polyline points="{path}" class="line {cls}"/>')
        for x, y in ps:
            body.append(f'<circle cx="{_f(xp(x))}" cy="{_f(base - ys(y))}" r="2.2" class="{cls}"/>')
    body.append(f'<line x1="{_ML}" y1="{_f(base)}" x2="{_ML + pw}" y2="{_f(base)}" class="axis"/>')
    if marker is not None and marker[0] > 0:
        mx = xp(marker[0])
        body.append(f'<line x1="{_f(mx)}" y1="{_MT}" x2="{_f(mx)}" y2="{_f(base)}" class="marker"/>')
        body.append(_text(mx + 3, _MT + 10, marker[1], "marker-label", "start"))
    body.append(_text(_ML + pw / 2, height - 8, x_label, "axis-label"))
    body.append(_text(14, _MT + ph / 2, y_label, "axis-label", rotate=True))
    return _frame(title, body, width, height)


def hbars(
    title: str,
    rows: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    x_label: str,
    fmt: Fmt,
    tick_fmt: Fmt | None = None,
    top: float | None = None,
    width: int = WIDTH,
    label_width: int = 190,
) -> Markup:
    """Grouped horizontal bars on a linear scale from 0, one row per label, values at the bar ends."""
    row_h = 10 + 12 * len(series)
    height = _MT + row_h * max(len(rows), 1) + 36
    pw = width - label_width - _MR - 60
    scale = _Scale(
        top if top is not None else max([max(v, default=0) for _, v, _ in series] + [0.01]), pw, False
    )
    body = _legend([(label, cls) for label, _, cls in series], width)
    base = _MT + row_h * len(rows)
    for t in scale.ticks():
        x = label_width + scale(t)
        body.append(f'<line x1="{_f(x)}" y1="{_MT}" x2="{_f(x)}" y2="{_f(base)}" class="grid"/>')
        body.append(_text(x, base + 14, (tick_fmt or fmt)(t), "tick"))
    for i, label in enumerate(rows):
        y0 = _MT + i * row_h + 5
        body.append(_text(label_width - 6, y0 + row_h / 2, label, "tick", "end"))
        for j, (_, vals, cls) in enumerate(series):
            w = scale(vals[i])
            y = y0 + j * 12
            if w > 0:
                body.append(
                    f'<rect x="{label_width}" y="{_f(y)}" width="{_f(max(w, 0.5))}" height="10" class="{cls}"/>'
                )
            body.append(_text(label_width + w + 4, y + 9, fmt(vals[i]), "val", "start"))
    body.append(f'<line x1="{label_width}" y1="{_MT}" x2="{label_width}" y2="{_f(base)}" class="axis"/>')
    body.append(_text(label_width + pw / 2, height - 6, x_label, "axis-label"))
    return _frame(title, body, width, height)
