"""Write the batch spec of backtest.yml's form: a spec from batches/, or one built from the form's strings
(spec = custom), with the form's priority applied; then validate it as run_batch.py will.

    python scripts/workflow_spec.py --spec batches/demo.yaml --priority high --out /tmp/spec.yaml
    python scripts/workflow_spec.py --spec custom --strategies SMA_Crossover,RSI_MeanReversion \\
        --symbols KRW-BTC,KRW-ETH --timeframe 1h --period 8760 \\
        --grid "SMA_Crossover.fast=5:50:5; SMA_Crossover.slow=20:200:10; RSI_MeanReversion.period=7,14"
    python scripts/workflow_spec.py --spec custom --strategies SMA_Crossover --symbols KRW-BTC,KRW-ETH \\
        --data "s3://my-market-data/upbit/{symbol}_1h.csv gaps=fill" --period 2024-01-01..2025-01-01 \\
        --timeframe 1h --grid "fast=5:50:5; slow=20:200:10" --target aws

`--data` is `synthetic` (seeded bars; `--period` is their count) or an S3 URI with `{symbol}` whose objects
the workers read in place (`--period` is the window `since..until`, UTC, either side may be empty; an
optional `gaps=keep|fill` follows the URI). S3 bars run on the deployed stack only (`--target aws`).

The form's strings are data: the workflow passes them as quoted arguments, and they are only split and
parsed here (list values with `yaml.safe_load`), never evaluated. The spec is written with
`yaml.safe_dump` to --out (if given) and printed.

Exit status: 0 when the spec is valid, 2 for bad form input or a spec that `load_spec` rejects (the message
names the input or the spec field, and the fix).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from backtesting_modules.jobs.spec import SpecError, parse_spec
from opslib.cli import EXIT_USAGE

CUSTOM = "custom"


class FormError(ValueError):
    """A form value that cannot become a spec; the message names the input and the fix."""


def split(text: str) -> list[str]:
    """The non-empty items of a comma- (or ';'-) separated string, stripped."""
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def parse_grid(text: str, strategies: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Grid of each strategy from `param=values` axes separated by ';'.

    An axis applies to every strategy unless its key is `Strategy.param`. Values with a comma become a list
    of YAML scalars (`7,14` -> [7, 14]); other values stay strings (`5:50:5`, a range the spec parses)."""
    grids: dict[str, dict[str, Any]] = {name: {} for name in strategies}
    for axis in (a.strip() for a in text.split(";") if a.strip()):
        key, sep, values = axis.partition("=")
        if not sep:
            raise FormError(
                f"grid: axis {axis!r} has no '='; write each axis as param=start:stop:step or param=a,b,c, "
                "separated by ';' (e.g. fast=5:50:5; slow=20,30)."
            )
        scope, dot, param = key.strip().rpartition(".")
        value = values.strip()
        parsed: Any = [yaml.safe_load(v) for v in split(value)] if "," in value else value
        for name in [scope] if dot else strategies:
            if name not in grids:
                raise FormError(
                    f"grid: {key.strip()!r} names the strategy {name!r}, which is not in strategies "
                    f"({', '.join(strategies) or 'none given'}); add it to strategies or drop the "
                    f"'{scope}.' prefix."
                )
            grids[name][param] = parsed
    return grids


def synthetic_data(timeframe: str, period: str) -> dict[str, Any]:
    try:
        periods = int(period)
    except ValueError:
        raise FormError(
            f"period: {period!r} is not a whole number of bars; give an integer, e.g. 8760 "
            "(one year of 1h bars)."
        ) from None
    return {"source": "synthetic", "seed": 42, "periods": periods, "freq": timeframe.strip()}


def s3_data(tokens: Sequence[str], timeframe: str, period: str) -> dict[str, Any]:
    """An S3 source: the URI, then optional `gaps=keep|fill`; the period is the window `since..until`."""
    data: dict[str, Any] = {"source": "s3", "uri": tokens[0], "timeframe": timeframe.strip()}
    for token in tokens[1:]:
        key, _, value = token.partition("=")
        if key != "gaps" or not value:
            raise FormError(
                f"data: {token!r} is not an option of S3 data; after the URI only gaps=keep or gaps=fill."
            )
        data["gaps"] = value
    if period.strip():
        since, sep, until = period.strip().partition("..")
        if not sep:
            raise FormError(
                f"period: {period!r} is not a window for S3 data; give since..until as UTC dates, e.g. "
                "2024-01-01..2025-01-01 (either side may be empty)."
            )
        data.update({k: v.strip() for k, v in (("since", since), ("until", until)) if v.strip()})
    return data


