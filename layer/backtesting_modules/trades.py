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


class OrderSkip(IntEnum):
    """Why an entry signal was not filled although cash was available (the exchange order rules)."""

    MIN_ORDER_VALUE = 0  # the order value (budget after fees) is below `min_order_value`
    NO_VOLUME = 1  # `max_volume_participation` of a bar without volume: nothing could be filled


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
    "filled_fraction",
)


@dataclass(frozen=True)
class TradeArrays:
    """Columns of closed trades. `combo` is the parameter-combination index (0 for a single backtest).

    Rows are grouped by combination and, within one, ordered by entry. `entry_bar`/`exit_bar` are bar
    positions: the bar on which the entry was filled and the bar during which the exit was filled.
    `size` is units bought; `fees` is commission plus slippage of both fills; `pnl` is net of fees;
    `return_pct` is pnl over the entry cost including its fees. `filled_fraction` is the share of the
    entry order that was filled: 1.0, or less when `max_volume_participation` capped it (a partial fill).
    It may be omitted when building trades by hand (it then defaults to 1.0 for every row).
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
    filled_fraction: np.ndarray = None  # type: ignore[assignment]  # None: every order filled in full

    def __post_init__(self) -> None:
        if self.filled_fraction is None:
            object.__setattr__(self, "filled_fraction", np.ones(self.combo.shape[0]))

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
        names = ["entry_price", "exit_price", "size", "fees", "pnl", "return_pct"]
        names += ["filled_fraction"] if "filled_fraction" in trades.columns else []
        floats = {name: trades[name].to_numpy(dtype=np.float64) for name in names}
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
                "filled_fraction": self.filled_fraction,
            }
        )


@dataclass(frozen=True)
class SkippedOrders:
    """Entry signals that were not filled because of the exchange order rules, one row each.

    `bar` is the bar the entry would have filled on; `order_value` the quote value of the order (its
    budget after fees); `reason` an `OrderSkip` code. Rows are grouped by combination, ordered by bar.
    """

    combo: np.ndarray
    bar: np.ndarray
    reason: np.ndarray
    order_value: np.ndarray

    def __len__(self) -> int:
        return int(self.combo.shape[0])

    @classmethod
    def from_rows(cls, rows: list[tuple[int, int, int, float]]) -> SkippedOrders:
        """From (combo, bar, reason, order value) rows in any order."""
        cols = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
        combo, bar = np.asarray(cols[0], dtype=np.int64), np.asarray(cols[1], dtype=np.int64)
        order = np.lexsort((bar, combo))
        return cls(
            combo=combo[order],
            bar=bar[order],
            reason=np.asarray(cols[2], dtype=np.int8)[order],
            order_value=np.asarray(cols[3], dtype=np.float64)[order],
        )

    def for_combo(self, combo: int) -> SkippedOrders:
        keep = self.combo == combo
        return SkippedOrders(self.combo[keep], self.bar[keep], self.reason[keep], self.order_value[keep])

    def count(self, reason: OrderSkip) -> int:
        return int(np.count_nonzero(self.reason == reason))

    def to_frame(self, index: pd.DatetimeIndex) -> pd.DataFrame:
        """One row per order not placed or not filled: time and position of its bar, reason, value."""
        reasons = np.array([r.name for r in OrderSkip])
        return pd.DataFrame(
            {
                "time": index[self.bar],
                "bar": self.bar,
                "reason": reasons[self.reason.astype(np.intp)],
                "order_value": self.order_value,
            }
        )
