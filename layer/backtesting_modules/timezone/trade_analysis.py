"""Trade performance by session: entry hour (UTC and local), dominant region, market condition, weekday.

Owns `analyze_trades`, which annotates each trade's entry with the timezone analyzer and tabulates count,
win rate, average return, P&L, profit factor and Kelly per group, and `compare_gated`, a side-by-side of
a backtest's metrics with and without timezone gating. Conventions follow docs/metrics.md: a trade wins
when pnl > 0, profit factor is on P&L, Kelly is on per-trade returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, did_you_mean
from .analyzer import TimezoneMarketAnalyzer
from .regions import CONDITIONS, HOURS_PER_DAY, utc_index

REQUIRED_COLUMNS: tuple[str, ...] = ("entry_time", "exit_time", "return_pct", "pnl")
STAT_COLUMNS: tuple[str, ...] = (
    "trades",
    "win_rate",
    "avg_return",
    "total_pnl",
    "profit_factor",
    "kelly_fraction",
    "sufficient",
)
DEFAULT_COMPARE_NAMES: tuple[str, ...] = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "trades",
    "win_rate",
    "avg_return",
    "profit_factor",
    "total_pnl",
    "kelly_fraction",
)
RANKED_HOURS = 3  # best_hours / worst_hours length
MIN_CORRELATION_TRADES = 3
DAYS_PER_WEEK = 7

# compute_metrics gives 1-element arrays per metric; plain floats are accepted too.
MetricValue = float | np.ndarray


@dataclass(frozen=True)
class TradeSessionAnalysis:
    """The tables of `analyze_trades`. Every `by_*` table has one row per possible key, traded or not.

    `entries` has one row per trade (same index as the input) with its entry annotations.
    """

    entries: pd.DataFrame
    by_hour_utc: pd.DataFrame
    by_hour_local: pd.DataFrame
    by_region: pd.DataFrame
    by_condition: pd.DataFrame
    by_weekday: pd.DataFrame
    best_hours: pd.DataFrame
    worst_hours: pd.DataFrame
    activity_correlation: float
    zone: str
    min_trades: int


def analyze_trades(
    trades: pd.DataFrame,
    analyzer: TimezoneMarketAnalyzer,
    *,
    zone: str = "Asia/Seoul",
    min_trades: int = 5,
) -> TradeSessionAnalysis:
    """Tabulate `trades` (entry_time tz-aware, exit_time, return_pct, pnl) by their entry's session.

    Groups with fewer than `min_trades` trades are marked sufficient=False and get no Kelly fraction;
    best_hours / worst_hours rank only sufficient local hours.
    """
    _check_options(zone, min_trades)
    entry, ret, pnl = _trade_columns(trades)
    session = analyzer.analyze(entry, check_intraday=False)  # entries are irregular, not bars
    local = entry.tz_convert(zone)
    entries = pd.DataFrame(
        {
            "entry_time": entry,
            "return_pct": ret,
            "pnl": pnl,
            "hour_utc": np.asarray(entry.hour, dtype=np.intp),
            "hour_local": np.asarray(local.hour, dtype=np.intp),
            "weekday": np.asarray(local.day_of_week, dtype=np.intp),
            "activity_score": session["activity_score"].to_numpy(),
            "condition": session["condition"].to_numpy(),
            "dominant_region": session["dominant_region"].to_numpy(),
        },
        index=trades.index,
    )
    if "symbol" in trades.columns:
        entries.insert(0, "symbol", trades["symbol"].to_numpy())

    def table(column: str, keys: Sequence[object], name: str) -> pd.DataFrame:
        return group_table(entries[column].to_numpy(), keys, name, ret, pnl, min_trades)

    hours = list(range(HOURS_PER_DAY))
    by_hour_local = table("hour_local", hours, "hour")
    return TradeSessionAnalysis(
        entries=entries,
        by_hour_utc=table("hour_utc", hours, "hour"),
        by_hour_local=by_hour_local,
        by_region=table("dominant_region", [r.key for r in analyzer.settings.regions], "region"),
        by_condition=table("condition", [c.name for c in CONDITIONS], "condition"),
        by_weekday=table("weekday", list(range(DAYS_PER_WEEK)), "weekday"),
        best_hours=ranked_hours(by_hour_local, best=True),
        worst_hours=ranked_hours(by_hour_local, best=False),
        activity_correlation=pearson(entries["activity_score"].to_numpy(), ret),
        zone=zone,
        min_trades=min_trades,
    )


def _check_options(zone: str, min_trades: int) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"zone {zone!r} is not an IANA time zone: use e.g. 'Asia/Seoul'.") from exc
    if isinstance(min_trades, bool) or not isinstance(min_trades, int) or min_trades < 1:
        raise ConfigError(f"min_trades must be a whole number >= 1, got {min_trades!r}.")


def _trade_columns(trades: pd.DataFrame) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Entry times (UTC), return_pct and pnl as arrays, after checking the trade list."""
    missing = [c for c in REQUIRED_COLUMNS if c not in trades.columns]
    if missing:
        raise DataError(f"trades is missing columns {missing}: it needs {list(REQUIRED_COLUMNS)}.")
    entry = _times(trades["entry_time"], "entry_time")
    exit_ = _times(trades["exit_time"], "exit_time")
    if (exit_ < entry).any():
        row = trades.index[int(np.argmax(np.asarray(exit_ < entry)))]
        raise DataError(f"trades row {row!r}: exit_time is before entry_time: fix or drop the trade.")
    ret = trades["return_pct"].to_numpy(dtype=np.float64)
    pnl = trades["pnl"].to_numpy(dtype=np.float64)
    for name, values in (("return_pct", ret), ("pnl", pnl)):
        if not np.isfinite(values).all():
            row = trades.index[int(np.argmin(np.isfinite(values)))]
            raise DataError(f"trades row {row!r}: {name} is not a finite number: fix or drop the trade.")
    return entry, ret, pnl


