"""Properties of validated runs: whatever the bars, the window, the strategy's parameters, the fills and the
stops, every trade of a windowed run (a walk-forward test window) lies inside its window, and the folds a
walk-forward plans on real bars never let a test window overlap another or its own train window."""

from __future__ import annotations

import itertools

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from backtesting_modules import StrategyConfig, run_backtest, synthetic_bars
from backtesting_modules.validation import WalkForward, plan_folds
from backtesting_modules.windows import TradeWindow

BARS = synthetic_bars("KRW-ETH", start="2024-01-01", periods=1500, freq="1h", seed=17)


@given(
    start=st.integers(90, 1300),  # the warm-up (slow + 2 bars at most 82) lies before the window
    length=st.integers(2, 600),
    fast=st.integers(2, 20),
    slow=st.integers(21, 80),
    fill=st.sampled_from(["next_open", "close"]),
    stop=st.sampled_from([None, 0.02, 0.05]),
    hold=st.sampled_from([None, 5, 48]),
)
def test_every_trade_of_a_windowed_run_lies_inside_its_window(
    start: int, length: int, fast: int, slow: int, fill: str, stop: float | None, hold: int | None
) -> None:
    index = BARS.index
    window = TradeWindow(index[start], index[min(start + length, len(index) - 1)])
    config = StrategyConfig(
        filters=None, min_volume=0.0, fill=fill, stop_loss_pct=stop, max_holding_bars=hold
    )
    result = run_backtest(BARS, "SMA_Crossover", {"fast": fast, "slow": slow}, config, window=window)
    trades = result.trades
    assert (trades["entry_time"] >= window.start).all() and (trades["exit_time"] < window.stop).all()
    assert result.equity.index[0] >= window.start and result.equity.index[-1] < window.stop


@given(
    folds=st.integers(1, 5),
    train=st.integers(50, 400),
    test=st.integers(20, 200),
    gap=st.integers(0, 24),
    anchored=st.booleans(),
    dropped=st.lists(st.integers(0, 1499), max_size=60),
)
def test_walk_forward_test_windows_never_overlap_and_follow_their_train_windows(
    folds: int, train: int, test: int, gap: int, anchored: bool, dropped: list[int]
) -> None:
    index = BARS.index.delete(sorted(set(dropped)))  # real data has holes
    needed = (0 if anchored else train) + gap + folds * test
    if needed + train > len(index):
        return  # does not fit: refused, tested in tests/engine/test_validation_folds.py
    planned = plan_folds(index, WalkForward(folds, train, test, anchored=anchored, gap=gap))
    for fold, after in itertools.pairwise(planned):
        assert fold.test_stop <= after.test_start
    for fold in planned:
        assert fold.train_start < fold.train_stop <= fold.test_start < fold.test_stop
        assert fold.gap_bars == gap and fold.test_bars == test
        assert pd.Timestamp(fold.test_stop) <= index[-1] + pd.Timedelta("1h")
