"""The HTML report's interactive charts (docs/reports.md), drawn with Plotly on the driver (never in the
Lambda layer) from `report_rows`' figures, the same numbers as the PNGs: a heatmap of the ranking metric
per pair of grid axes (a line for a single axis) with the winner starred, the winners' equity and drawdown
against buy and hold, and the metric's distribution per strategy. Each figure becomes a `<div>` and a
`Plotly.newPlot` call; plotly.js itself is inlined once per page by `report_html`.

Every text handed to Plotly is escaped (`escape`): plotly.js reads its labels as a small HTML dialect (`<b>`,
`<a href>`, entities), so a strategy or parameter name is shown as written, never interpreted.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from backtesting_modules.reports import format_value

from .report_rows import Curve, Grid

WINNER_COLOUR = "#d62728"
HOLD_COLOUR = "#7f7f7f"
# The winners' colours (category10 without the winner's red and buy and hold's grey).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
CURVE_POINTS = 1500  # at most this many points per curve: the page stays small, hover stays exact there
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
FONT = {"family": "DejaVu Sans, Verdana, Arial, sans-serif", "size": 12}


@cache
def plotly_js() -> str:
    """plotly.min.js as shipped in the `plotly` package (inlined once per page: no CDN, no network)."""
    return get_plotlyjs()


def escape(text: str) -> str:
    """`&`, `<` and `>` as entities, which plotly.js decodes when it draws a label; quotes stay as they are
    (outside a tag they are harmless, and plotly.js would show `&quot;` as written)."""
    return html.escape(text, quote=False)


def plotly_js_version() -> str:
    """The inlined plotly.js' own version (its licence header says it), not the Python package's."""
    found = re.search(r"plotly\.js v(\S+)", plotly_js()[:500])
    return found.group(1) if found else "(unknown version)"


def figure_html(figure: go.Figure, div_id: str) -> str:
    """The figure's `<div>` and its `Plotly.newPlot` call, without plotly.js or MathJax (the page has them
    once, or not at all). Plotly escapes `<`, `>` and `/` in the JSON it writes into the script."""
    return str(
        figure.to_html(
            include_plotlyjs=False,
            include_mathjax=False,
            full_html=False,
            config=CONFIG,
            div_id=div_id,
        )
    )


def _layout(**extra: Any) -> dict[str, Any]:
    return {
        "template": "none",  # plotly.js' defaults: no 6 KB theme repeated in every figure
        "font": FONT,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        **extra,
    }


def axis_name(column: str) -> str:
    return column.removeprefix("param.")


def _labels(values: Sequence[float]) -> list[str]:
    """Category labels for an axis (equal cells, as in the PNG), unambiguous even where `:g` rounds."""
    short = [f"{v:g}" for v in values]
    return short if len(set(short)) == len(short) else [repr(float(v)) for v in values]


def _finite(values: np.ndarray) -> list[Any]:
    """A JSON-ready list: floats to 7 significant digits (hover shows 4; the page stays small), None where
    there is no value (a blank cell, a gap in a line)."""
    flat = np.asarray(values, dtype=float).ravel()
    return [float(f"{v:.7g}") if math.isfinite(v) else None for v in flat]


def _d3(metric: str) -> str:
    """The hover's number format (d3): a percentage where report.md prints one, else 4 significant digits."""
    return ".2%" if format_value(metric, 0.5).endswith("%") else ".4g"


def grid_title(grid: Grid) -> str:
    if grid.y is None:
        return f"{axis_name(grid.x)} (one axis: a line)"
    others = f", best over {grid.others} other axes" if grid.others else ""
    return f"{axis_name(grid.x)} × {axis_name(grid.y)}{others}"


def grid_best(grid: Grid, metric: str) -> str:
    """In words: the best value of the grid and where (the same number the winner's star shows)."""
    if grid.best is None:
        return "no cell has a value"
    row, column = grid.best
    if grid.y is None:
        value = float(np.asarray(grid.values, dtype=float)[column])
        where = f"{axis_name(grid.x)}={grid.x_values[column]:g}"
    else:
        value = float(np.asarray(grid.values, dtype=float)[row, column])
        where = f"{axis_name(grid.x)}={grid.x_values[column]:g}, {axis_name(grid.y)}={grid.y_values[row]:g}"
    return f"best {metric} {format_value(metric, value)} at {where}"


