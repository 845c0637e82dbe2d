"""The bars a batch spec names, read on the driver (files are read here, never synthesised as a fallback)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from backtesting_modules.data import load_bars, synthetic_bars
from backtesting_modules.jobs.spec import BatchSpec, DataSource

from ..errors import BatchInputError

ROOT = Path(__file__).resolve().parents[3]


def load_symbol_bars(spec: BatchSpec, symbol: str) -> pd.DataFrame:
    """The bars a spec names for one symbol (files are read here, never synthesised as a fallback)."""
    data = spec.data
    if data.source is DataSource.SYNTHETIC:
        return synthetic_bars(
            symbol,
            start=data.start or "2023-01-01",
            periods=data.periods or 8760,
            freq=data.timeframe,
            seed=data.seed if data.seed is not None else 42,
        )
    if data.source is DataSource.FILES:
        paths = dict(data.paths)
        path = paths.get(symbol) or (data.pattern.format(symbol=symbol) if data.pattern else None)
        if path is None:
            raise BatchInputError(f"data.paths has no file for {symbol}: add it or use data.pattern.")
        return load_bars(ROOT / path if not Path(path).is_absolute() else path, symbol=symbol)
    if data.source is DataSource.EXCHANGE:
        path = ROOT / "data" / str(data.exchange) / f"{symbol}_{data.timeframe}.csv"
        if not path.exists():
            raise BatchInputError(
                f"{path} not found: fetch it first with scripts/fetch_ohlcv.py --exchange {data.exchange} "
                f"--symbols {symbol} --timeframe {data.timeframe} --since {data.since} --out data/"
            )
        return load_bars(path, symbol=symbol)
    raise BatchInputError(
        f"data.source {data.source.value!r}: bars already in S3 are read by the workers directly; "
        "use --target aws, or a files/synthetic/exchange source locally."
    )
