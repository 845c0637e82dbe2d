"""Run one backtest or a parameter sweep from the command line.

    python scripts/backtest.py --synthetic 42 --strategy SMA_Crossover --param fast=10 --param slow=30
    python scripts/backtest.py --data data/upbit/KRW-BTC_1h.csv --strategy SMA_Crossover \\
        --grid fast=5:50:5 --grid slow=10:200:5 --rank sharpe --report reports/sweep.md

Exit status: 0 on success, 2 for bad arguments or unusable input (the message names the argument).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tabulate import tabulate

from backtesting_modules import (
    BacktestError,
    StrategyConfig,
    get_strategy,
    list_strategies,
    load_bars,
    rank_sweep,
    run_backtest,
    run_sweep,
    synthetic_bars,
)
from backtesting_modules.backtest import RunInfo
from backtesting_modules.data import bar_seconds, prepare_bars
from backtesting_modules.errors import did_you_mean
from backtesting_modules.jobs.spec import timeframe_delta
from backtesting_modules.metrics import HIGHER_IS_BETTER
from backtesting_modules.reports import (
    render_backtest,
    render_metrics_table,
    render_sweep,
    render_trade_summary,
    save_equity_png,
)
from backtesting_modules.timezone import SessionGate, TimezoneBacktester
from backtesting_modules.timezone.report import render_comparison, render_group_table, render_timezone
from backtesting_modules.validation import Holdout, ValidationError, WalkForward
from opslib.batch.sweep_validation import SweepValidation, run_validated_sweep
from opslib.batch.validation_report import render_validation
from opslib.cli import EXIT_OK, EXIT_USAGE, UsageError
from opslib.errors import BatchInputError

MAX_GRID_VALUES = 100_000  # per --grid axis: a typo like 1:1e9:1 must not allocate a billion values


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{option} {text!r}: expected NAME=VALUE.")
    return key.strip(), value.strip()


def parse_grid_values(text: str, option: str) -> list[float]:
    """`start:stop:step` (stop included) or `v1,v2,...`."""
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise UsageError(f"{option} {text!r}: expected start:stop:step (stop included), e.g. 5:50:5.")
            start, stop, step = (float(v) for v in parts)
            if not all(math.isfinite(v) for v in (start, stop, step)):
                raise UsageError(f"{option} {text!r}: start, stop and step must be finite, e.g. 5:50:5.")
            if step <= 0 or stop < start:
                raise UsageError(f"{option} {text!r}: need start <= stop and step > 0.")
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count > MAX_GRID_VALUES:
                raise UsageError(
                    f"{option} {text!r}: {count:,} values, more than {MAX_GRID_VALUES:,}; use a larger step."
                )
            values = [start + i * step for i in range(count)]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise UsageError(
            f"{option} {text!r}: values must be numbers (start:stop:step or v1,v2,...)."
        ) from exc
    if not values:
        raise UsageError(f"{option} {text!r}: no values.")
    return [int(v) if float(v).is_integer() else v for v in values]


def parse_config(assignments: Sequence[str], fill: str | None) -> StrategyConfig:
    """StrategyConfig from FIELD=VALUE pairs (YAML values; `none` means None)."""
    names = [f.name for f in fields(StrategyConfig)]
    values: dict[str, Any] = {}
    for text in assignments:
        key, raw = parse_assignment(text, "--config")
        if key not in names:
            raise UsageError(f"--config {key}: unknown StrategyConfig field.{did_you_mean(key, names)}")
        try:
            values[key] = None if raw.lower() in {"none", "null"} else yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise UsageError(
                f"--config {key}={raw!r}: not a valid YAML value; quote it or fix the syntax "
                "(e.g. --config 'filters={min_price: 1000}' or --config filters=none)."
            ) from exc
    if fill:
        values["fill"] = fill
    return StrategyConfig(**values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Backtest a registered strategy on bars from a file or a seeded synthetic series.",
        epilog=f"Strategies: {', '.join(list_strategies())}",
    )
    _add_data_arguments(parser)
    parser.add_argument("--strategy", required=True, help="registered strategy name")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="a strategy parameter")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="K=SPEC",
        help="sweep a parameter: K=start:stop:step or K=v1,v2,...",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="set a StrategyConfig field (YAML value; none for None)",
    )
    parser.add_argument("--fill", choices=["next_open", "close"], help="fill convention (default next_open)")
    parser.add_argument("--rank", default="sharpe", help="sweep ranking metric (default sharpe)")
    parser.add_argument("--top", type=int, default=10, help="sweep rows to print (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--report", metavar="FILE", help="write a markdown report to FILE")
    parser.add_argument("--png", metavar="FILE", help="also write the equity curve as PNG (needs matplotlib)")
    _add_validation_arguments(parser.add_argument_group("validation of a --grid sweep (docs/validation.md)"))
    _add_timezone_arguments(parser.add_argument_group("timezone backtester (--timezone; intraday bars)"))
    return parser


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the bars come from, and the window and gap policy they are prepared with."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", metavar="FILE", help="CSV or Parquet bars (timestamp, open, high, low, close, volume)"
    )
    source.add_argument(
        "--synthetic", metavar="SEED", type=int, help="seeded synthetic bars (labelled synthetic)"
    )
    parser.add_argument("--periods", type=int, default=8760, help="synthetic bars to generate (default 8760)")
    parser.add_argument("--freq", default="1h", help="synthetic bar interval (default 1h)")
    parser.add_argument(
        "--symbol", help="symbol name (synthetic default SYNTH-KRW; files: from the file name)"
    )
    parser.add_argument("--since", metavar="DATE", help="first bar to use, UTC, inclusive (e.g. 2024-01-01)")
    parser.add_argument("--until", metavar="DATE", help="end of the bars to use, UTC, exclusive")
    parser.add_argument(
        "--gaps",
        choices=["keep", "fill"],
        default="keep",
        help="missing bars: keep them out (indicators count bars) or fill them at the previous close with "
        "zero volume (default keep); the report says which, with the count",
    )
    parser.add_argument(
        "--timeframe",
        metavar="TF",
        help="bar interval gaps are measured by, e.g. 1h (default: the bars' median spacing)",
    )


def _add_validation_arguments(group: argparse._ArgumentGroup) -> None:
    split = group.add_mutually_exclusive_group()
    split.add_argument(
        "--holdout",
        default="0.25",
        metavar="FRACTION|PERIOD",
        help="sweep all but the last FRACTION (or PERIOD, e.g. 90d) of the bars, then run the winners on it "
        "(the default: 0.25)",
    )
    split.add_argument(
        "--walk-forward",
        metavar="SPEC",
        help="folds=N,train=LEN,test=LEN[,gap=LEN][,anchored], e.g. folds=4,train=180d,test=30d",
    )
    split.add_argument("--no-validation", action="store_true", help="rank in sample only (not validated)")
    group.add_argument("--top-k", type=int, default=5, help="winners per fold run out of sample (default 5)")
    group.add_argument(
        "--min-trades", type=int, default=30, help="winners need at least this many trades (default 30)"
    )


def _add_timezone_arguments(tz: argparse._ArgumentGroup) -> None:
    tz.add_argument(
        "--timezone", action="store_true", help="run the timezone backtester and session analysis"
    )
    tz.add_argument(
        "--gate",
        choices=["none", "makenaide"],
        default="none",
        help="entry gate: makenaide = only at 02, 09, 15, 18, 21, 23 h Asia/Seoul",
    )
    tz.add_argument("--min-activity", type=float, help="block entries below this activity score (0-100)")
    tz.add_argument("--zone", default="Asia/Seoul", help="zone of the per-hour tables (default Asia/Seoul)")
    tz.add_argument(
        "--no-style-exits",
        action="store_true",
        help="keep the config's stop/take-profit instead of the dominant style's",
    )
    tz.add_argument("--no-scaling", action="store_true", help="do not scale size by market condition")


def load_input(args: argparse.Namespace) -> pd.DataFrame:
    """The bars the arguments name, cut to --since/--until with the --gaps policy applied."""
    if args.data:
        bars = load_bars(args.data, symbol=args.symbol)
    else:
        if args.periods < 2:
            raise UsageError(f"--periods {args.periods}: need at least 2 bars.")
        try:
            bars = synthetic_bars(
                args.symbol or "SYNTH-KRW", periods=args.periods, freq=args.freq, seed=args.synthetic
            )
        except BacktestError as exc:  # periods and seed are checked above: the bar interval is what failed
            raise UsageError(f"--freq {args.freq!r}: {exc}") from exc
    if args.timeframe:
        try:
            interval = timeframe_delta(args.timeframe)
        except ValueError as exc:
            raise UsageError(
                f"--timeframe {args.timeframe!r}: not a bar interval ({exc}); e.g. 1m, 1h, 1d."
            ) from exc
        if interval <= pd.Timedelta(0):
            raise UsageError(f"--timeframe {args.timeframe!r}: must be a positive interval, e.g. 1h.")
    else:
        interval = pd.Timedelta(seconds=bar_seconds(pd.DatetimeIndex(bars.index)))
    name = str(bars.attrs.get("source", "bars"))
    return prepare_bars(
        bars, since=args.since, until=args.until, gaps=args.gaps, interval=interval, name=name
    )


def to_jsonable(value: Any) -> Any:
    """NaN and infinities become null (JSON has neither); numpy and pandas scalars become plain values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(result: Any, **extra: Any) -> None:
    """One JSON object: strategy, params, metrics and run conditions, plus `extra` fields."""
    doc = {
        "strategy": result.strategy,
        "params": result.params,
        "metrics": result.metrics,
        **extra,
        "run": result.info.to_dict(),
    }
    print(json.dumps(to_jsonable(doc)))


