"""A validated sweep in one process (`scripts/backtest.py --grid`, docs/validation.md): the same folds,
scan, winners out of sample and document as a batch's (`validation`), with `run_sweep` on each train
window and `run_backtest` of each winner on its test window instead of jobs on the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from backtesting_modules import StrategyConfig, get_strategy, run_backtest, run_sweep
from backtesting_modules.data import bar_seconds
from backtesting_modules.jobs.spec import DEFAULT_MIN_TRADES, DEFAULT_TOP_K, timeframe_delta
from backtesting_modules.metrics import HIGHER_IS_BETTER
from backtesting_modules.validation import Fold, Holdout, ValidationError, WalkForward, plan_folds
from backtesting_modules.windows import TradeWindow

from ..errors import BatchInputError
from .validation import fit_pbo_blocks, grid_warmup
from .validation_compute import OutOfSample, ValidationSettings, compute_validation_document
from .validation_scan import GroupScan, fold_in


@dataclass(frozen=True)
class SweepValidation:
    """How a one-process sweep is validated: the split, and the batch spec's other settings."""

    scheme: WalkForward | Holdout
    top_k: int = DEFAULT_TOP_K
    min_trades: int = DEFAULT_MIN_TRADES
    pbo_blocks: int | None = None
    returns_period: str = "1d"

    def settings(self, metric: str) -> ValidationSettings:
        if isinstance(self.scheme, Holdout):
            split: dict[str, Any] = {
                "holdout": {
                    "fraction": self.scheme.fraction,
                    "period": self.scheme.period,
                    "gap": self.scheme.gap,
                }
            }
        else:
            s = self.scheme
            split = {"walk_forward": {"folds": s.folds, "train": s.train, "test": s.test,
                                      "anchored": s.anchored, "gap": s.gap}}  # fmt: skip
        return ValidationSettings(
            {**split, "top_k": self.top_k, "pbo_blocks": self.pbo_blocks},
            {"metric": metric, "min_trades": self.min_trades},
            self.returns_period,
        )


def run_validated_sweep(
    bars: pd.DataFrame,
    strategy: str,
    grid: Mapping[str, Sequence[Any]],
    config: StrategyConfig,
    *,
    fixed: Mapping[str, Any],
    metric: str,
    validation: SweepValidation,
) -> dict[str, Any]:
    """Sweep each fold's train window, run the top k with enough trades on its test window, and return
    the validation document (the same shape as a batch's)."""
    symbol = str(bars.attrs.get("symbol") or "bars")
    folds = _folds(bars, strategy, grid, fixed, validation)
    blocks = fit_pbo_blocks(validation.pbo_blocks, validation.returns_period, folds)
    freq = to_offset(timeframe_delta(validation.returns_period)).freqstr
    sign = 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0
    names = get_strategy(strategy).param_names
    scans: dict[tuple[int, str, str], GroupScan] = {}
    oos: dict[tuple[int, str, str, int], OutOfSample] = {}
    for fold in folds:
        key = (fold.number, strategy, symbol)
        train = TradeWindow(fold.train_start, fold.train_stop)
        sweep = run_sweep(bars, strategy, grid, config, fixed=fixed, window=train, period_returns=freq)
        returns = sweep.attrs["period_returns"]
        params = {name: sweep[name].to_numpy() for name in names if name in sweep.columns}
        metrics = {m: sweep[m].to_numpy(dtype=np.float64) for m in sweep.columns if m in HIGHER_IS_BETTER}
        scan = scans[key] = GroupScan(key, blocks)
        k = min(validation.top_k, len(sweep)) if len(sweep) else 1
        fold_in(scan, params, metrics, returns.starts, returns.values, metric=metric, sign=sign,
                min_trades=validation.min_trades, k=k)  # fmt: skip
        test = TradeWindow(fold.test_start, fold.test_stop)
        for rank, candidate in enumerate(scan.winners(), start=1):
            result = run_backtest(bars, strategy, candidate.params, config, window=test)
            run = result.period_returns(freq)
            oos[(*key, rank)] = OutOfSample(
                dict(result.metrics), run.values[:, 0].astype(np.float64), run.starts
            )
    return compute_validation_document(
        validation.settings(metric), folds, scans, oos, train_batch="local", test_batch=None, blocks=blocks
    )


def _folds(
    bars: pd.DataFrame,
    strategy: str,
    grid: Mapping[str, Sequence[Any]],
    fixed: Mapping[str, Any],
    validation: SweepValidation,
) -> list[Fold]:
    index = pd.DatetimeIndex(bars.index)
    interval = pd.Timedelta(seconds=bar_seconds(index))
    try:
        return plan_folds(
            index,
            validation.scheme,
            min_train_bars=grid_warmup(strategy, grid, fixed) + 2,
            interval=interval,
        )
    except ValidationError as exc:
        raise BatchInputError(str(exc)) from exc
