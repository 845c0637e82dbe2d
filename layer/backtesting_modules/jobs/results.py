"""A job's rows in columnar form, and the stored result body built from them.

Rows are what people read (`{"strategy", "symbol", "params", "metrics", "extras"}` per backtest); columns
are what travels and is stored: one list per parameter and per metric, so a 4,000-backtest job is a few
dozen JSON arrays instead of 4,000 objects repeating the same keys. A sweep's DataFrame becomes columns
without building a dict per row.

Stored body (``results/<job_id>.json``, version 3): JSON whose metric columns are binary —
base64 of little-endian float64, NaN where a metric has no value — because writing 90,000 floats as
decimal text costs ~50 ms per job and reading them back as much again; base64 costs under 10 ms. A job id
hashes the job's content, so the body names no batch: every batch that plans the job shares it (version 2,
stored under ``results/<batch_id>/<job_id>.json`` with a "batch_id" field, is still read)::

    {"version": 3, "job_id": "...", "rows": N, "metrics_encoding": "f8-base64",
     "columns": {"strategy": [...], "symbol": [...], "params": {"fast": [...], ...},
                 "metrics": {"sharpe": "<base64>", ...}, "extras": [{...}, ...] | null}}

A job of a validated sweep also stores every combination's per-period returns (for PBO and the deflated
Sharpe; docs/validation.md), float32, one row per period and one column per result row::

    "period_returns": {"freq": "1d", "starts": ["2024-01-01T00:00:00+00:00", ...], "shape": [T, N],
                       "encoding": "f4-base64", "values": "<base64 of the T x N little-endian float32>"}

In a result *message* (inline, small) every column is a JSON list and a missing metric is ``null``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from ..errors import BacktestError

RESULT_BODY_VERSION = 3
READABLE_BODY_VERSIONS = (2, 3)
METRICS_ENCODING = "f8-base64"
RETURNS_ENCODING = "f4-base64"

Row = dict[str, Any]


class ResultColumns(TypedDict):
    strategy: list[str]
    symbol: list[str]
    params: dict[str, list[Any]]
    metrics: dict[str, list[float | None]]
    extras: list[dict[str, Any]] | None


class ResultBodyError(BacktestError, ValueError):
    """A stored result body that cannot be read (corrupt, truncated, or of an unknown version)."""


def empty_columns() -> ResultColumns:
    return {"strategy": [], "symbol": [], "params": {}, "metrics": {}, "extras": None}


def count_rows(columns: ResultColumns) -> int:
    return len(columns["strategy"])


def json_floats(values: np.ndarray | Sequence[Any]) -> list[float | None]:
    """Numbers as plain floats, NaN and ±inf as None (JSON has neither)."""
    array = np.asarray(values, dtype=np.float64)
    out: list[float | None] = array.tolist()
    if not np.isfinite(array).all():
        for i in np.flatnonzero(~np.isfinite(array)):
            out[i] = None
    return out


def plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy scalars unwrapped, NaN and ±inf as None."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def compute_columns_from_frame(
    frame: pd.DataFrame, strategy: str, symbol: str, param_names: Sequence[str], metric_names: Sequence[str]
) -> ResultColumns:
    """A `run_sweep` frame as columns (no per-row objects: one `tolist` per column)."""
    n = len(frame)
    return {
        "strategy": [strategy] * n,
        "symbol": [symbol] * n,
        "params": {p: [plain(v) for v in frame[p].tolist()] for p in param_names},
        "metrics": {m: json_floats(frame[m].to_numpy()) for m in metric_names},
        "extras": None,
    }


def compute_columns(rows: Sequence[Mapping[str, Any]]) -> ResultColumns:
    """Rows (as `run_job` documents them) as columns; parameters or metrics missing in a row are None."""
    params = list(dict.fromkeys(k for r in rows for k in r["params"]))
    metrics = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    extras = [dict(r.get("extras") or {}) for r in rows]
    return {
        "strategy": [str(r["strategy"]) for r in rows],
        "symbol": [str(r["symbol"]) for r in rows],
        "params": {p: [plain(r["params"].get(p)) for r in rows] for p in params},
        "metrics": {m: [plain(r["metrics"].get(m)) for r in rows] for m in metrics},
        "extras": extras if any(extras) else None,
    }


def concat_columns(parts: Sequence[ResultColumns]) -> ResultColumns:
    """Columns of several parts, in order (a name missing from a part is None in its rows)."""
    if len(parts) == 1:
        return parts[0]
    sizes = [count_rows(p) for p in parts]

    def joined(pick: str) -> dict[str, list[Any]]:
        tables = [p[pick] for p in parts]  # type: ignore[literal-required]
        keys = list(dict.fromkeys(k for t in tables for k in t))
        return {
            k: [v for t, n in zip(tables, sizes, strict=True) for v in t.get(k, [None] * n)] for k in keys
        }

    extras = None
    if any(p["extras"] for p in parts):
        extras = [e for p, n in zip(parts, sizes, strict=True) for e in (p["extras"] or [{}] * n)]
    return {
        "strategy": [s for p in parts for s in p["strategy"]],
        "symbol": [s for p in parts for s in p["symbol"]],
        "params": joined("params"),
        "metrics": joined("metrics"),
        "extras": extras,
    }


def row_at(columns: ResultColumns, i: int) -> Row:
    extras = columns["extras"]
    return {
        "strategy": columns["strategy"][i],
        "symbol": columns["symbol"][i],
        "params": {k: v[i] for k, v in columns["params"].items() if v[i] is not None},
        "metrics": {k: v[i] for k, v in columns["metrics"].items()},
        "extras": dict(extras[i]) if extras else {},
    }


def compute_rows(columns: ResultColumns) -> list[Row]:
    return [row_at(columns, i) for i in range(count_rows(columns))]


def metric_array(columns: ResultColumns, metric: str) -> np.ndarray:
    """One metric as floats, NaN where it is missing (None)."""
    values = columns["metrics"].get(metric)
    if values is None:
        return np.full(count_rows(columns), np.nan)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def ranked_indices(columns: ResultColumns, metric: str, higher: bool) -> np.ndarray:
    """Row indices with a value for `metric`, best first; ties keep row order (a stable sort)."""
    values = metric_array(columns, metric)
    valid = np.flatnonzero(~np.isnan(values))
    order = np.argsort(-values[valid] if higher else values[valid], kind="stable")
    return valid[order]


def best_index(columns: ResultColumns, metric: str, higher: bool, min_trades: int = 0) -> int | None:
    """The best row by `metric` (the first of equals) among those with at least `min_trades` trades; row 0
    when none has a value; None without rows, or when every row has fewer trades (none may win)."""
    if count_rows(columns) == 0:
        return None
    order = ranked_indices(columns, metric, higher)
    if min_trades and "trades" in columns["metrics"]:
        trades = metric_array(columns, "trades")
        if not (trades >= min_trades).any():
            return None
        order = order[trades[order] >= min_trades]
    return int(order[0]) if order.size else 0


# --------------------------------------------------------------------------------------- stored body


def encode_result_body(
    job_id: str,
    columns: ResultColumns,
    period_returns: tuple[str, pd.DatetimeIndex, np.ndarray] | None = None,
) -> bytes:
    """The stored body of a job's rows, and of their per-period returns `(freq, period starts, T x rows
    float32)` when the job kept them (see the module docstring)."""
    document: dict[str, Any] = {
        "version": RESULT_BODY_VERSION,
        "job_id": job_id,
        "rows": count_rows(columns),
        "metrics_encoding": METRICS_ENCODING,
        "columns": {
            **columns,
            "metrics": {
                name: base64.b64encode(metric_array(columns, name).astype("<f8").tobytes()).decode("ascii")
                for name in columns["metrics"]
            },
        },
    }
    if period_returns is not None:
        document["period_returns"] = _encode_returns(period_returns, count_rows(columns))
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _encode_returns(period_returns: tuple[str, pd.DatetimeIndex, np.ndarray], rows: int) -> dict[str, Any]:
    freq, starts, values = period_returns
    matrix = np.ascontiguousarray(values, dtype="<f4")
    if matrix.shape != (len(starts), rows):
        raise ValueError(f"period returns of shape {matrix.shape} for {len(starts)} periods and {rows} rows")
    return {
        "freq": freq,
        "starts": [stamp.isoformat() for stamp in pd.DatetimeIndex(starts)],
        "shape": list(matrix.shape),
        "encoding": RETURNS_ENCODING,
        "values": base64.b64encode(matrix.tobytes()).decode("ascii"),
    }


def decode_period_returns(body: bytes) -> tuple[str, pd.DatetimeIndex, np.ndarray] | None:
    """A stored body's per-period returns `(freq, period starts, T x rows float32)`; None if it has none."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultBodyError(f"result body is not JSON ({exc}): re-run the job.") from exc
    section = document.get("period_returns") if isinstance(document, dict) else None
    if section is None:
        return None
    try:
        shape = tuple(int(n) for n in section["shape"])
        values = np.frombuffer(base64.b64decode(section["values"], validate=True), dtype="<f4").reshape(shape)
        starts = pd.DatetimeIndex(pd.to_datetime(section["starts"], utc=True))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ResultBodyError(f"result body period_returns are malformed ({exc}): re-run the job.") from exc
    if section.get("encoding") != RETURNS_ENCODING or len(starts) != shape[0]:
        raise ResultBodyError("result body period_returns: unknown encoding or periods not matching values.")
    return str(section["freq"]), starts, values


def _load_body(body: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The body's document (metrics left encoded) and its metric columns as float arrays."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultBodyError(
            f"result body is not JSON ({exc}); it was not written by this pipeline's worker or collector, "
            "or is truncated: re-run the job (run_batch.py --resume)."
        ) from exc
    version = document.get("version") if isinstance(document, dict) else None
    if version not in READABLE_BODY_VERSIONS or document.get("metrics_encoding") != METRICS_ENCODING:
        raise ResultBodyError(
            f"result body version {version!r} is not one of {READABLE_BODY_VERSIONS} ({METRICS_ENCODING}): "
            "read it with the layer version that wrote it, or re-run the batch."
        )
    columns = document.get("columns")
    if not isinstance(columns, dict) or not {"strategy", "symbol", "params", "metrics"} <= columns.keys():
        raise ResultBodyError("result body has no columns (strategy, symbol, params, metrics): re-run it.")
    n = len(columns["strategy"])
    try:
        metrics = {
            k: np.frombuffer(base64.b64decode(v, validate=True), dtype="<f8")
            for k, v in columns["metrics"].items()
        }
    except (binascii.Error, TypeError, ValueError) as exc:
        raise ResultBodyError(f"result body metrics are not base64 float64 ({exc}): re-run the job.") from exc
    lengths = {len(v) for v in (columns["symbol"], *columns["params"].values(), *metrics.values())}
    if lengths - {n}:
        raise ResultBodyError(f"result body columns have unequal lengths ({n} and {sorted(lengths)}).")
    columns.setdefault("extras", None)
    return document, metrics


def decode_result_body(body: bytes) -> dict[str, Any]:
    """A stored body back as its document with JSON-list columns (like a result message's);
    `ResultBodyError` says what is wrong with a corrupt, truncated or foreign body."""
    document, metrics = _load_body(body)
    document["columns"]["metrics"] = {k: json_floats(v) for k, v in metrics.items()}
    return document


def result_frame(body: bytes, *, job_id: str | None = None) -> pd.DataFrame:
    """A stored body as a flat table: job_id, strategy, symbol, one `param.<name>` column per parameter,
    one float column per metric (NaN where missing), and `extras` (JSON text) when the job had any."""
    document, metrics = _load_body(body)
    columns = document["columns"]
    data: dict[str, Any] = {"job_id": [job_id or document.get("job_id")] * len(columns["strategy"])}
    data["strategy"] = columns["strategy"]
    data["symbol"] = columns["symbol"]
    for name, values in columns["params"].items():
        data[f"param.{name}"] = values
    data.update(metrics)
    if columns["extras"]:
        data["extras"] = [json.dumps(e, sort_keys=True) for e in columns["extras"]]
    return pd.DataFrame(data)
