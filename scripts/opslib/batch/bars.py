"""The bars a batch spec names, resolved on the driver into one reference per symbol (`DataRef`).

- Local sources (synthetic, files, exchange downloads): every symbol is loaded, cut to the window, given the
  gap policy and validated before anything is uploaded (a bad file uploads nothing), then identified by the
  sha256 of its canonical bytes (`data_window.bars_sha256`); `Submitter.prepare` uploads each under that
  hash. Files are read here, never synthesised as a fallback.
- An S3 source: nothing is downloaded or re-uploaded. Each object must exist; its header (CSV) or schema
  (Parquet) is read to check it holds bars and to learn its time range, so an empty window is refused here,
  before anything is sent; the reference pins the object's ETag, and the workers read it in place.

`PreparedData` also carries what a report says about the bars (`facts`): per symbol their identity, range,
window and gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from backtesting_modules.data import describe_bars, load_bars, prepare_bars, synthetic_bars
from backtesting_modules.errors import DataError
from backtesting_modules.jobs.data_refs import DataRef
from backtesting_modules.jobs.spec import BatchSpec, DataSource, timeframe_delta
from backtesting_modules.pipeline.errors import MissingObjectError
from backtesting_modules.pipeline.store import Store

from ..errors import BatchInputError
from .s3_objects import object_range, split_uri

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class PreparedData:
    """The bars of a batch, resolved: references per symbol, the bars per symbol the planner sizes jobs by,
    what reports say about them, and (local sources) the frames to upload."""

    refs: dict[str, DataRef]
    bars: int
    facts: dict[str, Any]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)


def bar_interval(spec: BatchSpec) -> pd.Timedelta:
    """The bar interval: a pandas frequency for synthetic bars, an exchange timeframe (1m, 1h, 1d) else."""
    if spec.data.source is DataSource.SYNTHETIC:
        return pd.Timedelta(spec.data.timeframe)
    return timeframe_delta(spec.data.timeframe)


def load_symbol_bars(spec: BatchSpec, symbol: str) -> pd.DataFrame:
    """The bars a local source names for one symbol, cut to the window, with the gap policy applied."""
    data = spec.data
    if data.source is DataSource.SYNTHETIC:
        raw = synthetic_bars(
            symbol,
            start=data.start or "2023-01-01",
            periods=data.periods or 8760,
            freq=data.timeframe,
            seed=data.seed if data.seed is not None else 42,
        )
        name = str(raw.attrs.get("source", symbol))
        try:
            return prepare_bars(
                raw, since=data.since, until=data.until, gaps="keep", interval=bar_interval(spec), name=name
            )
        except DataError as exc:
            raise BatchInputError(f"{symbol}: {exc}") from exc
    try:
        raw = load_bars(_local_path(spec, symbol), symbol=symbol)
        name = str(raw.attrs.get("source", symbol))
        return prepare_bars(
            raw, since=data.since, until=data.until, gaps=data.gaps, interval=bar_interval(spec), name=name
        )
    except DataError as exc:
        raise BatchInputError(f"{symbol}: {exc}") from exc


def _local_path(spec: BatchSpec, symbol: str) -> Path:
    data = spec.data
    if data.source is DataSource.FILES:
        paths = dict(data.paths)
        path = paths.get(symbol) or (data.pattern.format(symbol=symbol) if data.pattern else None)
        if path is None:
            raise BatchInputError(f"data.paths has no file for {symbol}: add it or use data.pattern.")
        return ROOT / path if not Path(path).is_absolute() else Path(path)
    if data.source is DataSource.EXCHANGE:
        path = ROOT / "data" / str(data.exchange) / f"{symbol}_{data.timeframe}.csv"
        if not path.exists():
            raise BatchInputError(
                f"{path} not found: fetch it first with scripts/fetch_ohlcv.py --exchange {data.exchange} "
                f"--symbols {symbol} --timeframe {data.timeframe} --since {data.since} --out data/"
            )
        return path
    raise BatchInputError(f"data.source {data.source.value!r} is not read from local files")


def resolve_local(spec: BatchSpec) -> PreparedData:
    """Load, prepare and identify every symbol's bars (all before any upload)."""
    frames = {symbol: load_symbol_bars(spec, symbol) for symbol in spec.symbols}
    described = {symbol: describe_bars(frame) for symbol, frame in frames.items()}
    refs = {symbol: DataRef.uploaded(str(facts["sha256"])) for symbol, facts in described.items()}
    for symbol, ref in refs.items():
        described[symbol]["ref"] = str(ref)
    return PreparedData(
        refs=refs,
        bars=min(len(frame) for frame in frames.values()),
        facts=_facts(spec, described),
        frames={str(refs[s]): frame for s, frame in frames.items()},
    )


