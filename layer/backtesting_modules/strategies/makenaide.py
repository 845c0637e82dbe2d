"""The four strategies of the original Makenaide engine, with every threshold and window a parameter whose
default is the original's hard-coded value (see docs/strategies.md for the rules and the few places where
a definition had to be made precise).

Each original returned BUY / SELL / HOLD per bar and checked BUY first, so a bar that qualifies for both
is an entry only: exits are ``sell & ~buy`` here. Comparisons are strict where the original's were. The
point weights of the score strategies are the original's and stay constants: the thresholds they are
compared with (`buy_threshold`, `sell_threshold`) are parameters.

Rules are evaluated one combination at a time (`per_combo_signals`); every indicator is memoised on the
bars by window, so a grid computes each window once and each combination costs ~30 array comparisons.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from ..bars import BarArrays
from ..indicators import (
    cached_pct_change,
    cached_return_std,
    cached_rolling_max,
    cached_rolling_min,
    cached_rsi,
    cached_sma,
    cached_volume_ratio,
)
from .classic import crossed_above, crossed_below, int_param, per_combo_signals
from .registry import Constraint, Param, Strategy, register


def _int(name: str, default: int, low: int, high: int, doc: str) -> Param:
    return Param(name, default, low, high, int, doc)


def _num(name: str, default: float, low: float, high: float, doc: str) -> Param:
    return Param(name, default, low, high, float, doc)


def _tier(strong: np.ndarray, weak: np.ndarray, strong_points: float, weak_points: float) -> np.ndarray:
    """`strong_points` where `strong`, else `weak_points` where `weak`, else 0 (the original's if/elif)."""
    return np.where(strong, strong_points, np.where(weak, weak_points, 0.0))


def _between(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.greater(x, low) & np.less(x, high)


def _ordered(*names: str) -> Constraint:
    """A constraint that the named integer windows are strictly increasing."""

    def check(p: Mapping[str, np.ndarray]) -> np.ndarray:
        ok = np.ones(np.shape(p[names[0]]), dtype=bool)
        for a, b in itertools.pairwise(names):
            ok &= np.less(p[a], p[b])
        return ok

    return Constraint(" < ".join(names), check)


def _warmup_of(params: Mapping[str, np.ndarray], first_bars: Mapping[str, int]) -> np.ndarray:
    """Per combination, the first bar where every indicator is defined: max over windows of window+offset."""
    return np.maximum.reduce([int_param(params, name) + offset for name, offset in first_bars.items()])


def _channel_position(bars: BarArrays, n: int) -> np.ndarray:
    """(close - lowest low) / (highest high - lowest low) over n bars; 0.5 in a flat channel (original)."""

    def compute() -> np.ndarray:
        high, low = cached_rolling_max(bars, "high", n), cached_rolling_min(bars, "low", n)
        width = high - low
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(width > 0.0, (bars.close - low) / width, np.where(width == 0.0, 0.5, np.nan))

    return bars.memo(("channel_position", n), compute)


def _pullback(bars: BarArrays, n: int) -> np.ndarray:
    """(highest high of n bars - close) / that high."""

    def compute() -> np.ndarray:
        high = cached_rolling_max(bars, "high", n)
        return (high - bars.close) / high

    return bars.memo(("pullback", n), compute)


def _contraction(bars: BarArrays, n: int) -> np.ndarray:
    """std of the n one-bar returns ending n bars ago over std of the last n returns (NaN if the latter is 0).

    At bar t: returns t-2n+1 .. t-n over returns t-n+1 .. t, i.e. closes t-2n .. t-n against t-n .. t;
    first defined at bar 2n.
    """

    def compute() -> np.ndarray:
        recent = cached_return_std(bars, n)
        older = np.full_like(recent, np.nan)
        older[n:] = recent[:-n]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(recent > 0.0, older / recent, np.nan)

    return bars.memo(("contraction", n), compute)


# --- Static_Donchian_Supertrend --------------------------------------------------------------------------

STATIC_PARAMS = (
    _int("channel_period", 10, 2, 200, "bars of the Donchian channel the close is positioned in"),
    _num("position_strong", 0.65, 0.0, 1.0, "buy: channel position above this scores 25"),
    _num("position_weak", 0.5, 0.0, 1.0, "buy: else channel position above this scores 10"),
    _int("ma_short", 5, 2, 100, "short SMA window (MA5)"),
    _int("ma_medium", 10, 3, 200, "medium SMA window (MA10)"),
    _int("ma_long", 20, 4, 500, "long SMA window (MA20)"),
    _int("rsi_period", 7, 2, 100, "RSI window"),
    _num("rsi_low", 35.0, 0.0, 100.0, "buy: RSI strictly between rsi_low and rsi_high scores 20"),
    _num("rsi_high", 70.0, 0.0, 100.0, "upper bound of the 20-point RSI band"),
    _num(
        "rsi_wide_low", 30.0, 0.0, 100.0, "buy: else RSI strictly between rsi_wide_low and rsi_wide_high: 10"
    ),
    _num("rsi_wide_high", 75.0, 0.0, 100.0, "upper bound of the 10-point RSI band"),
    _int("volume_period", 10, 2, 200, "window of the volume mean in the volume ratio (current bar included)"),
    _num("volume_strong", 2.0, 0.0, 100.0, "buy: volume ratio above this scores 20"),
    _num("volume_weak", 1.5, 0.0, 100.0, "buy: else volume ratio above this scores 12"),
    _int("volatility_period", 10, 2, 200, "number of one-bar returns in the volatility (sample std)"),
    _num("volatility_low", 0.01, 0.0, 1.0, "buy: volatility strictly between low and high scores 15"),
    _num("volatility_high", 0.04, 0.0, 1.0, "upper bound of the 15-point volatility band"),
    _num("volatility_max", 0.06, 0.0, 1.0, "buy: else volatility below this scores 8"),
    _num("buy_threshold", 70.0, 0.0, 100.0, "entry when the buy score (0-100) is at least this"),
    _num("sell_position_low", 0.35, 0.0, 1.0, "sell: channel position below this scores 30"),
    _num("sell_position_weak", 0.5, 0.0, 1.0, "sell: else channel position below this scores 15"),
    _num("sell_rsi_high", 75.0, 0.0, 100.0, "sell: RSI above this (or below sell_rsi_low) scores 25"),
    _num("sell_rsi_low", 25.0, 0.0, 100.0, "sell: RSI below this (or above sell_rsi_high) scores 25"),
    _num(
        "sell_rsi_wide_high", 70.0, 0.0, 100.0, "sell: else RSI above this (or below the wide low) scores 15"
    ),
    _num(
        "sell_rsi_wide_low", 30.0, 0.0, 100.0, "sell: else RSI below this (or above the wide high) scores 15"
    ),
    _num("trend_drop", 0.02, 0.0, 1.0, "sell: (MA5 - MA20) / MA20 below -trend_drop scores 20"),
    _num("sell_threshold", 60.0, 0.0, 100.0, "exit when the sell score (0-100) is at least this"),
)


def _static_buy_score(bars: BarArrays, p: dict[str, float]) -> np.ndarray:
    position = _channel_position(bars, int(p["channel_period"]))
    short, medium = cached_sma(bars, int(p["ma_short"])), cached_sma(bars, int(p["ma_medium"]))
    long = cached_sma(bars, int(p["ma_long"]))
    rsi = cached_rsi(bars, int(p["rsi_period"]))
    volume = cached_volume_ratio(bars, int(p["volume_period"]))
    volatility = cached_return_std(bars, int(p["volatility_period"]))
    rising = np.greater(short, medium)
    return (
        _tier(np.greater(position, p["position_strong"]), np.greater(position, p["position_weak"]), 25, 10)
        + _tier(rising & np.greater(medium, long), rising, 20, 10)
        + _tier(
            _between(rsi, p["rsi_low"], p["rsi_high"]),
            _between(rsi, p["rsi_wide_low"], p["rsi_wide_high"]),
            20,
            10,
        )
        + _tier(np.greater(volume, p["volume_strong"]), np.greater(volume, p["volume_weak"]), 20, 12)
        + _tier(
            _between(volatility, p["volatility_low"], p["volatility_high"]),
            np.less(volatility, p["volatility_max"]),
            15,
            8,
        )
    )


def _static_sell_score(bars: BarArrays, p: dict[str, float]) -> np.ndarray:
    position = _channel_position(bars, int(p["channel_period"]))
    short, medium = cached_sma(bars, int(p["ma_short"])), cached_sma(bars, int(p["ma_medium"]))
    long = cached_sma(bars, int(p["ma_long"]))
    rsi = cached_rsi(bars, int(p["rsi_period"]))
    falling = np.less(short, medium)
    extreme = np.greater(rsi, p["sell_rsi_high"]) | np.less(rsi, p["sell_rsi_low"])
    stretched = np.greater(rsi, p["sell_rsi_wide_high"]) | np.less(rsi, p["sell_rsi_wide_low"])
    return (
        _tier(np.less(position, p["sell_position_low"]), np.less(position, p["sell_position_weak"]), 30, 15)
        + _tier(falling & np.less(medium, long), falling, 25, 12)
        + _tier(extreme, stretched, 25, 15)
        + np.where(np.less(short - long, -p["trend_drop"] * long), 20.0, 0.0)
    )


def _static_column(bars: BarArrays, p: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    buy = np.greater_equal(_static_buy_score(bars, p), p["buy_threshold"])
    sell = np.greater_equal(_static_sell_score(bars, p), p["sell_threshold"])
    return buy, sell & ~buy


def _static_warmup(params: Mapping[str, np.ndarray]) -> np.ndarray:
    return _warmup_of(
        params,
        {
            "channel_period": -1,
            "ma_short": -1,
            "ma_medium": -1,
            "ma_long": -1,
            "rsi_period": 0,
            "volume_period": -1,
            "volatility_period": 0,
        },
    )


STATIC_DONCHIAN_SUPERTREND = register(
    Strategy(
        name="Static_Donchian_Supertrend",
        description=(
            "Makenaide's score strategy: Donchian channel position, MA5>MA10>MA20 alignment, RSI(7) band, "
            "volume ratio and return volatility give a buy score (entry >= 70); channel position, inverse "
            "alignment, RSI extremes and a falling MA5/MA20 spread give a sell score (exit >= 60)."
        ),
        params=STATIC_PARAMS,
        signals=lambda bars, params: per_combo_signals(bars, params, _static_column, _static_warmup(params)),
        warmup=_static_warmup,
        constraints=(_ordered("ma_short", "ma_medium", "ma_long"),),
    )
)


# --- Dynamic_RSI_MACD ------------------------------------------------------------------------------------

DYNAMIC_PARAMS = (
    _int("rsi_period", 7, 2, 100, "RSI window"),
    _int("momentum_fast", 6, 2, 100, "momentum = SMA(momentum_fast) - SMA(momentum_slow) of the close"),
    _int("momentum_slow", 14, 3, 200, "slow SMA of the momentum (its value also scales the sell rule)"),
    _int("ma_period", 7, 2, 200, "SMA the close is compared with (MA7)"),
    _num("rsi_buy_max", 60.0, 0.0, 100.0, "buy needs RSI below this"),
    _num("rsi_sell", 70.0, 0.0, 100.0, "sell when RSI is above this"),
    _num("momentum_drop", 0.01, 0.0, 1.0, "sell when momentum < -momentum_drop × SMA(momentum_slow)"),
    _num("ma_exit_ratio", 0.97, 0.0, 2.0, "sell when close < ma_exit_ratio × MA7"),
)


def _dynamic_column(bars: BarArrays, p: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    rsi = cached_rsi(bars, int(p["rsi_period"]))
    slow = cached_sma(bars, int(p["momentum_slow"]))
    momentum = cached_sma(bars, int(p["momentum_fast"])) - slow
    average = cached_sma(bars, int(p["ma_period"]))
    buy = np.less(rsi, p["rsi_buy_max"]) & np.greater(momentum, 0.0) & np.greater(bars.close, average)
    sell = (
        np.greater(rsi, p["rsi_sell"])
        | np.less(momentum, -p["momentum_drop"] * slow)
        | np.less(bars.close, p["ma_exit_ratio"] * average)
    )
    return buy, sell & ~buy


def _dynamic_warmup(params: Mapping[str, np.ndarray]) -> np.ndarray:
    return _warmup_of(params, {"rsi_period": 0, "momentum_fast": -1, "momentum_slow": -1, "ma_period": -1})


DYNAMIC_RSI_MACD = register(
    Strategy(
        name="Dynamic_RSI_MACD",
        description=(
            "Makenaide's oscillator strategy: buy when RSI(7) < 60, momentum (SMA6 - SMA14) > 0 and close > "
            "MA7; sell when RSI > 70, momentum < -1 % of SMA14, or close < 0.97 MA7."
        ),
        params=DYNAMIC_PARAMS,
        signals=lambda bars, params: per_combo_signals(
            bars, params, _dynamic_column, _dynamic_warmup(params)
        ),
        warmup=_dynamic_warmup,
        constraints=(_ordered("momentum_fast", "momentum_slow"),),
    )
)


# --- Hybrid_VCP_Momentum ---------------------------------------------------------------------------------

HYBRID_PARAMS = (
    _int("high_period", 20, 2, 500, "bars of the high the pullback is measured from"),
    _int(
        "contraction_window", 15, 2, 200, "returns in each of the two volatility windows of the contraction"
    ),
    _num("pullback_min", 0.03, 0.0, 1.0, "buy: pullback strictly between min and max with contraction: 30"),
    _num("pullback_max", 0.20, 0.0, 1.0, "upper bound of the 30-point pullback band"),
    _num("contraction_min", 1.3, 0.0, 100.0, "contraction (older std / recent std) needed for the 30 points"),
    _num("pullback_wide_min", 0.05, 0.0, 1.0, "buy: else pullback strictly between wide min and max: 15"),
    _num("pullback_wide_max", 0.25, 0.0, 1.0, "upper bound of the 15-point pullback band"),
    _int("momentum_short", 5, 1, 200, "bars of the short momentum close[t] / close[t-n] - 1"),
    _int("momentum_long", 10, 1, 500, "bars of the long momentum"),
    _num("momentum_short_min", -0.05, -1.0, 1.0, "buy: short momentum above this and long above its min: 25"),
    _num("momentum_long_min", -0.10, -1.0, 1.0, "long momentum floor of the 25-point tier"),
    _num("momentum_short_wide_min", -0.08, -1.0, 1.0, "buy: else short momentum above this scores 12"),
    _int("ma_short", 5, 2, 100, "short SMA window (MA5)"),
    _int("ma_medium", 10, 3, 200, "medium SMA window (MA10)"),
    _int("ma_long", 15, 4, 500, "long SMA window (MA15)"),
    _int("rsi_period", 10, 2, 100, "RSI window"),
    _num("rsi_low", 40.0, 0.0, 100.0, "buy: RSI strictly between rsi_low and rsi_high scores 15"),
    _num("rsi_high", 65.0, 0.0, 100.0, "upper bound of the 15-point RSI band"),
    _num("rsi_wide_low", 35.0, 0.0, 100.0, "buy: else RSI strictly between the wide bounds scores 8"),
    _num("rsi_wide_high", 70.0, 0.0, 100.0, "upper bound of the 8-point RSI band"),
    _int("volume_period", 15, 2, 200, "window of the volume mean in the volume ratio (current bar included)"),
    _num("volume_strong", 1.8, 0.0, 100.0, "buy: volume ratio above this scores 10"),
    _num("volume_weak", 1.3, 0.0, 100.0, "buy: else volume ratio above this scores 5"),
    _num("buy_threshold", 65.0, 0.0, 100.0, "entry when the buy score (0-100) is at least this"),
    _num("sell_pullback", 0.25, 0.0, 1.0, "sell when the pullback exceeds this"),
    _num("sell_momentum", -0.12, -1.0, 1.0, "sell when the short momentum is below this"),
    _num("sell_ma_ratio", 0.97, 0.0, 2.0, "sell when MA5 < sell_ma_ratio × MA15"),
    _num("sell_rsi_high", 75.0, 0.0, 100.0, "sell when RSI is above this"),
    _num("sell_rsi_low", 25.0, 0.0, 100.0, "sell when RSI is below this"),
    _num("sell_volume", 4.0, 0.0, 100.0, "sell when the volume ratio is above this (climax volume)"),
)


def _hybrid_buy_score(bars: BarArrays, p: dict[str, float]) -> np.ndarray:
    pullback = _pullback(bars, int(p["high_period"]))
    contraction = _contraction(bars, int(p["contraction_window"]))
    short_mom = cached_pct_change(bars, int(p["momentum_short"]))
    long_mom = cached_pct_change(bars, int(p["momentum_long"]))
    short, medium = cached_sma(bars, int(p["ma_short"])), cached_sma(bars, int(p["ma_medium"]))
    long = cached_sma(bars, int(p["ma_long"]))
    rsi = cached_rsi(bars, int(p["rsi_period"]))
    volume = cached_volume_ratio(bars, int(p["volume_period"]))
    vcp = _between(pullback, p["pullback_min"], p["pullback_max"]) & np.greater(
        contraction, p["contraction_min"]
    )
    momentum_ok = np.greater(short_mom, p["momentum_short_min"]) & np.greater(
        long_mom, p["momentum_long_min"]
    )
    rising = np.greater(short, medium)
    return (
        _tier(vcp, _between(pullback, p["pullback_wide_min"], p["pullback_wide_max"]), 30, 15)
        + _tier(momentum_ok, np.greater(short_mom, p["momentum_short_wide_min"]), 25, 12)
        + _tier(rising & np.greater(medium, long), rising, 20, 10)
        + _tier(
            _between(rsi, p["rsi_low"], p["rsi_high"]),
            _between(rsi, p["rsi_wide_low"], p["rsi_wide_high"]),
            15,
            8,
        )
        + _tier(np.greater(volume, p["volume_strong"]), np.greater(volume, p["volume_weak"]), 10, 5)
    )


def _hybrid_sell(bars: BarArrays, p: dict[str, float]) -> np.ndarray:
    rsi = cached_rsi(bars, int(p["rsi_period"]))
    long = cached_sma(bars, int(p["ma_long"]))
    return (
        np.greater(_pullback(bars, int(p["high_period"])), p["sell_pullback"])
        | np.less(cached_pct_change(bars, int(p["momentum_short"])), p["sell_momentum"])
        | np.less(cached_sma(bars, int(p["ma_short"])), p["sell_ma_ratio"] * long)
        | np.greater(rsi, p["sell_rsi_high"])
        | np.less(rsi, p["sell_rsi_low"])
        | np.greater(cached_volume_ratio(bars, int(p["volume_period"])), p["sell_volume"])
    )


def _hybrid_column(bars: BarArrays, p: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    buy = np.greater_equal(_hybrid_buy_score(bars, p), p["buy_threshold"])
    return buy, _hybrid_sell(bars, p) & ~buy


def _hybrid_warmup(params: Mapping[str, np.ndarray]) -> np.ndarray:
    contraction = 2 * int_param(params, "contraction_window")
    others = _warmup_of(
        params,
        {
            "high_period": -1,
            "momentum_short": 0,
            "momentum_long": 0,
            "ma_short": -1,
            "ma_medium": -1,
            "ma_long": -1,
            "rsi_period": 0,
            "volume_period": -1,
        },
    )
    return np.maximum(contraction, others)


HYBRID_VCP_MOMENTUM = register(
    Strategy(
        name="Hybrid_VCP_Momentum",
        description=(
            "Makenaide's volatility-contraction strategy: pullback from the 20-bar high with contracting "
            "volatility, 5/10-bar momentum, MA5>MA10>MA15, RSI(10) band and volume give a buy score "
            "(entry >= 65); a deep pullback, momentum collapse, MA break, RSI extreme or climax volume exits."
        ),
        params=HYBRID_PARAMS,
        signals=lambda bars, params: per_combo_signals(bars, params, _hybrid_column, _hybrid_warmup(params)),
        warmup=_hybrid_warmup,
        constraints=(
            _ordered("ma_short", "ma_medium", "ma_long"),
            _ordered("momentum_short", "momentum_long"),
        ),
    )
)


# --- Simple_MA_Crossover ---------------------------------------------------------------------------------

SIMPLE_PARAMS = (
    _int("ma_short", 5, 2, 100, "short SMA window (MA5)"),
    _int("ma_medium", 10, 3, 200, "medium SMA window (MA10)"),
    _int("ma_long", 20, 4, 500, "long SMA window (MA20)"),
    _num("trend_spread", 0.015, 0.0, 1.0, "buy (no cross): MA5 > (1 + trend_spread) × MA10 ..."),
    _num("trend_strength", 0.02, 0.0, 1.0, "... and (MA5 - MA20) / MA20 > trend_strength"),
    _int("rsi_period", 8, 2, 100, "RSI window"),
    _num("rsi_low", 30.0, 0.0, 100.0, "buy condition: RSI strictly between rsi_low and rsi_high"),
    _num("rsi_high", 75.0, 0.0, 100.0, "upper bound of the RSI buy band"),
    _int("volume_period", 15, 2, 200, "window of the volume mean in the volume ratio (current bar included)"),
    _num("volume_min", 1.4, 0.0, 100.0, "buy condition: volume ratio above this"),
    _int("volatility_period", 15, 2, 200, "number of one-bar returns in the volatility (sample std)"),
    _num("volatility_low", 0.01, 0.0, 1.0, "buy condition: volatility strictly between low and high"),
    _num("volatility_high", 0.05, 0.0, 1.0, "upper bound of the volatility buy band"),
    _num("long_trend_spread", 0.005, 0.0, 1.0, "buy condition: MA10 > (1 + long_trend_spread) × MA20"),
    _int("min_buy_conditions", 4, 1, 5, "entry when at least this many of the 5 buy conditions hold"),
    _num("fall_spread", 0.015, 0.0, 1.0, "strong fall: MA5 < (1 - fall_spread) × MA10 ..."),
    _num("fall_strength", 0.02, 0.0, 1.0, "... and (MA5 - MA20) / MA20 < -fall_strength"),
    _num("rsi_extreme_high", 75.0, 0.0, 100.0, "sell condition: RSI above this (or below rsi_extreme_low)"),
    _num("rsi_extreme_low", 25.0, 0.0, 100.0, "sell condition: RSI below this (or above rsi_extreme_high)"),
    _num("long_fall_ratio", 0.98, 0.0, 2.0, "sell condition: MA5 < long_fall_ratio × MA20"),
    _int("min_sell_conditions", 2, 1, 3, "exit when at least this many of the 3 sell conditions hold"),
)


def _simple_buy_count(bars: BarArrays, p: dict[str, float]) -> np.ndarray:
    short, medium = cached_sma(bars, int(p["ma_short"])), cached_sma(bars, int(p["ma_medium"]))
    long = cached_sma(bars, int(p["ma_long"]))
    rsi = cached_rsi(bars, int(p["rsi_period"]))
    volatility = cached_return_std(bars, int(p["volatility_period"]))
    strong_trend = np.greater(short, (1.0 + p["trend_spread"]) * medium) & np.greater(
        short - long, p["trend_strength"] * long
    )
    conditions = (
        crossed_above(short, medium) | strong_trend,
        _between(rsi, p["rsi_low"], p["rsi_high"]),
        np.greater(cached_volume_ratio(bars, int(p["volume_period"])), p["volume_min"]),
        _between(volatility, p["volatility_low"], p["volatility_high"]),
        np.greater(medium, (1.0 + p["long_trend_spread"]) * long),
    )
    return np.sum(conditions, axis=0)


def _simple_sell_count(bars: BarArrays, p: dict[str, float]) -> np.ndarray:
    short, medium = cached_sma(bars, int(p["ma_short"])), cached_sma(bars, int(p["ma_medium"]))
    long = cached_sma(bars, int(p["ma_long"]))
    rsi = cached_rsi(bars, int(p["rsi_period"]))
    strong_fall = np.less(short, (1.0 - p["fall_spread"]) * medium) & np.less(
        short - long, -p["fall_strength"] * long
    )
    conditions = (
        crossed_below(short, medium) | strong_fall,
        np.greater(rsi, p["rsi_extreme_high"]) | np.less(rsi, p["rsi_extreme_low"]),
        np.less(short, p["long_fall_ratio"] * long),
    )
    return np.sum(conditions, axis=0)


def _simple_column(bars: BarArrays, p: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    buy = np.greater_equal(_simple_buy_count(bars, p), p["min_buy_conditions"])
    sell = np.greater_equal(_simple_sell_count(bars, p), p["min_sell_conditions"])
    return buy, sell & ~buy


def _simple_warmup(params: Mapping[str, np.ndarray]) -> np.ndarray:
    # The crosses compare with the bar before, hence ma_short/ma_medium without the -1.
    return _warmup_of(
        params,
        {
            "ma_short": 0,
            "ma_medium": 0,
            "ma_long": -1,
            "rsi_period": 0,
            "volume_period": -1,
            "volatility_period": 0,
        },
    )


SIMPLE_MA_CROSSOVER = register(
    Strategy(
        name="Simple_MA_Crossover",
        description=(
            "Makenaide's vote strategy: entry when at least 4 of 5 buy conditions hold (MA5/MA10 golden "
            "cross or strong trend, RSI(8) band, volume ratio, volatility band, MA10 above MA20); exit "
            "when at least 2 of 3 sell conditions hold (dead cross or strong fall, RSI extreme, MA5 below "
            "0.98 MA20)."
        ),
        params=SIMPLE_PARAMS,
        signals=lambda bars, params: per_combo_signals(bars, params, _simple_column, _simple_warmup(params)),
        warmup=_simple_warmup,
        constraints=(_ordered("ma_short", "ma_medium", "ma_long"),),
    )
)
