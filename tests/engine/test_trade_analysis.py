"""Trade analysis by session: per-hour tables against hand computations, Kelly, empty input, comparisons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtesting_modules.errors import ConfigError, DataError
from backtesting_modules.timezone.analyzer import TimezoneMarketAnalyzer
from backtesting_modules.timezone.trade_analysis import (
    STAT_COLUMNS,
    analyze_trades,
    compare_gated,
    kelly_fraction,
)

ANALYZER = TimezoneMarketAnalyzer()
NAN = math.nan
INF = math.inf


def make_trades(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    """(entry time UTC, return_pct, pnl) -> a trades frame; every trade is held 5 hours."""
    entry = pd.DatetimeIndex([pd.Timestamp(t, tz="UTC") for t, _, _ in rows])
    return pd.DataFrame(
        {
            "entry_time": entry,
            "exit_time": entry + pd.Timedelta(hours=5),
            "return_pct": [r for _, r, _ in rows],
            "pnl": [p for _, _, p in rows],
            "symbol": "KRW-BTC",
        }
    )


# Korean hours in the comments: 09 KST = 00 UTC, 15 KST = 06 UTC, 23 KST = 14 UTC, 02 KST = 17 UTC.
EIGHT = make_trades(
    [
        ("2024-01-15 00:10", 0.05, 50.0),  # Mon 09 KST, win
        ("2024-01-16 00:20", -0.02, -20.0),  # Tue 09 KST, loss
        ("2024-01-17 00:30", 0.03, 30.0),  # Wed 09 KST, win
        ("2024-01-15 06:00", 0.04, 40.0),  # Mon 15 KST, win
        ("2024-01-16 06:00", 0.02, 20.0),  # Tue 15 KST, win
        ("2024-01-15 14:00", -0.05, -50.0),  # Mon 23 KST, loss
        ("2024-01-16 14:00", -0.01, -10.0),  # Tue 23 KST, loss
        ("2024-01-17 17:00", 0.00, 0.0),  # Wed 17 UTC = Thu 02 KST, break-even counts as a loss
    ]
)


def expected_hour_table(rows: dict[int, tuple[int, float, float, float, float, float, bool]]) -> pd.DataFrame:
    """24 rows; hours not in `rows` have no trades."""
    empty = (0, NAN, NAN, 0.0, NAN, NAN, False)
    data = [rows.get(hour, empty) for hour in range(24)]
    frame = pd.DataFrame(data, columns=list(STAT_COLUMNS), index=pd.Index(range(24), name="hour"))
    return frame.astype({"trades": np.int64, "sufficient": bool})


# Hour 09 KST: 3 trades, 2 winners: win rate 2/3, mean return (0.05 - 0.02 + 0.03) / 3 = 0.02,
# P&L 60, profit factor 80 / 20 = 4. Kelly: avg win 0.04, avg loss -0.02, b = 2, 2/3 - (1/3) / 2 = 0.5.
# Hour 15 KST: 2 winners, no loser: profit factor inf, Kelly = p = 1.
# Hour 23 KST: 2 losers, no winner: profit factor 0 / 60 = 0, Kelly = -1.
# Hour 02 KST: 1 break-even trade, below min_trades=2: profit factor 0 / 0 = NaN, no Kelly.
HAND_ROWS = {
    9: (3, 2 / 3, 0.02, 60.0, 4.0, 0.5, True),
    15: (2, 1.0, 0.03, 60.0, INF, 1.0, True),
    23: (2, 0.0, -0.03, -60.0, 0.0, -1.0, True),
    2: (1, 0.0, 0.0, 0.0, NAN, NAN, False),
}


def test_by_hour_local_equals_the_hand_computed_table() -> None:
    result = analyze_trades(EIGHT, ANALYZER, min_trades=2)
    pd.testing.assert_frame_equal(result.by_hour_local, expected_hour_table(HAND_ROWS))


def test_by_hour_utc_is_the_same_table_shifted_by_nine_hours() -> None:
    result = analyze_trades(EIGHT, ANALYZER, min_trades=2)
    shifted = {(hour - 9) % 24: row for hour, row in HAND_ROWS.items()}
    pd.testing.assert_frame_equal(result.by_hour_utc, expected_hour_table(shifted))


def test_best_and_worst_hours_rank_sufficient_local_hours() -> None:
    result = analyze_trades(EIGHT, ANALYZER, min_trades=2)
    assert result.best_hours.index.tolist() == [15, 9, 23]  # avg returns 0.03, 0.02, -0.03
    assert result.worst_hours.index.tolist() == [23, 9, 15]
    assert list(result.best_hours.columns) == list(STAT_COLUMNS)
    # With min_trades=3 only 09 KST qualifies.
    assert analyze_trades(EIGHT, ANALYZER, min_trades=3).best_hours.index.tolist() == [9]


def test_weekday_is_taken_in_the_zone() -> None:
    result = analyze_trades(EIGHT, ANALYZER, min_trades=2)
    # The last trade is Wednesday in UTC but Thursday 02h in Seoul.
    assert result.by_weekday["trades"].tolist() == [3, 3, 1, 1, 0, 0, 0]
    assert result.by_weekday.index.name == "weekday"
    in_utc = analyze_trades(EIGHT, ANALYZER, zone="UTC", min_trades=2)
    assert in_utc.by_weekday["trades"].tolist() == [3, 3, 2, 0, 0, 0, 0]
    assert in_utc.by_hour_local.equals(in_utc.by_hour_utc)


def test_local_hours_in_london_follow_summer_time() -> None:
    trades = make_trades([("2024-01-10 08:00", 0.01, 1.0), ("2024-07-10 08:00", 0.01, 1.0)])
    result = analyze_trades(trades, ANALYZER, zone="Europe/London", min_trades=1)
    assert result.entries["hour_local"].tolist() == [8, 9]
    hours = result.by_hour_local["trades"]
    assert hours[hours > 0].to_dict() == {8: 1, 9: 1}


def test_region_and_condition_tables_cover_every_key_and_match_the_analyzer() -> None:
    result = analyze_trades(EIGHT, ANALYZER, min_trades=2)
    assert result.by_region.index.tolist() == [
        "seoul",
        "tokyo",
        "singapore",
        "london",
        "new_york",
        "los_angeles",
    ]
    assert result.by_condition.index.tolist() == ["VERY_ACTIVE", "ACTIVE", "MODERATE", "QUIET", "VERY_QUIET"]
    session = ANALYZER.analyze(pd.DatetimeIndex(EIGHT["entry_time"]), check_intraday=False)
    expected_regions = session["dominant_region"].value_counts()
    regions = result.by_region["trades"]
    assert regions[regions > 0].to_dict() == expected_regions.to_dict()
    assert result.by_condition["trades"].sum() == 8
    assert result.entries["activity_score"].tolist() == session["activity_score"].tolist()
    assert result.entries.index.equals(EIGHT.index)
    assert (result.entries["symbol"] == "KRW-BTC").all()


def test_activity_correlation_is_pearson_of_score_and_return() -> None:
    result = analyze_trades(EIGHT, ANALYZER)
    expected = np.corrcoef(result.entries["activity_score"], EIGHT["return_pct"])[0, 1]
    assert result.activity_correlation == pytest.approx(expected)
    assert math.isnan(analyze_trades(EIGHT.iloc[:2], ANALYZER).activity_correlation)


def test_kelly_by_hour_worked_example() -> None:
    # Four trades at 10 KST (01 UTC): +6 %, +3 %, -3 %, -1 %. p = 0.5, avg win 4.5 %, avg loss -2 %,
    # b = 4.5 / 2 = 2.25, Kelly = 0.5 - 0.5 / 2.25 = 5 / 18 = 0.2778.
    trades = make_trades(
        [
            ("2024-02-01 01:00", 0.06, 600.0),
            ("2024-02-02 01:00", 0.03, 300.0),
            ("2024-02-03 01:00", -0.03, -300.0),
            ("2024-02-04 01:00", -0.01, -100.0),
        ]
    )
    result = analyze_trades(trades, ANALYZER, min_trades=4)
    row = result.by_hour_local.loc[10]
    assert row["kelly_fraction"] == pytest.approx(5 / 18)
    assert row["profit_factor"] == pytest.approx(900 / 400)
    assert bool(row["sufficient"])
    # One trade short of min_trades: marked insufficient, no Kelly.
    short = analyze_trades(trades, ANALYZER, min_trades=5).by_hour_local
    assert not bool(short.at[10, "sufficient"])
    assert np.isnan(short["kelly_fraction"].to_numpy()[10])


def test_kelly_fraction_edge_cases_and_clamp() -> None:
    p = np.array([0.5, 1.0, 0.0, 0.1, 0.5])
    avg_win = np.array([0.02, 0.05, NAN, 0.001, 0.02])
    avg_loss = np.array([-0.02, NAN, -0.03, -0.10, 0.0])
    winners = np.array([5.0, 3.0, 0.0, 1.0, 2.0])
    losers = np.array([5.0, 0.0, 4.0, 9.0, 2.0])
    kelly = kelly_fraction(p, avg_win, avg_loss, winners, losers)
    # b = 1 -> 0; no losers -> p; no winners -> -1; 0.1 - 0.9 / 0.01 clamps to -1; losers average 0 -> p.
    assert kelly.tolist() == pytest.approx([0.0, 1.0, -1.0, -1.0, 0.5])


def test_empty_trades_give_every_table_with_zero_counts() -> None:
    empty = pd.DataFrame(columns=["entry_time", "exit_time", "return_pct", "pnl"])
    result = analyze_trades(empty, ANALYZER)
    for table, rows in [
        (result.by_hour_utc, 24),
        (result.by_hour_local, 24),
        (result.by_region, 6),
        (result.by_condition, 5),
        (result.by_weekday, 7),
    ]:
        assert len(table) == rows
        assert list(table.columns) == list(STAT_COLUMNS)
        assert (table["trades"] == 0).all()
        assert table["win_rate"].isna().all()
        assert table["kelly_fraction"].isna().all()
        assert not table["sufficient"].any()
    assert result.best_hours.empty
    assert result.worst_hours.empty
    assert result.entries.empty
    assert math.isnan(result.activity_correlation)


def test_bad_trades_and_options_are_refused() -> None:
    with pytest.raises(DataError, match="pnl"):
        analyze_trades(EIGHT.drop(columns="pnl"), ANALYZER)
    naive = EIGHT.assign(entry_time=EIGHT["entry_time"].dt.tz_localize(None))
    with pytest.raises(DataError, match="naive"):
        analyze_trades(naive, ANALYZER)
    backwards = EIGHT.assign(exit_time=EIGHT["entry_time"] - pd.Timedelta(hours=1))
    with pytest.raises(DataError, match="exit_time"):
        analyze_trades(backwards, ANALYZER)
    with pytest.raises(DataError, match="return_pct"):
        analyze_trades(EIGHT.assign(return_pct=[0.1] * 7 + [NAN]), ANALYZER)
    with pytest.raises(ConfigError, match="min_trades"):
        analyze_trades(EIGHT, ANALYZER, min_trades=0)
    with pytest.raises(ConfigError, match="zone"):
        analyze_trades(EIGHT, ANALYZER, zone="Asia/Nowhere")


def test_entries_in_another_zone_are_converted_to_utc() -> None:
    seoul = EIGHT.assign(entry_time=EIGHT["entry_time"].dt.tz_convert("Asia/Seoul"))
    result = analyze_trades(seoul, ANALYZER, min_trades=2)
    pd.testing.assert_frame_equal(result.by_hour_local, expected_hour_table(HAND_ROWS))


# --- gated vs ungated ---------------------------------------------------------------------------------


def test_compare_gated() -> None:
    ungated: dict[str, float | np.ndarray] = {
        "sharpe": 1.0,
        "trades": np.array([40.0]),
        "max_drawdown": -0.20,
    }
    gated: dict[str, float | np.ndarray] = {
        "sharpe": 1.3,
        "trades": np.array([25.0]),
        "max_drawdown": -0.12,
        "win_rate": 0.6,
    }
    table = compare_gated(ungated, gated, names=("sharpe", "trades", "max_drawdown", "win_rate"))
    assert list(table.columns) == ["metric", "ungated", "gated", "difference"]
    assert table["metric"].tolist() == ["sharpe", "trades", "max_drawdown", "win_rate"]
    assert table["ungated"].tolist()[:3] == [1.0, 40.0, -0.20]
    assert table["difference"].tolist()[:3] == pytest.approx([0.3, -15.0, 0.08])
    assert math.isnan(table["ungated"].iloc[3])
    assert math.isnan(table["difference"].iloc[3])
    with pytest.raises(ConfigError, match="sharpe"):
        compare_gated(ungated, gated, names=("sharp",))


def test_compare_gated_default_names_come_from_compute_metrics() -> None:
    from backtesting_modules.metrics import METRIC_NAMES
    from backtesting_modules.timezone.trade_analysis import DEFAULT_COMPARE_NAMES

    assert set(DEFAULT_COMPARE_NAMES) <= set(METRIC_NAMES)
    metrics: dict[str, float | np.ndarray] = dict.fromkeys(METRIC_NAMES, 1.0)
    assert len(compare_gated(metrics, metrics)) == len(DEFAULT_COMPARE_NAMES)
