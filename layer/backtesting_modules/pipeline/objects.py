"""The S3 object formats of the pipeline that are not result bodies: bars as a compressed npz."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd


def encode_bars(bars: pd.DataFrame) -> bytes:
    """Bars as a compressed npz: index in ns plus OHLCV columns, attrs as JSON (no pyarrow in the layer)."""
    buffer = io.BytesIO()
    index = pd.DatetimeIndex(bars.index).as_unit("ns")
    attrs = {k: v for k, v in bars.attrs.items() if isinstance(v, (str, int, float, bool))}
    arrays: dict[str, Any] = {
        c: bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")
    }
    arrays["timestamp"] = index.asi8
    arrays["attrs"] = np.frombuffer(json.dumps(attrs).encode(), dtype=np.uint8)
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def decode_bars(body: bytes) -> pd.DataFrame:
    with np.load(io.BytesIO(body)) as data:
        index = pd.DatetimeIndex(pd.to_datetime(data["timestamp"], unit="ns", utc=True), name="timestamp")
        frame = pd.DataFrame({c: data[c] for c in ("open", "high", "low", "close", "volume")}, index=index)
        frame.attrs.update(json.loads(bytes(data["attrs"]).decode()))
    return frame