def check_location(uri: str, read_locations: Sequence[str]) -> None:
    """Refuse an S3 object outside the stack's `data.read_locations`: neither the workers nor the batch
    submitter may read it (least privilege), so the batch would only fail in every job."""
    if any(uri.startswith(location) for location in read_locations):
        return
    allowed = ", ".join(read_locations) or "none"
    raise BatchInputError(
        f"data.uri: {uri} is outside the S3 locations this stack may read (data.read_locations in "
        f"config/stack.yaml: {allowed}); add its location there (e.g. s3://bucket/prefix/) and deploy, "
        "or copy the bars under one of them."
    )


def resolve_in_place(spec: BatchSpec, store: Store, read_locations: Sequence[str]) -> PreparedData:
    """Check every S3 object of an S3 source (inside `read_locations`) and pin its ETag; read only headers
    or footers."""
    data = spec.data
    interval = bar_interval(spec)
    refs: dict[str, DataRef] = {}
    described: dict[str, dict[str, Any]] = {}
    counts = []
    for symbol in spec.symbols:
        uri = str(data.uri).format(symbol=symbol)
        check_location(uri, read_locations)
        bucket, key = split_uri(uri)
        try:
            head = store.head_object(bucket, key)
        except MissingObjectError as exc:
            raise BatchInputError(
                f"{symbol}: {exc}: upload it, or fix data.uri ({data.uri}) to name the objects that exist."
            ) from exc
        first, last = object_range(store, bucket, key, int(head.get("ContentLength", 0)), etag=head["ETag"])
        since = pd.Timestamp(data.since, tz="UTC") if data.since else first
        until = pd.Timestamp(data.until, tz="UTC") if data.until else last + interval
        if until <= first or since > last:
            window = f"since {data.since or '(start)'} until {data.until or '(end)'}"
            actual = f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
            raise BatchInputError(
                f"{symbol}: the window {window} holds no bars; {uri} runs from {actual}: "
                "move the window into it."
            )
        counts.append(max(1, int((min(until, last + interval) - max(since, first)) / interval)))
        refs[symbol] = DataRef(
            key,
            bucket=bucket,
            etag=str(head["ETag"]),
            since=data.since,
            until=data.until,
            gaps=data.gaps,
            timeframe=data.timeframe,
        )
        described[symbol] = {
            "ref": str(refs[symbol]),
            "object": uri,
            "etag": str(head["ETag"]),
            "first": first.isoformat(),
            "last": last.isoformat(),
            "window": [data.since, data.until] if data.since or data.until else None,
            "gaps": data.gaps,
        }
    return PreparedData(refs=refs, bars=min(counts), facts=_facts(spec, described))


def resolve(spec: BatchSpec, store: Store, read_locations: Sequence[str] = ()) -> PreparedData:
    """The references of a spec's bars (see the module docstring); an S3 source must lie in
    `read_locations`."""
    if spec.data.source is DataSource.S3:
        return resolve_in_place(spec, store, read_locations)
    return resolve_local(spec)


def _facts(spec: BatchSpec, described: dict[str, dict[str, Any]]) -> dict[str, Any]:
    data = spec.data
    return {
        "source": data.source.value,
        "timeframe": data.timeframe,
        "window": [data.since, data.until] if data.since or data.until else None,
        "gaps": data.gaps,
        "symbols": described,
    }
