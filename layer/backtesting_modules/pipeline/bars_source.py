"""A job's bars, from their reference (`jobs.data_refs`): uploaded bars by their content-hash key, or an
S3 object read in place — only if its ETag is still the one the batch was planned on — then cut to the
batch's window with its gap policy applied, exactly as the driver prepares uploaded bars."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from ..data import describe_bars, parse_bars, prepare_bars
from ..errors import DataError
from ..jobs.data_refs import DataRef
from ..jobs.spec import timeframe_delta
from .errors import MissingObjectError, StoreError
from .store import Store


def load_ref(store: Store, ref: DataRef, symbol: str) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """The bars `ref` names, and — for an object read in place — what was measured of them (`describe_bars`
    plus the object and its ETag), which the result reports."""
    if ref.bucket is None:
        try:
            return store.load_bars(ref.key), None
        except MissingObjectError as exc:
            raise MissingObjectError(f"the bars of {symbol}: {exc}") from exc
    uri = f"s3://{ref.bucket}/{ref.key}"
    try:
        body = store.get_object_bytes(ref.bucket, ref.key, etag=ref.etag)
    except MissingObjectError as exc:
        raise MissingObjectError(f"the bars of {symbol}: {exc}") from exc
    try:
        raw = parse_bars(body, suffix=PurePosixPath(ref.key).suffix, name=uri, symbol=symbol)
        interval = timeframe_delta(ref.timeframe or "1h")
        bars = prepare_bars(raw, since=ref.since, until=ref.until, gaps=ref.gaps, interval=interval, name=uri)
    except (DataError, ValueError) as exc:
        # The whole object was read (at the planned ETag) and cannot be backtested: it will not improve.
        raise StoreError(f"{uri} (ETag {ref.etag}): {exc}", retryable=False) from exc
    return bars, {**describe_bars(bars), "object": uri, "etag": ref.etag}