def run_single(args: argparse.Namespace, bars: pd.DataFrame, config: StrategyConfig) -> str:
    params = dict(parse_assignment(p, "--param") for p in args.param)
    result = run_backtest(bars, args.strategy, params, config)
    if args.png:
        save_equity_png(result.equity, args.png, title=f"{result.strategy} {result.params}")
    if args.json:
        trades = result.trades.drop(columns=["entry_bar", "exit_bar"]).to_dict("records")
        print_json(result, trades=trades)
    else:
        print(render_metrics_table(result.metrics))
        print()
        print(render_trade_summary(result.trades))
    return render_backtest(result)


def run_timezone(args: argparse.Namespace, bars: pd.DataFrame, config: StrategyConfig) -> str:
    if args.grid:
        raise UsageError("--timezone runs one parameter set: use --param, not --grid.")
    params = dict(parse_assignment(p, "--param") for p in args.param)
    base = SessionGate.makenaide() if args.gate == "makenaide" else SessionGate()
    gate = SessionGate(min_activity=args.min_activity, allowed_hours=base.allowed_hours, zone=base.zone)
    backtester = TimezoneBacktester(
        config,
        gate=gate,
        scale_by_condition=not args.no_scaling,
        style_exits=not args.no_style_exits,
        zone=args.zone,
    )
    plain, gated, comparison = backtester.compare(bars, args.strategy, params)
    result = gated.result
    if args.json:
        analysis = gated.trade_analysis
        print_json(
            result,
            ungated_metrics=plain.metrics,
            gate=gate.describe(),
            by_hour_local=analysis.by_hour_local.reset_index().to_dict("records"),
            activity_correlation=analysis.activity_correlation,
        )
    else:
        print(render_comparison(comparison))
        print()
        print(render_group_table(gated.trade_analysis.by_hour_local, f"hour ({args.zone})"))
    return render_timezone(gated, comparison)