def grid_figure(grid: Grid, metric: str, higher: bool) -> go.Figure:
    """A heatmap of `metric` over the grid's two axes with the winner starred, or a line for one axis."""
    if grid.y is None:
        return _line_figure(grid, metric)
    x_name, y_name, name = escape(axis_name(grid.x)), escape(axis_name(grid.y)), escape(metric)
    xs, ys = _labels(grid.x_values), _labels(grid.y_values)
    values = np.asarray(grid.values, dtype=float)
    heat = go.Heatmap(
        z=[_finite(row) for row in values],
        x=xs,
        y=ys,
        colorscale="Viridis",
        reversescale=not higher,  # the best cells are bright either way
        hoverongaps=False,
        colorbar={"title": {"text": name}},
        hovertemplate=f"{x_name}=%{{x}}<br>{y_name}=%{{y}}<br>{name}=%{{z:{_d3(metric)}}}<extra></extra>",
    )
    figure = go.Figure(heat)
    if grid.best is not None:
        row, column = grid.best
        best = format_value(metric, float(values[row, column]))
        figure.add_trace(_star([xs[column]], [ys[row]], f"winner: {name}={best}"))
    figure.update_layout(_layout(height=360, showlegend=False, margin={"l": 60, "r": 20, "t": 30, "b": 50}))
    figure.update_xaxes(type="category", title={"text": x_name})
    figure.update_yaxes(type="category", title={"text": y_name})
    return figure


def _star(x: list[Any], y: list[Any], hover: str) -> go.Scatter:
    return go.Scatter(
        x=x,
        y=y,
        mode="markers",
        name="winner",
        marker={"symbol": "star", "size": 18, "color": WINNER_COLOUR, "line": {"color": "white", "width": 1}},
        hovertemplate=f"{hover}<extra></extra>",
    )


def _line_figure(grid: Grid, metric: str) -> go.Figure:
    x_name, name = escape(axis_name(grid.x)), escape(metric)
    values = np.asarray(grid.values, dtype=float).ravel()
    figure = go.Figure(
        go.Scatter(
            x=[float(v) for v in grid.x_values],
            y=_finite(values),
            mode="lines+markers",
            name=name,
            hovertemplate=f"{x_name}=%{{x}}<br>{name}=%{{y:{_d3(metric)}}}<extra></extra>",
        )
    )
    if grid.best is not None:
        best = grid.best[1]
        figure.add_trace(
            _star(
                [float(grid.x_values[best])],
                [float(values[best])],
                f"winner: {name}={format_value(metric, float(values[best]))}",
            )
        )
    figure.update_layout(_layout(height=360, showlegend=False, margin={"l": 60, "r": 20, "t": 30, "b": 50}))
    figure.update_xaxes(title={"text": x_name}, showgrid=True, gridcolor="#e5e5e5")
    figure.update_yaxes(title={"text": name}, showgrid=True, gridcolor="#e5e5e5")
    return figure


def thin(count: int, points: int = CURVE_POINTS) -> np.ndarray:
    """The positions of a curve kept in the page: every k-th bar, the first and the last."""
    step = max(1, math.ceil(count / points))
    return np.unique(np.r_[np.arange(0, count, step), count - 1])


