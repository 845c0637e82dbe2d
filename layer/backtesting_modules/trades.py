"""Trade records as flat column arrays (one row per trade, all combinations of a sweep together)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np
import pandas as pd


class ExitReason(IntEnum):
    """Why a position was closed. The integer codes are stored in `TradeArrays.exit_reason`."""

    SIGNAL = 0
    STOP_LOSS = 1
    TAKE_PROFIT = 2
    MAX_HOLD = 3
    END_OF_DATA = 4


# The per-trade columns every simulator produces, in this order (after `combo` or `symbol`).
TRADE_COLUMNS = (
    "entry_bar",
    "exit_bar",
    "entry_price",
    "exit_price",
    "size",
    "fees",
    "pnl",
    "return_pct",
    "exit_reason",
)


@dataclass(frozen=True)
class TradeArrays:
    """Columns of closed trades. `combo` is the parameter-combination index (0 for a single backtest).

    Rows are grouped by combination and, within one, ordered by entry. `entry_bar`/`exit_bar` are bar
    positions: the bar on which the entry was filled and the bar during which the exit was filled.
    `size` is units bought; `fees` is commission plus slippage of both fills; `pnl` is net of fees;
    `return_pct` is pnl over the entry cost including its fees.
    """

    combo: np.ndarray
    entry_bar: np.ndarray
    exit_bar: np.ndarray
    entry_price: np.ndarray
    exit_price: np.ndarray
    size: np.ndarray
    fees: np.ndarray
    pnl: np.ndarray
    return_pct: np.ndarray
    exit_reason: np.ndarray

    def __len__(self) -> int:
        return int(self.combo.shape[0])

    @classmethod
    def empty(cls) -> TradeArrays:
        ints = {"combo", "entry_bar", "exit_bar"}
        return cls(
            **{
                f.name: np.empty(0, dtype=np.int64 if f.name in ints else np.float64)
                for f in fields(cls)
                if f.name != "exit_reason"
            },
            exit_reason=np.empty(0, dtype=np.int8),
        )

    def select(self, mask: np.ndarray) -> TradeArrays:
        """Rows where `mask` is True (a boolean array or integer positions)."""
        return TradeArrays(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    def for_combo(self, combo: int) -> TradeArrays:
        return self.select(self.combo == combo)

    @classmethod
    def concat(cls, parts: list[TradeArrays]) -> TradeArrays:
        if not parts:
            return cls.empty()
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    @classmethod
    def from_records(cls, trades: pd.DataFrame) -> TradeArrays:
        """Columns of a trade table with bar positions and reason names (one combination, code 0)."""
        codes = {r.name: int(r) for r in ExitReason}
        floats = {
            name: trades[name].to_numpy(dtype=np.float64)
            for name in ("entry_price", "exit_price", "size", "fees", "pnl", "return_pct")
        }
        return cls(
            combo=np.zeros(len(trades), dtype=np.int64),
            entry_bar=trades["entry_bar"].to_numpy(dtype=np.int64),
            exit_bar=trades["exit_bar"].to_numpy(dtype=np.int64),
            exit_reason=trades["exit_reason"].map(codes).to_numpy(dtype=np.int8),
            **floats,
        )

    def to_frame(self, index: pd.DatetimeIndex) -> pd.DataFrame:
        """The user-facing trade table with timestamps and reason names."""
        reasons = np.array([r.name for r in ExitReason])
        return pd.DataFrame(
            {
                "entry_time": index[self.entry_bar],
                "exit_time": index[self.exit_bar],
                "entry_bar": self.entry_bar,
                "exit_bar": self.exit_bar,
                "entry_price": self.entry_price,
                "exit_price": self.exit_price,
                "size": self.size,
                "fees": self.fees,
                "pnl": self.pnl,
                "return_pct": self.return_pct,
                "exit_reason": reasons[self.exit_reason.astype(np.intp)],
            }
        )
