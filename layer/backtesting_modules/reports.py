"""Markdown reports (tabulate): every report opens with what was run, then the numbers.

`render_*` functions are pure: results in, markdown text out. A report meant for a PR comment is kept under
`PR_COMMENT_LIMIT` bytes by `fit_to_limit`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from .backtest import BacktestResult, RunInfo
from .config import StrategyConfig
from .errors import ConfigError
from .metrics import METRIC_NAMES

PR_COMMENT_LIMIT = 60_000
_PERCENT = {
    "total_return",
    "cagr",
    "volatility",
    "max_drawdown",
    "exposure",
    "win_rate",
    "avg_return",
    "avg_win",
    "avg_loss",
    "kelly_fraction",
    "kelly_half",
    "kelly_quarter",
    "var_95",
    "benchmark_return",
    "excess_return",
    "alpha",
}
_CURRENCY = {"total_pnl", "gross_profit", "gross_loss", "expectancy"}
_HEADLINE = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "trades",
    "win_rate",
    "profit_factor",
    "expectancy",
    "kelly_fraction",
    "exposure",
    "composite_score",
)
# The comparison with buy and hold of the same bars, shown beside the strategy's own return.
_BENCHMARK = ("benchmark_return", "excess_return", "alpha", "beta")
_BENCHMARK_HEADERS = {"benchmark_return": "buy and hold", "excess_return": "excess"}


def format_value(name: str, value: Any) -> str:
    """One metric as text: percentages for fractions, '–' for undefined values."""
    if value is None:
        return "–"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    number = float(value)
    if math.isnan(number):
        return "–"
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if name in _PERCENT:
        return f"{number:.2%}"
    if name in {"trades", "winning_trades", "losing_trades"} | _CURRENCY:
        return f"{number:,.0f}"
    if abs(number) >= 1e5:
        return f"{number:,.0f}"
    return f"{number:,.4g}" if abs(number) < 1 else f"{number:,.3f}"


def render_run_header(info: RunInfo, params: Mapping[str, Any] | None, config: StrategyConfig) -> str:
    """The conditions of a run: strategy, parameters, data (and whether synthetic), fills, costs, engine."""
    source = f"{info.data_source}" + (" — **synthetic data**" if info.synthetic else "")
    period = f"{info.start:%Y-%m-%d %H:%M} → {info.end:%Y-%m-%d %H:%M} UTC" if info.start is not None else "–"
    stop = "off" if config.stop_loss_pct is None else f"{config.stop_loss_pct:.1%}"
    target = "off" if config.take_profit_pct is None else f"{config.take_profit_pct:.1%}"
    rows = [
        ("strategy", info.strategy),
        ("parameters", ", ".join(f"{k}={_plain(v)}" for k, v in (params or {}).items()) or "(grid)"),
        ("symbol", info.symbol or "–"),
        ("data", source),
        ("period", f"{period} ({info.n_bars:,} bars of {_interval(info.bar_seconds)})"),
        (
            "fills",
            f"{info.fill}; commission {info.commission_rate:.3%} + slippage {info.slippage_rate:.3%} "
            "per side",
        ),
        ("risk", f"stop loss {stop}, take profit {target}, max hold {config.max_holding_bars or 'off'}"),
        (
            "sizing",
            f"{config.position_size_method} {config.position_size_value:g}, "
            f"initial cash {config.initial_cash:,.0f}",
        ),
        ("entry filters", _filters_text(config)),
        ("engine", f"backtesting_modules {info.engine_version}"),
    ]
    table = tabulate(rows, headers=["run", ""], tablefmt="github")
    notes = "\n".join(f"> {note}  " for note in info.notes)
    return f"{table}\n\n{notes}" if notes else table


def render_metrics_table(metrics: Mapping[str, float], names: Sequence[str] = METRIC_NAMES) -> str:
    rows = [(name, format_value(name, metrics.get(name))) for name in names if name in metrics]
    return tabulate(rows, headers=["metric", "value"], tablefmt="github", disable_numparse=True)


def render_trade_summary(trades: pd.DataFrame, limit: int = 10) -> str:
    """Exit reasons (count, win rate, average return, P&L) and the first and last trades."""
    if trades.empty:
        return "_No trades._"
    grouped = trades.groupby("exit_reason", sort=True)
    reasons = pd.DataFrame(
        {
            "trades": grouped.size(),
            "win rate": grouped["pnl"].apply(lambda p: f"{(p > 0).mean():.1%}"),
            "avg return": grouped["return_pct"].mean().map(lambda v: f"{v:.2%}"),
            "total P&L": grouped["pnl"].sum().map(lambda v: f"{v:,.0f}"),
        }
    )
    parts = [
        "**Exit reasons**",
        tabulate(
            reasons.rename_axis("exit reason").reset_index().to_dict("list"),
            headers="keys",
            tablefmt="github",
            disable_numparse=True,
        ),
    ]
    shown = trades if len(trades) <= limit else pd.concat([trades.head(limit // 2), trades.tail(limit // 2)])
    columns = [
        c
        for c in (
            "symbol",
            "entry_time",
            "exit_time",
            "entry_price",
            "exit_price",
            "return_pct",
            "pnl",
            "exit_reason",
        )
        if c in shown.columns
    ]
    table = shown[columns].copy()
    for col in ("entry_time", "exit_time"):
        table[col] = table[col].map(lambda t: f"{t:%Y-%m-%d %H:%M}")
    table["return_pct"] = table["return_pct"].map(lambda v: f"{v:.2%}")
    table["pnl"] = table["pnl"].map(lambda v: f"{v:,.0f}")
    title = (
        "**Trades**" if len(trades) <= limit else f"**Trades** (first and last {limit // 2} of {len(trades)})"
    )
    parts += [title, tabulate(table.to_dict("list"), headers="keys", tablefmt="github", floatfmt=",.6g")]
    return "\n\n".join(parts)


def render_equity_chart(equity: pd.Series, points: int = 60) -> str:
    """A mermaid xychart of the equity curve, down-sampled to about `points` points."""
    if equity.empty:
        return ""
    step = max(1, len(equity) // points)
    sampled = equity.iloc[::step]
    if sampled.index[-1] != equity.index[-1]:
        sampled = pd.concat([sampled, equity.iloc[-1:]])
    values = ", ".join(f"{v:.0f}" for v in sampled.to_numpy())
    low, high = float(sampled.min()), float(sampled.max())
    pad = (high - low) * 0.05 or abs(high) * 0.01 or 1.0
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            '    title "Equity at each close (down-sampled)"',
            f'    x-axis "{sampled.index[0]:%Y-%m-%d} → {sampled.index[-1]:%Y-%m-%d}" 1 --> {len(sampled)}',
            f'    y-axis "equity" {low - pad:.0f} --> {high + pad:.0f}',
            f"    line [{values}]",
            "```",
        ]
    )


def render_benchmark_line(metrics: Mapping[str, float], symbols: Sequence[str] = ()) -> str:
    """The strategy beside buy and hold of the same bars (equal-weight for several `symbols`); '' when the
    metrics have no benchmark."""
    if not _has_benchmark(metrics):
        return ""
    held = f"equal-weight buy and hold of {', '.join(symbols)}" if len(symbols) > 1 else "buy and hold"
    pct = {
        m: _signed_percent(metrics.get(m))
        for m in ("total_return", "benchmark_return", "excess_return", "alpha")
    }
    return (
        f"**Against {held}** (same bars and fees, first close to last close): "
        f"strategy {pct['total_return']}, buy and hold {pct['benchmark_return']}, "
        f"excess {pct['excess_return']}, alpha {pct['alpha']} a year, "
        f"beta {format_value('beta', metrics.get('beta'))}."
    )


def render_backtest(result: BacktestResult, *, title: str | None = None) -> str:
    """The single-backtest report: conditions, the strategy against buy and hold, metrics, equity chart,
    exit reasons, trades."""
    metrics = result.metrics
    shown = [m for m in METRIC_NAMES if _has_benchmark(metrics) or m not in _BENCHMARK]
    parts = [
        f"# {title or f'Backtest: {result.strategy}'}",
        render_run_header(result.info, result.params, result.config),
        "## Metrics",
        render_benchmark_line(metrics, result.extras.get("symbols", ())),
        render_metrics_table(metrics, shown),
        "## Equity",
        render_equity_chart(result.equity),
        "## Trades",
        render_trade_summary(result.trades),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def render_sweep(
    frame: pd.DataFrame,
    *,
    strategy: str,
    param_names: Sequence[str],
    rank: str,
    config: StrategyConfig,
    info: RunInfo,
    top: int = 20,
    higher_is_better: bool = True,
) -> str:
    """The sweep report: conditions, the top rows by `rank`, and a heatmap table for two parameters."""
    ranked = frame.sort_values(rank, ascending=not higher_is_better, na_position="last").head(top)
    shown = [*param_names, *[m for m in _HEADLINE if m in frame.columns and m not in param_names]]
    table = [
        [_plain(row[c]) if c in param_names else format_value(c, row[c]) for c in shown]
        for _, row in ranked.iterrows()
    ]
    parts = [
        f"# Parameter sweep: {strategy}",
        render_run_header(info, None, config),
        f"{frame.attrs.get('combinations', len(frame)):,} combinations run, "
        f"{frame.attrs.get('skipped', 0):,} skipped by constraints; ranked by **{rank}**."
        + _sweep_benchmark_text(frame),
        f"## Top {len(ranked)} by {rank}",
        tabulate(table, headers=shown, tablefmt="github", disable_numparse=True),
    ]
    varied = [p for p in param_names if frame[p].nunique() > 1]
    if len(varied) == 2:
        parts += [
            f"## {rank} by {varied[0]} × {varied[1]}",
            render_heatmap(frame, varied[0], varied[1], rank),
        ]
    return "\n\n".join(parts) + "\n"


def _sweep_benchmark_text(frame: pd.DataFrame) -> str:
    """Buy and hold of the sweep's bars (the same for every combination), or '' without it."""
    value = frame["benchmark_return"].iloc[0] if "benchmark_return" in frame and len(frame) else None
    return "" if value is None or pd.isna(value) else f" Buy and hold of the same bars: {value:+.2%}."


