"""The batch report's charts (opslib/batch/report_rows.py, charts.py): heatmaps of the ranking metric over
each pair of grid axes with the best value over the other axes and the winner marked, a line for one axis,
words instead of an empty chart, aggregates (medians) from the stored rows, and PNG files that are not
empty and show the winner in red."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from opslib.batch.charts import WINNER_COLOUR, Visuals, draw_curves, render_charts
from opslib.batch.report_rows import Curve, compute_aggregates, compute_distributions, compute_grids
from opslib.batch.report_sessions import render_gating, render_sessions


def rows_of(
    grid: dict[str, list[float]], score: object, strategy: str = "S", symbol: str = "KRW-BTC"
) -> pd.DataFrame:
    names = list(grid)
    combos = list(itertools.product(*grid.values()))
    frame = pd.DataFrame({f"param.{n}": [c[i] for c in combos] for i, n in enumerate(names)})
    frame.insert(0, "symbol", symbol)
    frame.insert(0, "strategy", strategy)
    frame["sharpe"] = [score(dict(zip(names, c, strict=True))) for c in combos]  # type: ignore[operator]
    frame["total_return"] = frame["sharpe"] / 10
    return frame


def test_a_pair_of_axes_is_a_heatmap_with_the_winner_at_its_best_cell() -> None:
    rows = rows_of(
        {"fast": [5, 10, 20], "slow": [30, 60]}, lambda p: p["fast"] * 0.1 - abs(p["slow"] - 60) * 0.01
    )
    (grid,), notes = compute_grids(rows, "sharpe", higher=True)
    assert notes == [] and (grid.x, grid.y) == ("param.fast", "param.slow")
    assert grid.x_values == [5.0, 10.0, 20.0] and grid.y_values == [30.0, 60.0]
    assert grid.values.shape == (2, 3) and grid.best == (1, 2) and grid.values[1, 2] == pytest.approx(2.0)
    lowest = compute_grids(rows, "sharpe", higher=False)[0][0]
    assert lowest.best == (0, 0)  # lower is better: the smallest value wins


def test_more_axes_give_every_pair_with_the_best_over_the_others() -> None:
    rows = rows_of({"a": [1, 2], "b": [1, 2, 3], "c": [0, 10]}, lambda p: p["a"] + p["b"] + p["c"])
    grids, _ = compute_grids(rows, "sharpe", higher=True)
    assert [(g.x, g.y) for g in grids] == [
        ("param.a", "param.b"),
        ("param.a", "param.c"),
        ("param.b", "param.c"),
    ]
    assert all(g.others == 1 for g in grids)
    assert grids[0].values[0, 0] == 1 + 1 + 10  # a=1, b=1: the best over c is c=10


def test_one_axis_is_a_line_and_no_trades_or_a_search_space_are_said_in_words() -> None:
    line = rows_of({"period": [10, 20, 30]}, lambda p: -abs(p["period"] - 20))
    (grid,), _ = compute_grids(line, "sharpe", higher=True)
    assert grid.y is None and grid.values.tolist() == [-10.0, 0.0, -10.0] and grid.best == (0, 1)
    flat = rows_of({"fast": [5, 10], "slow": [30, 60]}, lambda p: np.nan, strategy="Quiet")
    wide = rows_of({"x": list(range(80)), "y": [1, 2]}, lambda p: p["x"], strategy="Searched")
    grids, notes = compute_grids(pd.concat([flat, wide]), "sharpe", higher=True)
    assert grids == []
    assert {n.strategy: n.why for n in notes} == {
        "Quiet": "no variant has a sharpe (no trades): nothing to chart",
        "Searched": "1 parameter(s) take more than 60 values (x…): a search's space, not a grid; see the "
        "Search section",
    }


def test_aggregates_have_medians_from_the_rows() -> None:
    rows = pd.concat(
        [
            rows_of({"a": [1, 2, 3]}, lambda p: p["a"], strategy="S"),
            rows_of({"a": [1, 2, 3, 4]}, lambda p: p["a"] * 10, strategy="T"),
        ]
    )
    by = {e["strategy"]: e for e in compute_aggregates(rows, "strategy", "sharpe", higher=True)}
    assert (by["S"]["backtests"], by["S"]["best_sharpe"], by["S"]["median_sharpe"]) == (3, 3.0, 2.0)
    assert (by["T"]["median_sharpe"], by["T"]["mean_total_return"]) == (25.0, 2.5)
    assert compute_distributions(rows, "sharpe")["T"].tolist() == [10.0, 20.0, 30.0, 40.0]


def red_pixels(path: Path) -> int:
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    red = tuple(int(WINNER_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    return int((np.abs(image - np.array(red)).sum(axis=2) < 40).sum())


def test_png_files_are_written_not_empty_and_show_the_winner(tmp_path: Path) -> None:
    rows = pd.concat(
        [
            rows_of({"fast": [5, 10, 20], "slow": [30, 60, 90]}, lambda p: p["fast"] / p["slow"]),
            rows_of({"period": [10, 20, 30]}, lambda p: p["period"], strategy="Line"),
        ]
    )
    grids, notes = compute_grids(rows, "sharpe", higher=True)
    index = pd.date_range("2024-01-01", periods=200, freq="1h", tz="UTC")
    equity = np.linspace(1.0, 1.2, 200)
    curve = Curve(
        "#1 S KRW-BTC", "S", "KRW-BTC", {"fast": 20}, index, equity, equity / equity - 1, equity * 0.9
    )
    visuals = Visuals("sharpe", True, grids, notes, compute_distributions(rows, "sharpe"), [curve], rows=12)
    text = render_charts(visuals, tmp_path)
    names = ["grid-S-KRW-BTC.png", "grid-Line-KRW-BTC.png", "winners.png", "distribution.png"]
    for name in names:
        assert f"]({name})" in text
        assert (tmp_path / name).stat().st_size > 5_000
    assert red_pixels(tmp_path / "grid-S-KRW-BTC.png") > 50  # the winner's star
    assert red_pixels(tmp_path / "grid-Line-KRW-BTC.png") > 50
    assert "Charts from 12 stored rows" in text


def test_curves_shade_the_test_windows() -> None:
    index = pd.date_range("2024-01-01", periods=100, freq="1h", tz="UTC")
    flat = np.ones(100)
    curve = Curve("#1", "S", "X", {}, index, flat, flat - 1, flat)
    figure = draw_curves([curve], [(index[70], index[-1])])
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "out of sample (test window)" in labels


SNAPSHOTS = Path(__file__).parent / "snapshots"


def test_charts_section_snapshot(tmp_path: Path) -> None:
    """The Charts section's markdown (its timing line aside); UPDATE_SNAPSHOTS=1 rewrites it (review it)."""
    rows = pd.concat(
        [
            rows_of({"fast": [5, 10], "slow": [30, 60]}, lambda p: p["fast"] / p["slow"]),
            rows_of({"period": [10, 20]}, lambda p: np.nan, strategy="Quiet"),
        ]
    )
    grids, notes = compute_grids(rows, "sharpe", higher=True)
    visuals = Visuals("sharpe", True, grids, notes, compute_distributions(rows, "sharpe"), rows=len(rows))
    text = render_charts(visuals, tmp_path)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("Charts from")) + "\n"
    gating = [{"strategy": "S", "sets": 2, "median_ungated": 1.5, "median_gated": 1.25, "improved": 0.5}]
    text += "\n" + render_sessions({}, "", 0) + render_gating(gating, "sharpe")
    path = SNAPSHOTS / "charts_section.md"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with UPDATE_SNAPSHOTS=1 to create it, then review it"
    assert text == path.read_text(encoding="utf-8"), f"{path} differs; UPDATE_SNAPSHOTS=1 after review"
