"""Timezone analyzer: DST per bar's own date, activity score by hand, conditions, settings validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from backtesting_modules.errors import ConfigError, DataError
from backtesting_modules.timezone.analyzer import (
    TimezoneMarketAnalyzer,
    classify_scores,
    local_hours,
    makenaide_run_mask,
)
from backtesting_modules.timezone.regions import (
    DEFAULT_ACTIVITY_CURVE,
    DEFAULT_REGIONS,
    DEFAULT_STYLES,
    MAKENAIDE_RUN_HOURS_KST,
    MarketCondition,
    Region,
    TimezoneSettings,
    TradingStyle,
    fit_activity_curve,
    require_intraday,
)

ANALYZER = TimezoneMarketAnalyzer()


def utc(*stamps: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp(s, tz="UTC") for s in stamps])


# --- DST: each bar's own date ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "stamp", "hour"),
    [
        ("Europe/London", "2024-03-31 00:30", 0),  # GMT, just before the spring change
        ("Europe/London", "2024-03-31 01:30", 2),  # BST from 01:00 UTC
        ("Europe/London", "2024-10-27 00:30", 1),  # still BST
        ("Europe/London", "2024-10-27 01:30", 1),  # GMT again: 01h local a second time
        ("America/New_York", "2024-03-10 06:30", 1),  # EST
        ("America/New_York", "2024-03-10 07:30", 3),  # EDT: 02h local never happens
        ("America/New_York", "2024-11-03 05:30", 1),  # EDT
        ("America/New_York", "2024-11-03 06:30", 1),  # EST: 01h local a second time
    ],
)
def test_local_hour_follows_dst_of_the_bars_own_date(tz: str, stamp: str, hour: int) -> None:
    assert local_hours(utc(stamp), tz).tolist() == [hour]
    column = {"Europe/London": "london_hour", "America/New_York": "new_york_hour"}[tz]
    assert ANALYZER.analyze(utc(stamp))[column].tolist() == [hour]


def test_london_is_utc_in_january_and_utc_plus_one_in_july_seoul_always_plus_nine() -> None:
    index = pd.date_range("2024-01-01", "2024-12-31 23:00", freq="1h", tz="UTC")
    frame = ANALYZER.analyze(index)
    utc_hour = index.hour.to_numpy()
    offset = (frame["london_hour"].to_numpy() - utc_hour) % 24
    assert set(offset[index.month == 1]) == {0}
    assert set(offset[index.month == 7]) == {1}
    assert ((frame["seoul_hour"].to_numpy() - utc_hour) % 24 == 9).all()


# --- activity score, condition, dominant region ----------------------------------------------------------


def test_activity_score_by_hand_winter_afternoon_in_london() -> None:
    # 2024-01-15 14:00 UTC: Seoul 23h, Tokyo 23h, Singapore 22h, London 14h (peak), New York 09h (peak),
    # Los Angeles 06h. Curve: 23h/22h evening 0.5, 14h/09h business 0.7 + peak 0.3 = 1.0, 06h night 0.1.
    expected = 100 * (0.20 * 0.5 + 0.15 * 0.5 + 0.10 * 0.5 + 0.20 * 1.0 + 0.25 * 1.0 + 0.10 * 0.1)
    row = ANALYZER.analyze_timestamp(pd.Timestamp("2024-01-15 14:00", tz="UTC"))
    assert [row[f"{r.key}_hour"] for r in DEFAULT_REGIONS] == [23, 23, 22, 14, 9, 6]
    assert row["activity_score"] == pytest.approx(expected) == pytest.approx(68.5)
    assert row["condition"] == "ACTIVE"
    assert row["position_multiplier"] == 0.8
    # New York 0.25 x 1.0 beats London 0.20 x 1.0.
    assert row["dominant_region"] == "new_york"
    assert row["style"] == "institutional"
    assert row["stop_loss"] == 0.05  # New York is the low-volatility region
    assert row["max_hold_hours"] == 48.0
    assert row["take_profit_ladder"] == ((0.05, 0.5), (0.10, 0.5))


def test_activity_score_summer_and_dominance_tie_goes_to_the_first_region() -> None:
    # 2024-07-01 00:00 UTC: Seoul 09h (peak: 0.7 + 0.3 = 1.0), Tokyo 09h (peak 1.0), Singapore 08h (0.5),
    # London 01h (BST, 0.1), New York 20h (EDT, evening 0.5 + peak 0.3 = 0.8), Los Angeles 17h (0.7).
    expected = 100 * (0.20 * 1.0 + 0.15 * 1.0 + 0.10 * 0.5 + 0.20 * 0.1 + 0.25 * 0.8 + 0.10 * 0.7)
    row = ANALYZER.analyze(utc("2024-07-01 00:00")).iloc[0]
    assert row["activity_score"] == pytest.approx(expected) == pytest.approx(69.0)
    # Seoul 0.20 x 1.0 and New York 0.25 x 0.8 tie at 0.20: the first region in order wins.
    assert row["dominant_region"] == "seoul"
    assert row["style"] == "momentum"
    assert row["stop_loss"] == 0.10


def test_peak_bonus_is_capped_at_one() -> None:
    curve = (1.0,) * 24
    frame = TimezoneMarketAnalyzer(TimezoneSettings(activity_curve=curve)).analyze(utc("2024-01-15 00:00"))
    assert frame["activity_score"].iloc[0] == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("score", "condition"),
    [
        (100.0, MarketCondition.VERY_ACTIVE),
        (80.0, MarketCondition.VERY_ACTIVE),
        (79.99, MarketCondition.ACTIVE),
        (60.0, MarketCondition.ACTIVE),
        (59.99, MarketCondition.MODERATE),
        (40.0, MarketCondition.MODERATE),
        (39.99, MarketCondition.QUIET),
        (20.0, MarketCondition.QUIET),
        (19.99, MarketCondition.VERY_QUIET),
        (0.0, MarketCondition.VERY_QUIET),
    ],
)
def test_condition_boundaries(score: float, condition: MarketCondition) -> None:
    assert ANALYZER.condition_for(score) is condition


def test_classify_scores_vectorised_and_multipliers() -> None:
    scores = np.array([80.0, 79.99, 60.0, 40.0, 20.0, 19.99])
    assert classify_scores(scores, (80.0, 60.0, 40.0, 20.0)).tolist() == [0, 1, 1, 2, 3, 4]
    assert [ANALYZER.multiplier_for(c) for c in MarketCondition] == [1.0, 0.8, 0.6, 0.4, 0.2]
    assert ANALYZER.multiplier_for("QUIET") == 0.4
    with pytest.raises(ConfigError, match="QUIET"):
        ANALYZER.multiplier_for("QUIETT")


def test_utc_basis_scores_the_curve_at_the_utc_hour_and_keeps_80_very_active() -> None:
    curve = [0.5] * 24
    curve[3], curve[4] = 0.8, 0.7999  # 100 x 0.8 must land on 80, not 79.99999999999999
    settings = TimezoneSettings(activity_curve=tuple(curve), curve_basis="utc")
    frame = TimezoneMarketAnalyzer(settings).analyze(
        utc("2024-01-01 03:00", "2024-01-01 04:00", "2024-01-01 05:00")
    )
    assert frame["activity_score"].tolist() == pytest.approx([80.0, 79.99, 50.0])
    assert frame["condition"].tolist() == ["VERY_ACTIVE", "ACTIVE", "MODERATE"]
    assert frame["position_multiplier"].tolist() == [1.0, 0.8, 0.6]


def test_columns_and_index() -> None:
    index = pd.date_range("2024-01-01", periods=48, freq="1h", tz="Asia/Seoul")
    frame = ANALYZER.analyze(index)
    assert list(frame.columns) == [
        "seoul_hour",
        "tokyo_hour",
        "singapore_hour",
        "london_hour",
        "new_york_hour",
        "los_angeles_hour",
        "activity_score",
        "condition",
        "position_multiplier",
        "dominant_region",
        "style",
        "stop_loss",
        "max_hold_hours",
    ]
    assert str(pd.DatetimeIndex(frame.index).tz) == "UTC"
    assert (frame.index == index).all()  # same instants, expressed in UTC
    assert frame["activity_score"].between(0, 100).all()


def test_single_and_empty_index() -> None:
    assert len(ANALYZER.analyze(utc("2024-01-01 05:00"))) == 1
    empty = ANALYZER.analyze(pd.DatetimeIndex([], tz="UTC"))
    assert empty.empty
    assert "activity_score" in empty.columns


# --- bad input ----------------------------------------------------------------------------------------------


def test_daily_bars_are_refused() -> None:
    daily = pd.date_range("2024-01-01", periods=30, freq="1D", tz="UTC")
    message = (
        "timezone analysis needs intraday bars (e.g. 1h); got bars every 1 day: resample or load hourly data"
    )
    with pytest.raises(DataError) as info:
        ANALYZER.analyze(daily)
    assert str(info.value) == message
    with pytest.raises(DataError, match="every 7 days"):
        require_intraday(pd.date_range("2024-01-01", periods=5, freq="7D", tz="UTC"))
    require_intraday(pd.date_range("2024-01-01", periods=5, freq="4h", tz="UTC"))  # passes
    assert len(ANALYZER.analyze(daily, check_intraday=False)) == 30  # e.g. irregular trade entries


def test_naive_index_and_timestamp_are_refused() -> None:
    with pytest.raises(DataError, match="naive"):
        ANALYZER.analyze(pd.date_range("2024-01-01", periods=5, freq="1h"))
    with pytest.raises(DataError, match="naive"):
        ANALYZER.analyze_timestamp("2024-01-01 05:00")


def test_ladder_for() -> None:
    assert ANALYZER.ladder_for("value") == ((0.08, 0.5), (0.15, 0.5))
    with pytest.raises(ConfigError, match="momentum"):
        ANALYZER.ladder_for("momentun")


def test_makenaide_run_mask() -> None:
    index = pd.date_range("2024-01-01", periods=24, freq="1h", tz="UTC")
    kst_hours = (index.hour.to_numpy() + 9) % 24
    mask = makenaide_run_mask(index)
    assert sorted(kst_hours[mask].tolist()) == list(MAKENAIDE_RUN_HOURS_KST)
    assert index[mask].hour.tolist() == [0, 6, 9, 12, 14, 17]


# --- settings validation ------------------------------------------------------------------------------


def test_default_settings_are_the_documented_ones() -> None:
    settings = TimezoneSettings()
    assert [(r.key, r.weight, r.peak_hours, r.style, r.volatility) for r in settings.regions] == [
        ("seoul", 0.20, (9, 14, 18, 21), "momentum", "high"),
        ("tokyo", 0.15, (9, 15, 20), "conservative", "medium"),
        ("singapore", 0.10, (10, 16, 21), "institutional", "medium"),
        ("london", 0.20, (8, 14, 19), "value", "medium"),
        ("new_york", 0.25, (9, 15, 20), "institutional", "low"),
        ("los_angeles", 0.10, (9, 14, 18), "tech", "medium"),
    ]
    assert [settings.stop_loss_for(r) for r in settings.regions] == [0.10, 0.08, 0.08, 0.08, 0.05, 0.08]
    assert DEFAULT_ACTIVITY_CURVE[:7] == (0.1,) * 7
    assert DEFAULT_ACTIVITY_CURVE[7:9] == (0.3, 0.5)
    assert DEFAULT_ACTIVITY_CURVE[9:19] == (0.7,) * 10
    assert DEFAULT_ACTIVITY_CURVE[19:] == (0.5,) * 5


def _reweighted(weight: float) -> tuple[Region, ...]:
    return (dataclasses.replace(DEFAULT_REGIONS[0], weight=weight), *DEFAULT_REGIONS[1:])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"regions": _reweighted(0.30)}, "weights must sum to 1"),
        ({"condition_thresholds": (80.0, 60.0, 60.0, 20.0)}, "condition_thresholds"),
        ({"condition_thresholds": (80.0, 60.0, 40.0)}, "condition_thresholds"),
        ({"position_multipliers": (1.0, 0.8, 0.6, 0.4, 0.0)}, "position_multipliers"),
        ({"position_multipliers": (1.2, 0.8, 0.6, 0.4, 0.2)}, "position_multipliers"),
        ({"activity_curve": (0.5,) * 23}, "activity_curve"),
        ({"activity_curve": (0.5,) * 23 + (1.5,)}, "activity_curve"),
        ({"curve_basis": "gmt"}, "curve_basis"),
        ({"peak_bonus": -0.1}, "peak_bonus"),
        (
            {"styles": {k: v for k, v in DEFAULT_STYLES.items() if k != "tech"}},
            r"regions\['los_angeles'\].style",
        ),
        ({"stop_loss_by_volatility": {"high": 0.1, "medium": 0.08}}, "volatility 'low'"),
        ({"stop_loss_by_volatility": {"high": 1.5, "medium": 0.08, "low": 0.05}}, "stop_loss_by_volatility"),
    ],
)
def test_settings_validation_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TimezoneSettings(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"take_profit_ladder": ((0.05, 0.6), (0.10, 0.5))}, "sum to <= 1"),
        ({"take_profit_ladder": ((0.10, 0.5), (0.05, 0.5))}, "strictly increasing"),
        ({"take_profit_ladder": ((-0.05, 0.5),)}, "gains must be > 0"),
        ({"take_profit_ladder": ((0.05,),)}, "take_profit_ladder"),
        ({"max_hold_hours": 0.0}, "max_hold_hours"),
        ({"stop_loss": 1.2}, "stop_loss"),
    ],
)
def test_style_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "name": "x",
        "stop_loss": None,
        "take_profit_ladder": ((0.05, 0.5), (0.10, 0.5)),
        "max_hold_hours": 24.0,
    }
    with pytest.raises(ConfigError, match=field):
        TradingStyle(**(base | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tz": "Asia/Nowhere"}, "tz"),
        ({"peak_hours": (9, 24)}, "peak_hours"),
        ({"key": "New York"}, "key"),
        ({"volatility": "extreme"}, "volatility"),
    ],
)
def test_region_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        dataclasses.replace(DEFAULT_REGIONS[0], **kwargs)  # type: ignore[arg-type]


def test_style_stop_loss_overrides_volatility_stop() -> None:
    styles = dict(DEFAULT_STYLES) | {
        "momentum": dataclasses.replace(DEFAULT_STYLES["momentum"], stop_loss=0.03)
    }
    analyzer = TimezoneMarketAnalyzer(TimezoneSettings(styles=styles))
    assert analyzer.analyze_timestamp("2024-07-01 00:00+00:00")["stop_loss"] == 0.03


def test_settings_are_immutable() -> None:
    settings = TimezoneSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.curve_basis = "utc"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.styles["new"] = DEFAULT_STYLES["tech"]  # type: ignore[index]


# --- fitting a curve ----------------------------------------------------------------------------------


def _bars_busy_at(hour: int, days: int = 20) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=24 * days, freq="1h", tz="UTC")
    rng = np.random.default_rng(7)
    size = np.where(index.hour == hour, 0.03, 0.005)
    sign = rng.choice([-1.0, 1.0], size=len(index))
    close = 100.0 * np.cumprod(1.0 + sign * size)
    volume = np.where(index.hour == hour, 5.0, 1.0) + rng.random(len(index))
    return pd.DataFrame({"close": close, "volume": volume}, index=index)


def test_fit_activity_curve_finds_the_busy_hour() -> None:
    bars = _bars_busy_at(14)
    curve = fit_activity_curve(bars)
    assert len(curve) == 24
    assert int(np.argmax(curve)) == 14
    assert curve[14] == 1.0
    assert max(curve[:14] + curve[15:]) == pytest.approx(0.005 / 0.03)
    by_volume = fit_activity_curve(bars, measure="volume")
    assert int(np.argmax(by_volume)) == 14
    # The fitted curve plugs straight into the UTC basis: 14 UTC is VERY_ACTIVE.
    analyzer = TimezoneMarketAnalyzer(TimezoneSettings(activity_curve=curve, curve_basis="utc"))
    frame = analyzer.analyze(pd.DatetimeIndex(bars.index[:24]))
    assert frame["condition"].iloc[14] == "VERY_ACTIVE"
    assert set(frame["condition"].drop(frame.index[14])) == {"VERY_QUIET"}


def test_fit_activity_curve_refuses_daily_bars_and_bad_input() -> None:
    index = pd.date_range("2024-01-01", periods=30, freq="1D", tz="UTC")
    daily = pd.DataFrame({"close": np.linspace(100, 130, 30), "volume": 1.0}, index=index)
    with pytest.raises(DataError, match="intraday bars"):
        fit_activity_curve(daily)
    with pytest.raises(ConfigError, match="measure"):
        fit_activity_curve(_bars_busy_at(3), measure="spread")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="'volume'"):
        fit_activity_curve(_bars_busy_at(3)[["close"]], measure="volume")


def test_synthetic_bars_fitted_curve_peaks_in_a_documented_busy_window() -> None:
    from backtesting_modules.data import synthetic_bars

    curve = fit_activity_curve(synthetic_bars(periods=24 * 365, seed=3))
    busiest = int(np.argmax(curve))
    assert busiest in {0, 1, 2, 13, 14, 15, 16}  # synthetic_bars: busy 00-02 and 13-16 UTC
    assert int(np.argmin(curve)) in {20, 21, 22}  # quiet 20-22 UTC