def render_heatmap(frame: pd.DataFrame, rows: str, cols: str, metric: str) -> str:
    """A two-parameter table of `metric` (rows × columns); empty cells are skipped combinations."""
    pivot = frame.pivot_table(index=rows, columns=cols, values=metric, aggfunc="first")
    body = [
        [_plain(idx), *[format_value(metric, v) for v in pivot.loc[idx].to_numpy()]] for idx in pivot.index
    ]
    headers = [f"{rows} \\ {cols}", *[_plain(c) for c in pivot.columns]]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def fit_to_limit(markdown: str, limit: int = PR_COMMENT_LIMIT) -> str:
    """Truncate a report to `limit` bytes at a line boundary, saying so, so it fits a PR comment."""
    encoded = markdown.encode()
    if len(encoded) <= limit:
        return markdown
    note = "\n\n> Report truncated to fit a PR comment; the full report is in the run's artifacts.\n"
    budget = limit - len(note.encode())
    cut = encoded[:budget].decode(errors="ignore")
    return cut[: cut.rfind("\n")] + note


def _has_benchmark(metrics: Mapping[str, Any]) -> bool:
    """Whether `metrics` compare with buy and hold (runs without prices, like the timezone backtester's,
    have NaN there)."""
    value = metrics.get("benchmark_return")
    return value is not None and not pd.isna(value)