def parse_validation(args: argparse.Namespace) -> SweepValidation | None:
    """The --holdout / --walk-forward / --no-validation of a sweep (None: not validated)."""
    if args.no_validation:
        return None
    if args.top_k < 1 or args.min_trades < 0:
        raise UsageError(
            f"--top-k {args.top_k} / --min-trades {args.min_trades}: need top-k >= 1, min-trades >= 0."
        )
    try:
        scheme: WalkForward | Holdout = (
            _walk_forward(args.walk_forward) if args.walk_forward else _holdout(args.holdout)
        )
    except ValidationError as exc:
        option = "--walk-forward" if args.walk_forward else "--holdout"
        raise UsageError(f"{option}: {exc}") from exc
    return SweepValidation(scheme, top_k=args.top_k, min_trades=args.min_trades)


def _holdout(text: str) -> Holdout:
    try:
        fraction = float(text)
    except ValueError:
        return Holdout(period=text.strip())
    return Holdout(fraction=fraction)


def _walk_forward(text: str) -> WalkForward:
    fields: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if key == "anchored" and not sep:
            fields["anchored"] = True
        elif key in ("folds", "train", "test", "gap") and sep:
            fields[key] = int(value) if value.strip().isdigit() else value.strip()
        else:
            raise UsageError(
                f"--walk-forward {text!r}: {part!r} is not folds=N, train=LEN, test=LEN, gap=LEN or "
                "anchored; e.g. folds=4,train=180d,test=30d."
            )
    missing = [k for k in ("folds", "test") if k not in fields]
    if missing:
        raise UsageError(
            f"--walk-forward {text!r}: {', '.join(missing)} missing; e.g. folds=4,train=180d,test=30d."
        )
    return WalkForward(fields["folds"], fields.get("train"), fields["test"],
                       anchored=fields.get("anchored", False), gap=fields.get("gap", 0))  # fmt: skip


