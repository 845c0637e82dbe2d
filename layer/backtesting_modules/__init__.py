"""backtesting_modules: a vectorised crypto backtesting engine (the Lambda layer's package).

Public API:
- data: `load_bars`, `validate_bars`, `resample_bars`, `synthetic_bars`
- strategies: `register`, `get_strategy`, `list_strategies`, `Strategy`, `Param`, `Constraint`
- running: `run_backtest`, `run_sweep`, `rank_sweep`, `run_portfolio_backtest`, `BacktestResult`
- lists of parameter sets (an adaptive search's trials): `run_sets`, `valid_sets`
- windows and periods: `TradeWindow`, `PeriodReturns`, `compute_period_returns`
- configuration: `StrategyConfig`
- the original API: `create_integrated_backtester`, `run_single_strategy_backtest`, `KellyBacktester`,
  `TimezoneBacktester`
- timezone analysis: `TimezoneMarketAnalyzer`, `TimezoneSettings`, `SessionGate`
"""

from .backtest import ENGINE_VERSION, BacktestResult, RunInfo, rank_sweep, run_backtest, run_sweep
from .compat import (
    IntegratedBacktester,
    KellyBacktester,
    create_integrated_backtester,
    run_single_strategy_backtest,
)
from .config import StrategyConfig
from .data import load_bars, resample_bars, synthetic_bars, validate_bars
from .errors import BacktestError, ConfigError, DataError, StrategyError
from .metrics import METRIC_NAMES, compute_metrics, legacy_metrics
from .param_sets import run_sets, valid_sets
from .portfolio import run_portfolio_backtest
from .strategies import Constraint, Param, Strategy, get_strategy, list_strategies, register
from .timezone import SessionGate, TimezoneBacktester, TimezoneMarketAnalyzer, TimezoneSettings
from .windows import PeriodReturns, TradeWindow, compute_period_returns

__version__ = ENGINE_VERSION

__all__ = [
    "ENGINE_VERSION",
    "METRIC_NAMES",
    "BacktestError",
    "BacktestResult",
    "ConfigError",
    "Constraint",
    "DataError",
    "IntegratedBacktester",
    "KellyBacktester",
    "Param",
    "PeriodReturns",
    "RunInfo",
    "SessionGate",
    "Strategy",
    "StrategyConfig",
    "StrategyError",
    "TimezoneBacktester",
    "TimezoneMarketAnalyzer",
    "TimezoneSettings",
    "TradeWindow",
    "compute_metrics",
    "compute_period_returns",
    "create_integrated_backtester",
    "get_strategy",
    "legacy_metrics",
    "list_strategies",
    "load_bars",
    "rank_sweep",
    "register",
    "resample_bars",
    "run_backtest",
    "run_portfolio_backtest",
    "run_sets",
    "run_single_strategy_backtest",
    "run_sweep",
    "synthetic_bars",
    "valid_sets",
    "validate_bars",
]