def _signed_percent(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):+.2%}"


def _plain(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (np.integer, np.floating)):
        return str(value.item())
    return str(value)


def _interval(seconds: float) -> str:
    if seconds <= 0:
        return "–"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _filters_text(config: StrategyConfig) -> str:
    filters = config.entry_filters()
    parts = []
    if filters.min_price is not None or filters.max_price is not None:
        parts.append(f"price {filters.min_price or 0:,.0f}–{filters.max_price or math.inf:,.0f}")
    if filters.volume_ma_ratio is not None:
        parts.append(f"volume ≥ {filters.volume_ma_ratio:g}× its {filters.volume_ma_period}-bar mean")
    if filters.exclude_symbols:
        parts.append(f"excluding {', '.join(filters.exclude_symbols)}")
    if config.min_volume > 0:
        parts.append(f"turnover ≥ {config.min_volume:,.0f}")
    return "; ".join(parts) or "none"


def render_batch(
    results: pd.DataFrame,
    *,
    title: str,
    rank: str,
    top: int = 20,
    higher_is_better: bool = True,
    conditions: Sequence[tuple[str, str]] = (),
    failures: Sequence[Mapping[str, Any]] = (),
    backtests: int | None = None,
    aggregates: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ranking_label: str | None = None,
) -> str:
    """A batch report: what ran, the top `top` results by `rank` (`ranking_label` qualifies the heading)
    across strategies and symbols, aggregates per strategy and per symbol, every failed job with its error.

    `results` has one row per backtest: `strategy`, `symbol`, `params` (a dict), then metric columns. When
    `results` holds only the top rows of a larger batch, pass the batch's `backtests` count and its
    precomputed `aggregates` ({"strategy": [...], "symbol": [...]}) so totals are not taken from the top.
    """
    parts = [f"# {title}"]
    if conditions:
        parts.append(tabulate(list(conditions), headers=["batch", ""], tablefmt="github"))
    parts.append(
        f"{backtests if backtests is not None else len(results):,} backtests, {len(failures):,} failed jobs; "
        f"ranked by **{rank}** ({'higher' if higher_is_better else 'lower'} is better)."
    )
    if not results.empty:
        parts += _batch_top(results, rank, top, higher_is_better, ranking_label)
        parts += _batch_aggregates(results, rank, higher_is_better, aggregates)
    if failures:
        parts += ["## Failed jobs", _failures_table(failures)]
    return "\n\n".join(parts) + "\n"