def parse_sweep(args: argparse.Namespace) -> tuple[Any, dict[str, list[float]], dict[str, str]]:
    """The strategy, the --grid axes and the fixed --param values of a sweep (and a known --rank)."""
    spec = get_strategy(args.strategy)
    grid = {}
    for text in args.grid:
        key, raw = parse_assignment(text, "--grid")
        spec.param(key)
        grid[key] = parse_grid_values(raw, f"--grid {key}")
    fixed = dict(parse_assignment(p, "--param") for p in args.param)
    both = sorted(set(grid) & set(fixed))
    if both:
        raise UsageError(f"--param {both[0]} and --grid {both[0]}: give each parameter in one of them.")
    if args.rank not in HIGHER_IS_BETTER:
        raise UsageError(
            f"--rank: unknown metric {args.rank!r}.{did_you_mean(args.rank, HIGHER_IS_BETTER)} "
            f"Metrics: {', '.join(HIGHER_IS_BETTER)}."
        )
    return spec, grid, fixed


def run_grid(args: argparse.Namespace, bars: pd.DataFrame, config: StrategyConfig) -> str:
    spec, grid, fixed = parse_sweep(args)
    validation = parse_validation(args)
    document = None
    if validation is not None:
        document = run_validated_sweep(
            bars, spec.name, grid, config, fixed=fixed, metric=args.rank, validation=validation
        )
    frame = run_sweep(bars, spec, grid, config, fixed=fixed)
    ranked = rank_sweep(frame, args.rank)
    if args.json:
        doc = {
            "strategy": spec.name,
            "combinations": frame.attrs["combinations"],
            "skipped": frame.attrs["skipped"],
            "rank": args.rank,
            "rows": ranked.to_dict("records"),
            "validation": document,
        }
        print(json.dumps(to_jsonable(doc)))
    else:
        if document is not None:
            print(render_validation(document))
        print(
            f"{frame.attrs['combinations']:,} combinations "
            f"({frame.attrs['skipped']:,} skipped by constraints)"
        )
        print(render_metrics_table_rows(ranked.head(args.top), spec.param_names, args.rank))
    text = render_sweep(
        frame,
        strategy=spec.name,
        param_names=spec.param_names,
        rank=args.rank,
        config=config,
        info=RunInfo.from_dict(frame.attrs["info"]),
        top=max(args.top, 20),
        higher_is_better=HIGHER_IS_BETTER.get(args.rank, True),
    )
    if document is None:
        return text
    title, _, rest = text.partition("\n")
    note = "The sweep below ranks every variant on all the bars: in sample, not validated; the view above is."
    return f"{title}\n\n{render_validation(document)}\n{note}\n{rest}"


def render_metrics_table_rows(frame: pd.DataFrame, params: list[str], rank: str) -> str:
    columns = [
        *params,
        rank,
        *[c for c in ("total_return", "max_drawdown", "trades", "win_rate") if c != rank],
    ]
    return tabulate(frame[columns].to_dict("list"), headers="keys", tablefmt="github", floatfmt=".4g")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.top < 1:
            raise UsageError(f"--top {args.top}: must be at least 1.")
        config = parse_config(args.config, args.fill)
        get_strategy(args.strategy)
        bars = load_input(args)
        if args.timezone:
            report = run_timezone(args, bars, config)
        elif args.grid:
            report = run_grid(args, bars, config)
        else:
            report = run_single(args, bars, config)
    except (UsageError, BacktestError, BatchInputError) as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {exc}\n")
    if args.report:
        path = Path(args.report)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(report, encoding="utf-8")
        except OSError as exc:
            parser.exit(
                EXIT_USAGE,
                f"{parser.prog}: error: --report {path}: cannot write it ({exc}); choose a writable path.\n",
            )
        print(f"report: {path}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
