"""Timezone analysis: which regions are trading at each bar, how busy the market is, and what style to use.

- `regions`: the configuration records and their defaults, `fit_activity_curve`;
- `analyzer`: `TimezoneMarketAnalyzer`, which annotates a UTC DatetimeIndex bar by bar;
- `trade_analysis`: performance of a trade list by entry hour, region, condition and weekday;
- `backtester`: `TimezoneBacktester`, the engine with session gating, condition sizing and style exits.
"""

from .analyzer import TimezoneMarketAnalyzer, classify_scores, local_hours, makenaide_run_mask
from .backtester import SessionGate, TimezoneBacktester, TimezoneBacktestResult
from .regions import (
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
from .trade_analysis import TradeSessionAnalysis, analyze_trades, compare_gated

__all__ = [
    "DEFAULT_ACTIVITY_CURVE",
    "DEFAULT_REGIONS",
    "DEFAULT_STYLES",
    "MAKENAIDE_RUN_HOURS_KST",
    "MarketCondition",
    "Region",
    "SessionGate",
    "TimezoneBacktestResult",
    "TimezoneBacktester",
    "TimezoneMarketAnalyzer",
    "TimezoneSettings",
    "TradeSessionAnalysis",
    "TradingStyle",
    "analyze_trades",
    "classify_scores",
    "compare_gated",
    "fit_activity_curve",
    "local_hours",
    "makenaide_run_mask",
    "require_intraday",
]