def _deepest(drawdown: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """At each kept position, the deepest drawdown since the previous one (a thinned curve keeps its dips)."""
    starts = np.r_[0, picked[:-1] + 1]
    return np.minimum.reduceat(drawdown, starts)


def curves_figure(curves: Sequence[Curve], windows: Sequence[tuple[Any, Any]] = ()) -> go.Figure:
    """Equity (growth of 1) of each winner and buy and hold of its symbol above, drawdowns below (a
    winner's two lines in one colour); the validated sweep's test windows shaded."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05)
    held: set[str] = set()
    for curve, colour in zip(curves, itertools.cycle(PALETTE), strict=False):
        if len(curve.index) == 0:
            continue
        for row, trace in _curve_traces(curve, colour, hold=curve.symbol not in held):
            figure.add_trace(trace, row=row, col=1)
        held.add(curve.symbol)
    for (start, stop), row in itertools.product(windows, (1, 2)):
        label = {"annotation_text": "test window", "annotation_position": "top left"} if row == 1 else {}
        shade = {"fillcolor": "#ffbf00", "opacity": 0.12, "line_width": 0}
        figure.add_vrect(x0=_minute(start), x1=_minute(stop), row=row, col=1, **shade, **label)
    figure.update_layout(
        _layout(height=560, hovermode="x unified", legend={"orientation": "h", "y": -0.12}),
        title={"text": "Top winners against buy and hold (same bars and fees)", "font": {"size": 14}},
    )
    figure.update_yaxes(title={"text": "growth of 1"}, showgrid=True, gridcolor="#e5e5e5", row=1, col=1)
    figure.update_yaxes(title={"text": "drawdown %"}, showgrid=True, gridcolor="#e5e5e5", row=2, col=1)
    figure.update_xaxes(showgrid=True, gridcolor="#e5e5e5")
    return figure


def _minute(stamp: Any) -> str:
    return str(pd.Timestamp(stamp).strftime("%Y-%m-%d %H:%M"))


def _curve_traces(curve: Curve, colour: str, *, hold: bool) -> list[tuple[int, go.Scatter]]:
    """(row, trace): the winner's equity, its drawdown (%), and buy and hold of its symbol if `hold`."""
    picked = thin(len(curve.index))
    dates = pd.DatetimeIndex(curve.index)[picked].strftime("%Y-%m-%d %H:%M").tolist()
    name = escape(curve.label)
    params = escape(", ".join(f"{k}={v}" for k, v in curve.params.items()))
    line = {"color": colour, "width": 1.5}
    equity = np.round(np.asarray(curve.equity, dtype=float)[picked], 6)
    deepest = np.round(_deepest(np.asarray(curve.drawdown, dtype=float), picked) * 100, 4)
    traces = [
        (1, go.Scatter(x=dates, y=_finite(equity), name=name, legendgroup=name, line=line,
                       hovertemplate=f"{name} ({params}): %{{y:.4f}}<extra></extra>")),
        (2, go.Scatter(x=dates, y=_finite(deepest), name=f"{name} drawdown", legendgroup=name, line=line,
                       showlegend=False, hovertemplate=f"{name} drawdown: %{{y:.2f}}%<extra></extra>")),
    ]  # fmt: skip
    if hold:
        values = np.round(np.asarray(curve.buy_and_hold, dtype=float)[picked], 6)
        label = f"buy and hold {escape(curve.symbol)}"
        dashed = {"dash": "dash", "color": HOLD_COLOUR, "width": 1}
        traces.append(
            (1, go.Scatter(x=dates, y=_finite(values), name=label, line=dashed,
                           hovertemplate=f"{label}: %{{y:.4f}}<extra></extra>"))
        )  # fmt: skip
    return traces


def distributions_figure(distributions: dict[str, np.ndarray], metric: str) -> go.Figure | None:
    """A histogram of the metric per strategy (small multiples, shared x axis, the median in red);
    None when no strategy has a value."""
    shown = {name: np.asarray(v, dtype=float) for name, v in distributions.items() if np.size(v)}
    if not shown:
        return None
    columns = min(3, len(shown))
    rows = math.ceil(len(shown) / columns)
    titles = [
        escape(f"{name} ({v.size:,}; median {format_value(metric, float(np.median(v)))})")
        for name, v in shown.items()
    ]
    figure = make_subplots(rows=rows, cols=columns, shared_xaxes="all", subplot_titles=titles)
    for position, (name, values) in enumerate(shown.items()):
        row, column = position // columns + 1, position % columns + 1
        counts, edges = np.histogram(values, bins=min(40, max(5, int(math.sqrt(values.size)))))
        figure.add_trace(
            go.Bar(
                x=_finite((edges[:-1] + edges[1:]) / 2),
                y=[int(c) for c in counts],
                width=_finite(np.diff(edges)),
                customdata=[[float(a), float(b)] for a, b in itertools.pairwise(edges)],
                name=escape(name),
                marker={"color": "#1f77b4"},
                hovertemplate=f"{escape(metric)} %{{customdata[0]:.3g}} to %{{customdata[1]:.3g}}: "
                "%{y} variants<extra></extra>",
            ),
            row=row,
            col=column,
        )
        figure.add_vline(
            x=float(np.median(values)), line={"color": WINNER_COLOUR, "width": 1.5}, row=row, col=column
        )
    figure.update_layout(_layout(height=120 + 240 * rows, showlegend=False, bargap=0.02))
    figure.update_yaxes(showgrid=True, gridcolor="#e5e5e5")
    figure.update_xaxes(title={"text": escape(metric)}, row=rows)
    return figure