def _batch_top(
    results: pd.DataFrame, rank: str, top: int, higher_is_better: bool, label: str | None = None
) -> list[str]:
    """The top `top` backtests by `rank` with six headline metrics and buy and hold: heading and table."""
    ranked = results.sort_values(rank, ascending=not higher_is_better, na_position="last").head(top)
    metrics = [m for m in _HEADLINE if m in results.columns and m != rank][:6]
    # Beside them, buy and hold of the same bars (results stored before it existed have no such column).
    if "benchmark_return" in results and results["benchmark_return"].notna().any():
        metrics += [m for m in _BENCHMARK if m in results.columns and m != rank]
    table = [
        [
            row["strategy"],
            row["symbol"],
            _params_text(row["params"]),
            format_value(rank, row[rank]),
            *[format_value(m, row[m]) for m in metrics],
        ]
        for _, row in ranked.iterrows()
    ]
    headers = ["strategy", "symbol", "parameters", rank, *[_BENCHMARK_HEADERS.get(m, m) for m in metrics]]
    return [
        f"## Top {len(ranked)} by {rank}" + (f" ({label})" if label else ""),
        tabulate(
            table,
            headers=headers,
            tablefmt="github",
            disable_numparse=True,
        ),
    ]


def _batch_aggregates(
    results: pd.DataFrame,
    rank: str,
    higher_is_better: bool,
    aggregates: Mapping[str, Sequence[Mapping[str, Any]]] | None,
) -> list[str]:
    """A heading and table per strategy and per symbol: the precomputed `aggregates` if given, else from
    `results`."""
    parts = []
    for key in ("strategy", "symbol"):
        table_text = (
            _aggregate_table(aggregates[key], key, rank)
            if aggregates and key in aggregates
            else _aggregate(results, key, rank, higher_is_better)
        )
        parts += [f"## By {key}", table_text]
    return parts


def _failures_table(failures: Sequence[Mapping[str, Any]]) -> str:
    """Every failed job with its attempts and the first 300 characters of its error, on one line."""
    rows = [
        [
            f.get("job_id", "–"),
            f.get("strategy", "–"),
            f.get("symbol", "–"),
            f.get("attempts", "–"),
            str(f.get("error", "")).replace("\n", " ")[:300],
        ]
        for f in failures
    ]
    return tabulate(
        rows,
        headers=["job", "strategy", "symbol", "attempts", "error"],
        tablefmt="github",
        disable_numparse=True,
    )


def _aggregate(results: pd.DataFrame, key: str, rank: str, higher_is_better: bool) -> str:
    grouped = results.groupby(key, sort=True)[rank]
    best = grouped.max() if higher_is_better else grouped.min()
    rows = [
        [
            name,
            f"{int(grouped.size()[name]):,}",
            format_value(rank, best[name]),
            format_value(rank, grouped.median()[name]),
            format_value("total_return", results.loc[results[key] == name, "total_return"].mean())
            if "total_return" in results
            else "–",
        ]
        for name in best.index
    ]
    headers = [key, "backtests", f"best {rank}", f"median {rank}", "mean total_return"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _aggregate_table(rows: Sequence[Mapping[str, Any]], key: str, rank: str) -> str:
    """Best, median and mean of the metric and the mean total return: a column only where a row has it."""
    fields = [(f"{w}_{rank}", f"{w} {rank}", rank) for w in ("best", "median", "mean")]
    fields = [f for f in [*fields, ("mean_total_return", "mean total_return", "total_return")]
              if any(r.get(f[0]) is not None for r in rows)]  # fmt: skip
    body = [[r[key], f"{int(r['backtests']):,}", *(format_value(m, r.get(n)) for n, _, m in fields)]
            for r in rows]  # fmt: skip
    headers = [key, "backtests", *(h for _, h, _ in fields)]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def _params_text(params: Any) -> str:
    if isinstance(params, Mapping):
        return ", ".join(f"{k}={_plain(v)}" for k, v in params.items())
    return str(params)


def save_equity_png(equity: pd.Series, path: str, *, title: str = "Equity") -> str:
    """Write the equity curve as a PNG (optional: needs matplotlib, which the layer does not ship)."""
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency, imported only when a PNG is asked for

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            "PNG charts need matplotlib: `pip install matplotlib`. The markdown report already has mermaid "
            "charts, which GitHub renders."
        ) from exc
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(equity.index, equity.to_numpy(), linewidth=1.0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