def data_section(data: str, timeframe: str, period: str, target: str | None) -> dict[str, Any]:
    """The spec's data section from the form's `data` string (see the module docstring)."""
    tokens = data.split()
    if not tokens or tokens == ["synthetic"]:
        return synthetic_data(timeframe, period)
    if not tokens[0].startswith("s3://"):
        raise FormError(
            f"data: {data!r} is neither synthetic nor an S3 URI; give synthetic, or "
            "s3://bucket/prefix/{symbol}_1h.csv (optionally followed by gaps=fill)."
        )
    if target is not None and target != "aws":
        raise FormError(
            f"data: S3 bars run on the deployed stack only (target aws), not on target {target}: the "
            "embedded default on the runner cannot read your bucket."
        )
    return s3_data(tokens, timeframe, period)


def custom_spec(
    strategies: str,
    symbols: str,
    timeframe: str,
    period: str,
    grid: str,
    data: str = "synthetic",
    target: str | None = None,
) -> dict[str, Any]:
    """The spec built from the form's strings (synthetic or S3 bars, ranked by Sharpe)."""
    names = split(strategies)
    grids = parse_grid(grid, names)
    return {
        "name": "actions-custom",
        "job_type": "PARAMETER_OPTIMIZATION",
        "symbols": split(symbols),
        "data": data_section(data, timeframe, period, target),
        "config": {"filters": None},
        "strategies": [{"name": name, "grid": grids[name]} for name in names],
        "ranking": {"metric": "sharpe", "top": 20},
    }


def with_priority(spec: dict[str, Any], priority: str | None) -> dict[str, Any]:
    """The spec with the form's priority (None keeps the spec's own)."""
    return spec if priority is None else {**spec, "priority": priority}


def read_spec_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FormError(
            f"spec: cannot read {path!r} ({exc.strerror}); give a file under batches/ or 'custom'."
        ) from None
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FormError(
            f"spec: {path} is not valid YAML ({exc}); fix the syntax at the position shown."
        ) from None
    if not isinstance(spec, dict):
        raise FormError(f"spec: {path} is not a mapping; a batch spec has name, job_type, strategies, ...")
    return spec


def build_spec(
    *,
    spec: str,
    strategies: str = "",
    symbols: str = "",
    timeframe: str = "",
    period: str = "",
    grid: str = "",
    priority: str | None = None,
    data: str = "synthetic",
    target: str | None = None,
) -> dict[str, Any]:
    """The spec the form asks for: the file `spec`, or (spec == 'custom') the one built from the strings.

    The strings are ignored for a spec file; only `priority` applies to both."""
    if spec != CUSTOM:
        return with_priority(read_spec_file(spec), priority)
    return with_priority(custom_spec(strategies, symbols, timeframe, period, grid, data, target), priority)


def dump(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(spec, sort_keys=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write the batch spec of backtest.yml's form (a file from batches/ or a custom one)."
    )
    parser.add_argument("--spec", required=True, help="a spec file (e.g. batches/demo.yaml) or 'custom'")
    parser.add_argument("--strategies", default="", help="custom: comma-separated strategy names")
    parser.add_argument("--symbols", default="", help="custom: comma-separated symbols")
    parser.add_argument("--timeframe", default="1h", help="custom: bar timeframe (default 1h)")
    parser.add_argument(
        "--period",
        default="8760",
        help="custom: synthetic bars to generate (default 8760), or the window since..until of S3 bars",
    )
    parser.add_argument(
        "--data",
        default="synthetic",
        help="custom: synthetic (default), or s3://bucket/prefix/{symbol}_1h.csv [gaps=keep|fill]",
    )
    parser.add_argument("--target", choices=["local", "aws"], help="where the batch will run (S3 data: aws)")
    parser.add_argument(
        "--grid",
        default="",
        help="custom: axes separated by ';', param=start:stop:step or param=a,b,c; Strategy.param scopes one",
    )
    parser.add_argument("--priority", help="queue priority, overriding the spec's (normal or high)")
    parser.add_argument("--out", metavar="FILE", help="write the spec here (it is printed either way)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        spec = build_spec(
            spec=args.spec,
            strategies=args.strategies,
            symbols=args.symbols,
            timeframe=args.timeframe,
            period=args.period,
            grid=args.grid,
            priority=args.priority,
            data=args.data,
            target=args.target,
        )
    except FormError as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {exc}\n")
    text = dump(spec)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    try:
        parse_spec(yaml.safe_load(text), source=args.out or "<spec>")  # what load_spec reads back
    except SpecError as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {exc}\n")
    print("spec ok", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
