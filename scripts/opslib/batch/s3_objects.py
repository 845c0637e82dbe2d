"""Reading just enough of an S3 bars object to check it before a batch is sent: the time range of a CSV from
its first and last lines (two ranged GETs), of a Parquet file from its footer (schema and row-group
statistics; the timestamp column alone when the statistics are missing). Nothing else is downloaded."""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pandas as pd

from backtesting_modules.data import parse_bars
from backtesting_modules.errors import DataError
from backtesting_modules.pipeline.store import Store

from ..errors import BatchInputError

EDGE_BYTES = 64 * 1024  # enough for a CSV header and several lines at either end
TIMESTAMP_NAMES = ("timestamp", "datetime", "date", "time")
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


def split_uri(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key:
        raise BatchInputError(f"{uri!r} is not s3://bucket/key: fix data.uri.")
    return parts.netloc, key


def object_range(
    store: Store, bucket: str, key: str, size: int, *, etag: str
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last bar time of a bars object, read from its edges; a BatchInputError says what is
    wrong with an object that holds no bars."""
    suffix = PurePosixPath(key).suffix.lower()
    uri = f"s3://{bucket}/{key}"
    if suffix == ".csv":
        return _csv_range(store, bucket, key, size, etag, uri)
    if suffix in (".parquet", ".pq"):
        return _parquet_range(store, bucket, key, size, etag, uri)
    raise BatchInputError(
        f"{uri}: bars objects are .csv or .parquet, not {suffix or '(none)'!r}: fix data.uri."
    )


def _csv_range(
    store: Store, bucket: str, key: str, size: int, etag: str, uri: str
) -> tuple[pd.Timestamp, pd.Timestamp]:
    head = store.get_object_bytes(bucket, key, etag=etag, byte_range=f"bytes=0-{EDGE_BYTES - 1}")
    lines = head.split(b"\n")
    if len(lines) < 3 and size > len(head):
        raise BatchInputError(
            f"{uri}: the first {EDGE_BYTES} bytes hold no complete line: is it a CSV of bars?"
        )
    header = lines[0]
    first = _csv_bars(header + b"\n" + b"\n".join(lines[1:3]), uri)
    if size <= EDGE_BYTES:
        last = _csv_bars(head, uri)
    else:
        tail = store.get_object_bytes(bucket, key, etag=etag, byte_range=f"bytes=-{EDGE_BYTES}")
        complete = [line for line in tail.split(b"\n")[1:] if line.strip()]  # the first may be cut
        if len(complete) < 2:
            raise BatchInputError(f"{uri}: the last {EDGE_BYTES} bytes hold fewer than 2 lines of bars.")
        last = _csv_bars(header + b"\n" + b"\n".join(complete[-2:]), uri)
    return first.index[0], last.index[-1]


def _csv_bars(body: bytes, uri: str) -> pd.DataFrame:
    try:
        return parse_bars(body, suffix=".csv", name=uri, symbol="")
    except DataError as exc:
        raise BatchInputError(f"{uri} does not hold bars: {exc}") from exc


def _parquet_range(
    store: Store, bucket: str, key: str, size: int, etag: str, uri: str
) -> tuple[pd.Timestamp, pd.Timestamp]:
    import pyarrow.parquet as pq  # noqa: PLC0415 - the driver's only use of pyarrow (slow to import)

    reader = _RangeReader(store, bucket, key, size, etag)
    try:
        parquet = pq.ParquetFile(reader)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise BatchInputError(f"{uri} is not a Parquet file ({exc}): re-export it.") from exc
    names = parquet.schema_arrow.names
    lower = {n.lower(): n for n in names}
    stamp = next((lower[n] for n in TIMESTAMP_NAMES if n in lower), None)
    missing = [c for c in PRICE_COLUMNS if c not in lower]
    if stamp is None or missing:
        raise BatchInputError(
            f"{uri} has columns {names}: bars need a timestamp column ({', '.join(TIMESTAMP_NAMES)}) and "
            f"{', '.join(PRICE_COLUMNS)}"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + "; re-export it with scripts/fetch_ohlcv.py --format parquet."
        )
    if parquet.metadata.num_rows < 2:
        raise BatchInputError(f"{uri} holds {parquet.metadata.num_rows} row(s): at least 2 bars are needed.")
    column = parquet.read(columns=[stamp]).column(0).to_pandas()
    stamps = _as_utc(column, uri)
    return stamps.min(), stamps.max()


def _as_utc(column: pd.Series, uri: str) -> pd.DatetimeIndex:
    if pd.api.types.is_integer_dtype(column.dtype) or pd.api.types.is_float_dtype(column.dtype):
        stamps = pd.to_datetime(column, unit="ms", utc=True)
    else:
        stamps = pd.to_datetime(column, utc=True, errors="coerce")
    if stamps.isna().any():
        raise BatchInputError(f"{uri}: its timestamp column has values that are not times: re-export it.")
    return pd.DatetimeIndex(stamps)


class _RangeReader(io.RawIOBase):
    """A read-only, seekable file over an S3 object, one ranged GET per read (pyarrow reads the footer
    and then the chunks it needs)."""

    def __init__(self, store: Store, bucket: str, key: str, size: int, etag: str) -> None:
        self.store, self.bucket, self.key, self.size, self.etag = store, bucket, key, size, etag
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.position >= self.size or not len(buffer):
            return 0
        end = min(self.size, self.position + len(buffer)) - 1
        data = self.store.get_object_bytes(
            self.bucket, self.key, etag=self.etag, byte_range=f"bytes={self.position}-{end}"
        )
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)