def _times(column: pd.Series, name: str) -> pd.DatetimeIndex:
    if len(column) == 0:
        return pd.DatetimeIndex([], tz="UTC")
    try:
        times = pd.DatetimeIndex(column)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"trades.{name} must be tz-aware timestamps (one zone), got {column.dtype}: "
            f"convert with pd.to_datetime(trades[{name!r}], utc=True)."
        ) from exc
    return utc_index(times, f"trades.{name}")


# --- statistics ---------------------------------------------------------------------------------------


def group_table(
    labels: np.ndarray,
    keys: Sequence[object],
    name: str,
    return_pct: np.ndarray,
    pnl: np.ndarray,
    min_trades: int,
) -> pd.DataFrame:
    """Per-group statistics (STAT_COLUMNS), one row per key in `keys` order; labels outside `keys` drop."""
    lookup = {key: position for position, key in enumerate(keys)}
    codes = np.asarray([lookup.get(label, -1) for label in labels.tolist()], dtype=np.intp)
    kept = codes >= 0
    stats = group_stats(codes[kept], len(keys), return_pct[kept], pnl[kept], min_trades)
    frame = pd.DataFrame(stats, index=pd.Index(list(keys), name=name))
    return frame.loc[:, list(STAT_COLUMNS)]


def group_stats(
    codes: np.ndarray, n_groups: int, return_pct: np.ndarray, pnl: np.ndarray, min_trades: int
) -> dict[str, np.ndarray]:
    """Statistics of trades grouped by integer `codes` in [0, n_groups), as arrays of length n_groups."""

    def total(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(codes, weights=weights, minlength=n_groups).astype(np.float64)

    win = pnl > 0  # break-even trades lose, as in metrics.py
    count, winners = total(), total(win.astype(np.float64))
    losers = count - winners
    gross_profit = total(np.where(win, pnl, 0.0))
    gross_loss = total(np.where(pnl < 0, -pnl, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        win_rate = winners / count
        avg_return = total(return_pct) / count
        avg_win = total(np.where(win, return_pct, 0.0)) / winners
        avg_loss = total(np.where(win, 0.0, return_pct)) / losers
        profit_factor = gross_profit / gross_loss
    profit_factor[(gross_loss == 0) & (gross_profit > 0)] = np.inf
    sufficient = count >= min_trades
    kelly = np.where(sufficient, kelly_fraction(win_rate, avg_win, avg_loss, winners, losers), np.nan)
    return {
        "trades": count.astype(np.int64),
        "win_rate": win_rate,
        "avg_return": avg_return,
        "total_pnl": total(pnl),
        "profit_factor": profit_factor,
        "kelly_fraction": kelly,
        "sufficient": sufficient,
    }


def kelly_fraction(
    win_rate: np.ndarray, avg_win: np.ndarray, avg_loss: np.ndarray, winners: np.ndarray, losers: np.ndarray
) -> np.ndarray:
    """Kelly f* = p - q / b with b = avg_win / |avg_loss|, clamped to [-1, 1].

    No losers: p (nothing argues against the win rate); no winners: -1; no trades: NaN.
    """
    p, q = win_rate, 1.0 - win_rate
    with np.errstate(divide="ignore", invalid="ignore"):
        b = avg_win / np.abs(avg_loss)  # inf when the losers average exactly 0, so q / b = 0
        kelly = p - q / b
    kelly = np.where((losers == 0) & (winners > 0), p, kelly)
    kelly = np.where((winners == 0) & (losers > 0), -1.0, kelly)
    return np.clip(kelly, -1.0, 1.0)


def ranked_hours(by_hour: pd.DataFrame, *, best: bool, count: int = RANKED_HOURS) -> pd.DataFrame:
    """The `count` sufficient hours with the highest (or lowest) avg_return; ties go to the earlier hour."""
    eligible = by_hour[by_hour["sufficient"]]
    ordered = eligible.sort_values("avg_return", ascending=not best, kind="stable")
    return ordered.head(count)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of x and y; NaN with fewer than 3 pairs or when either is constant."""
    if len(x) < MIN_CORRELATION_TRADES:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denominator if denominator > 0 else math.nan


# --- gated vs ungated ----------------------------------------------------------------------------------


def compare_gated(
    ungated: Mapping[str, MetricValue],
    gated: Mapping[str, MetricValue],
    names: Sequence[str] = DEFAULT_COMPARE_NAMES,
) -> pd.DataFrame:
    """Metrics side by side: metric, ungated, gated, difference (gated - ungated).

    A metric missing from one side is NaN there; a name missing from both is a ConfigError (a typo).
    """
    rows = []
    for name in names:
        if name not in ungated and name not in gated:
            known = sorted(set(ungated) | set(gated))
            raise ConfigError(
                f"metric {name!r} is in neither result: pass names from {known}.{did_you_mean(name, known)}"
            )
        before, after = _scalar(ungated, name), _scalar(gated, name)
        rows.append((name, before, after, after - before))
    return pd.DataFrame(rows, columns=["metric", "ungated", "gated", "difference"])


def _scalar(metrics: Mapping[str, MetricValue], name: str) -> float:
    """A metric as a float; compute_metrics returns 1-element arrays, which are unwrapped."""
    if name not in metrics:
        return math.nan
    values = np.asarray(metrics[name], dtype=np.float64).ravel()
    if values.size != 1:
        raise DataError(f"metric {name!r} has {values.size} values: compare one parameter combination.")
    return float(values[0])
