"""Indicators: hand-computed values on tiny arrays, then agreement with straightforward pandas references."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtesting_modules import indicators as ind

NAN = np.nan


def close_to(actual: np.ndarray | list[float], expected: list[float], rel: float = 1e-12) -> None:
    np.testing.assert_allclose(
        actual, np.asarray(expected, dtype=float), rtol=rel, atol=1e-12, equal_nan=True
    )


# --- hand-computed ---------------------------------------------------------------------------------------


def test_sma_of_one_to_five() -> None:
    close_to(ind.sma(np.array([1.0, 2, 3, 4, 5]), 3), [NAN, NAN, 2, 3, 4])


def test_sma_skips_leading_nan_and_propagates_inner_nan_like_pandas() -> None:
    close_to(ind.sma(np.array([NAN, 1.0, 2, 3]), 2), [NAN, NAN, 1.5, 2.5])
    close_to(ind.sma(np.array([1.0, NAN, 3, 4, 5]), 2), [NAN, NAN, NAN, 3.5, 4.5])


def test_short_input_is_all_nan() -> None:
    assert np.isnan(ind.sma(np.array([1.0, 2.0]), 3)).all()
    assert np.isnan(ind.rsi(np.array([1.0, 2.0, 3.0]), 3)).all()
    assert np.isnan(ind.rolling_max(np.array([1.0]), 2)).all()


@pytest.mark.parametrize("window", [0, -1, 2.5])
def test_bad_window_is_rejected(window: Any) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        ind.sma(np.ones(5), window)


def test_ema_seeded_with_sma() -> None:
    # n=3: alpha = 0.5; seed at index 2 = mean(2, 4, 6) = 4; then 0.5*8 + 0.5*4 = 6; 0.5*3 + 0.5*6 = 4.5;
    # 0.5*1 + 0.5*4.5 = 2.75.
    close_to(ind.ema(np.array([2.0, 4, 6, 8, 3, 1]), 3), [NAN, NAN, 4, 6, 4.5, 2.75])


def test_wilder_rsi_by_hand() -> None:
    close = np.array([10, 11, 10.5, 11.5, 12, 11, 11.5, 12.5, 12, 13])
    # changes t=1..9: +1, -0.5, +1, +0.5, -1, +0.5, +1, -0.5, +1; n = 3
    # t=3: gain (1+0+1)/3 = 2/3, loss (0+0.5+0)/3 = 1/6               -> RSI = (2/3)/(5/6) = 80
    # t=4: gain (2/3*2+0.5)/3 = 11/18, loss (1/6*2+0)/3 = 1/9         -> 11/13
    # t=5: gain (11/18*2+0)/3 = 11/27, loss (1/9*2+1)/3 = 11/27        -> 50
    # t=6: gain (11/27*2+0.5)/3 = 35.5/81, loss (11/27*2)/3 = 22/81    -> 35.5/57.5
    # t=7: gain (35.5/81*2+1)/3 = 152/243, loss (22/81*2)/3 = 44/243   -> 152/196
    # t=8: gain (152/243*2)/3 = 304/729, loss (44/243*2+0.5)/3 = 209.5/729 -> 304/513.5
    # t=9: gain (304/729*2+1)/3 = 1337/2187, loss (209.5/729*2)/3 = 419/2187 -> 1337/1756
    gains = [Fraction(1), Fraction(0), Fraction(1), Fraction(1, 2), Fraction(0), Fraction(1, 2), Fraction(1)]
    losses = [Fraction(0), Fraction(1, 2), Fraction(0), Fraction(0), Fraction(1), Fraction(0), Fraction(0)]
    gains += [Fraction(0), Fraction(1)]
    losses += [Fraction(1, 2), Fraction(0)]
    avg_gain, avg_loss = sum(gains[:3]) / 3, sum(losses[:3]) / 3
    expected = [NAN, NAN, NAN, float(100 * avg_gain / (avg_gain + avg_loss))]
    for g, loss in zip(gains[3:], losses[3:], strict=True):
        avg_gain, avg_loss = (avg_gain * 2 + g) / 3, (avg_loss * 2 + loss) / 3
        expected.append(float(100 * avg_gain / (avg_gain + avg_loss)))
    close_to(expected[3:7], [80, 1100 / 13, 50, 3550 / 57.5])
    close_to(expected[7:], [15200 / 196, 30400 / 513.5, 133700 / 1756])
    close_to(ind.rsi(close, 3), expected)


def test_rsi_is_100_without_losses() -> None:
    close_to(ind.rsi(np.array([1.0, 2, 3, 4, 5]), 2), [NAN, NAN, 100, 100, 100])
    assert ind.rsi(np.array([5.0, 4, 3, 2, 1]), 2)[-1] == 0.0


def test_atr_on_five_bars() -> None:
    high = np.array([10.0, 11, 12, 11, 13])
    low = np.array([9.0, 10, 10, 9, 11])
    close = np.array([9.5, 10.5, 11, 10, 12])
    # true ranges t=1..4: max(1, 1.5, 0.5)=1.5; max(2, 1.5, 0.5)=2; max(2, 0, 2)=2; max(2, 3, 1)=3
    close_to(ind.true_range(high, low, close), [NAN, 1.5, 2, 2, 3])
    # n=2: first (1.5+2)/2 = 1.75; then (1.75+2)/2 = 1.875; (1.875+3)/2 = 2.4375
    close_to(ind.atr(high, low, close, 2), [NAN, NAN, 1.75, 1.875, 2.4375])


def test_donchian_includes_current_bar() -> None:
    upper, lower = ind.donchian(np.array([10.0, 11, 12, 11, 13]), np.array([9.0, 10, 10, 9, 11]), 3)
    close_to(upper, [NAN, NAN, 12, 12, 13])
    close_to(lower, [NAN, NAN, 9, 9, 9])


def test_rolling_extremes_across_block_boundaries() -> None:
    x = np.array([3.0, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5])
    close_to(ind.rolling_max(x, 3), [NAN, NAN, 4, 4, 5, 9, 9, 9, 6, 6, 5])
    close_to(ind.rolling_min(x, 3), [NAN, NAN, 1, 1, 1, 1, 2, 2, 2, 3, 3])
    close_to(ind.rolling_max(x, 1), list(x))


def test_bollinger_uses_population_std() -> None:
    mid, upper, lower = ind.bollinger(np.array([1.0, 2, 3, 4, 5]), 3, 2.0)
    spread = 2 * np.sqrt(2 / 3)  # population std of three consecutive integers is sqrt(2/3)
    close_to(mid, [NAN, NAN, 2, 3, 4])
    close_to(upper, [NAN, NAN, 2 + spread, 3 + spread, 4 + spread])
    close_to(lower, [NAN, NAN, 2 - spread, 3 - spread, 4 - spread])


def test_rolling_std_sample_by_default() -> None:
    close_to(ind.rolling_std(np.array([1.0, 2, 3, 4, 6]), 3), [NAN, NAN, 1, 1, np.sqrt(7 / 3)])


def test_pct_change_and_volume_ratio() -> None:
    close_to(ind.pct_change(np.array([100.0, 110, 99, 99]), 1), [NAN, 0.1, -0.1, 0.0])
    close_to(ind.pct_change(np.array([100.0, 110, 99, 99]), 2), [NAN, NAN, -0.01, -0.1])
    # mean of (1, 1, 4) is 2: the spike is twice its 3-bar mean
    close_to(ind.volume_ratio(np.array([1.0, 1, 4, 0, 0, 0]), 3), [NAN, NAN, 2, 0, 0, NAN])


def test_macd_is_the_difference_of_emas() -> None:
    x = np.linspace(1.0, 50.0, 60) + np.sin(np.arange(60))
    line, signal, hist = ind.macd(x, 3, 6, 4)
    close_to(line, list(ind.ema(x, 3) - ind.ema(x, 6)))
    assert np.isnan(signal[:8]).all() and not np.isnan(signal[8])  # line from 5, signal 3 bars later
    close_to(hist, list(line - signal))


# --- pandas references on random data --------------------------------------------------------------------


@pytest.fixture
def walk() -> np.ndarray:
    rng = np.random.default_rng(7)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, 500)))


def seeded_ewm(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """pandas reference: the first n values replaced by their mean, then ewm(adjust=False)."""
    first = int(np.flatnonzero(~np.isnan(x))[0])
    tail = pd.Series(x[first + n - 1 :].copy())
    tail.iloc[0] = np.mean(x[first : first + n])
    out = np.full(x.shape[0], np.nan)
    out[first + n - 1 :] = tail.ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


@pytest.mark.parametrize("n", [1, 2, 5, 20, 128, 200])
def test_rolling_indicators_match_pandas(walk: np.ndarray, n: int) -> None:
    series = pd.Series(walk)
    np.testing.assert_allclose(ind.sma(walk, n), series.rolling(n).mean(), rtol=1e-10)
    np.testing.assert_allclose(ind.rolling_std(walk, n), series.rolling(n).std(), rtol=1e-8)
    np.testing.assert_array_equal(ind.rolling_max(walk, n), series.rolling(n).max())
    np.testing.assert_array_equal(ind.rolling_min(walk, n), series.rolling(n).min())
    np.testing.assert_allclose(ind.pct_change(walk, n), series.pct_change(n), rtol=1e-12)


@pytest.mark.parametrize("n", [2, 7, 14, 100])
def test_recursive_indicators_match_pandas_ewm(walk: np.ndarray, n: int) -> None:
    np.testing.assert_allclose(ind.ema(walk, n), seeded_ewm(walk, n, 2 / (n + 1)), rtol=1e-12)
    delta = np.diff(walk)
    gain = seeded_ewm(np.maximum(delta, 0), n, 1 / n)
    loss = seeded_ewm(np.maximum(-delta, 0), n, 1 / n)
    np.testing.assert_allclose(ind.rsi(walk, n)[1:], 100 - 100 / (1 + gain / loss), rtol=1e-10)


def test_atr_matches_pandas(walk: np.ndarray) -> None:
    high, low = pd.Series(walk * 1.01), pd.Series(walk * 0.98)
    prev = pd.Series(walk).shift(1)
    frame = pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1)
    true_range = frame.max(axis=1, skipna=False).to_numpy()
    atr = ind.atr(high.to_numpy(), low.to_numpy(), walk, 14)
    np.testing.assert_allclose(atr, seeded_ewm(true_range, 14, 1 / 14), rtol=1e-12)


def test_sma_is_precise_on_large_prices() -> None:
    rng = np.random.default_rng(3)
    prices = 1e8 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 43_800)))
    for n in (5, 50, 200):
        reference = pd.Series(prices).rolling(n).mean().to_numpy()
        np.testing.assert_allclose(ind.sma(prices, n), reference, rtol=1e-9)


def test_blocked_recursion_matches_the_plain_loop() -> None:
    rng = np.random.default_rng(11)
    u = rng.normal(size=1000)
    for decay in (0.0, 1 / 3, 0.9, 0.999):
        blocked = ind._linear_recursion(u, decay, 2.5)
        looped = ind._recursion_loop(u, decay, 2.5)
        np.testing.assert_allclose(blocked, looped, rtol=1e-10, atol=1e-12)


def test_recursion_with_inner_nan_propagates_from_there() -> None:
    x = np.array([1.0, 2, 3, 4, NAN, 6, 7])
    out = ind.ema(x, 2)
    close_to(out[:4], [NAN, 1.5, 2 / 3 * 3 + 1 / 3 * 1.5, 2 / 3 * 4 + 1 / 3 * 2.5])
    assert np.isnan(out[4:]).all()


def test_indicators_return_float64_of_input_length(walk: np.ndarray) -> None:
    outputs = [
        ind.sma(walk, 5),
        ind.ema(walk, 5),
        ind.rsi(walk, 5),
        ind.rolling_std(walk, 5),
        ind.atr(walk, walk, walk, 5),
        ind.volume_ratio(walk, 5),
        *ind.macd(walk),
        *ind.bollinger(walk),
        *ind.donchian(walk, walk, 5),
    ]
    for out in outputs:
        assert out.dtype == np.float64 and out.shape == walk.shape
