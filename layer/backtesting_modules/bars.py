"""`BarArrays`: the numpy view of a validated bar DataFrame that strategies and the simulator work on.

It carries a small memo so that indicators shared by many parameter combinations (an SMA of one window
used by 40 combinations) are computed once per series, not once per combination.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class BarArrays:
    """OHLCV as contiguous float64 arrays plus the UTC index. Build with `from_frame`."""

    index: pd.DatetimeIndex
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    symbol: str | None = None
    _memo: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_frame(cls, bars: pd.DataFrame, symbol: str | None = None) -> BarArrays:
        """Wrap an already validated bar frame (see `data.validate_bars`)."""
        index = pd.DatetimeIndex(bars.index)

        def column(name: str) -> np.ndarray:
            return np.ascontiguousarray(bars[name].to_numpy(dtype=np.float64))

        return cls(
            index=index,
            open=column("open"),
            high=column("high"),
            low=column("low"),
            close=column("close"),
            volume=column("volume"),
            symbol=symbol if symbol is not None else bars.attrs.get("symbol"),
        )

    def __len__(self) -> int:
        return int(self.close.shape[0])

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """Return the cached value for `key`, computing it once."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def interval_seconds(self) -> float:
        """The median spacing of bars in seconds (robust to the odd missing bar)."""
        if len(self) < 2:
            return 0.0
        stamps = self.index.asi8
        unit = {"ns": 1e9, "us": 1e6, "ms": 1e3, "s": 1.0}[self.index.unit]
        return float(np.median(np.diff(stamps))) / unit
