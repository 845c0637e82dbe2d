"""`StrategyConfig`: the original system's configuration object, every field honoured by the engine.

The field names and defaults are those of the original `backtesting_modules` so that existing user code keeps
working. Fields the original lacked (fill convention, maximum holding time, Kelly options, exchange order
rules) are appended with defaults that change nothing for old callers. Two original fields were accepted and
never read: `technical_indicators` and `timezone_settings`; they now default to None and setting one is a
ConfigError that names what replaced it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from .errors import ConfigError
from .market_rules import OrderRules, preset_defaults, tick_table

SizingMethod = Literal["fixed", "percent", "kelly"]
FillMode = Literal["next_open", "close"]

SIZING_METHODS: tuple[str, ...] = ("fixed", "percent", "kelly")
FILL_MODES: tuple[str, ...] = ("next_open", "close")


def _default_filters() -> dict[str, Any]:
    return {
        "min_price": 1000.0,
        "max_price": 500000.0,
        "volume_ma_ratio": 1.5,
        "exclude_symbols": ["USDT-KRW", "BTC-KRW"],
    }


# Original fields that were never read, and what does their job now.
REMOVED_FIELDS: dict[str, str] = {
    "technical_indicators": (
        "indicator periods are each strategy's parameters: pass them as `params` to run_backtest (or as "
        "`grid` to run_sweep; `params`/`grid` of a batch spec's strategy)"
    ),
    "timezone_settings": (
        "timezone analysis is its own run: TimezoneBacktester (with TimezoneSettings), a batch with "
        "`job_type: TIMEZONE_ANALYSIS`, or `scripts/backtest.py --timezone`"
    ),
}


@dataclass(frozen=True)
class EntryFilters:
    """The typed view of `StrategyConfig.filters`, applied to the bar on which an entry signal fires."""

    min_price: float | None = None
    max_price: float | None = None
    volume_ma_ratio: float | None = None
    volume_ma_period: int = 20
    exclude_symbols: tuple[str, ...] = ()

    def excludes(self, symbol: str | None) -> bool:
        """True when `symbol` is excluded; 'BTC-KRW' and Upbit's 'KRW-BTC' name the same pair."""
        if not symbol:
            return False
        key = _pair_key(symbol)
        return any(_pair_key(s) == key for s in self.exclude_symbols)


def _pair_key(symbol: str) -> frozenset[str]:
    return frozenset(part.upper() for part in symbol.replace("/", "-").split("-"))


@dataclass
class StrategyConfig:
    """Configuration of one backtest: capital, sizing, risk limits, costs and entry filters.

    Sizing (`position_size_method`):
    - ``fixed``: a constant currency amount per trade. A value above 1 is that amount in quote currency;
      a value in (0, 1] is read as that fraction of `initial_cash` (the original system's meaning of the
      default 0.1), still a constant amount, never re-scaled with equity.
    - ``percent``: that fraction of current equity (1.0 invests everything, fees included).
    - ``kelly``: the Kelly fraction of the closed trades so far times `kelly_scale` (0.5 = half Kelly),
      clamped to [`kelly_floor`, `kelly_max_fraction`]; `position_size_value` (as percent) until
      `kelly_min_trades` trades have closed.

    Costs: `commission_rate` and `slippage_rate` are both charged on the notional of every fill
    (entry and exit): units = cash / (price × (1 + commission + slippage)).

    `stop_loss_pct` / `take_profit_pct` may be None to disable them. `filters` may be None (or {}) to
    disable entry filters; `min_volume` is the minimum quote turnover (close × volume) of the signal bar.

    Exchange order rules (all off by default; docs/engine.md, "Exchange order rules"):
    - ``min_order_value``: an entry whose order value (budget after fees) is below it is not placed.
    - ``tick_table``: fill prices move onto the exchange's price ticks, buys up, sells down ("upbit_krw").
    - ``max_volume_participation``: an entry fills at most this fraction of its fill bar's volume.
    - ``market_rules``: a preset ("upbit_krw") filling in those three where they are None.
    """

    name: str = "default"
    description: str = ""
    initial_cash: float = 10_000_000.0
    position_size_method: SizingMethod = "fixed"
    position_size_value: float = 0.1
    stop_loss_pct: float | None = 0.08
    take_profit_pct: float | None = None
    max_positions: int = 10
    min_volume: float = 1_000_000.0
    commission_rate: float = 0.0005
    slippage_rate: float = 0.001
    technical_indicators: dict[str, Any] | None = None  # never read: setting it is a ConfigError
    filters: dict[str, Any] | None = field(default_factory=_default_filters)
    timezone_settings: dict[str, Any] | None = None  # never read: setting it is a ConfigError
    # Fields the original lacked.
    fill: FillMode = "next_open"
    max_holding_bars: int | None = None
    kelly_scale: float = 0.5
    kelly_min_trades: int = 20
    kelly_max_fraction: float = 1.0
    kelly_floor: float = 0.01
    # Exchange order rules (None: off).
    min_order_value: float | None = None
    tick_table: str | None = None
    max_volume_participation: float | None = None
    market_rules: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field and its allowed range."""
        _check_range("initial_cash", self.initial_cash, 0.0, math.inf, low_open=True)
        if self.position_size_method not in SIZING_METHODS:
            raise ConfigError(
                f"position_size_method={self.position_size_method!r} is not one of {SIZING_METHODS}; "
                "use 'fixed' (currency), 'percent' (of equity) or 'kelly'."
            )
        if self.position_size_method == "percent":
            _check_range("position_size_value", self.position_size_value, 0.0, 1.0, low_open=True)
        else:
            _check_range("position_size_value", self.position_size_value, 0.0, math.inf, low_open=True)
        if self.stop_loss_pct is not None:
            _check_range("stop_loss_pct", self.stop_loss_pct, 0.0, 1.0, low_open=True, high_open=True)
        if self.take_profit_pct is not None:
            _check_range("take_profit_pct", self.take_profit_pct, 0.0, 5.0, low_open=True, high_open=True)
        _check_range("commission_rate", self.commission_rate, 0.0, 0.01)
        _check_range("slippage_rate", self.slippage_rate, 0.0, 0.05)
        _check_int("max_positions", self.max_positions, 1)
        _check_range("min_volume", self.min_volume, 0.0, math.inf)
        if self.fill not in FILL_MODES:
            raise ConfigError(f"fill={self.fill!r} is not one of {FILL_MODES}; 'next_open' is the default.")
        if self.max_holding_bars is not None:
            _check_int("max_holding_bars", self.max_holding_bars, 1)
        _check_range("kelly_scale", self.kelly_scale, 0.0, 1.0, low_open=True)
        _check_int("kelly_min_trades", self.kelly_min_trades, 1)
        _check_range("kelly_max_fraction", self.kelly_max_fraction, 0.0, 1.0, low_open=True)
        _check_range("kelly_floor", self.kelly_floor, 0.0, self.kelly_max_fraction)
        self.entry_filters()  # validates the filters mapping
        self.order_rules()  # validates the exchange order rules
        for name, replacement in REMOVED_FIELDS.items():
            if getattr(self, name) is not None:
                raise ConfigError(
                    f"{name}={getattr(self, name)!r} is no longer accepted: it was never read. "
                    f"Instead, {replacement}. Leave {name} unset (None)."
                )

    @property
    def cost_rate(self) -> float:
        """Commission plus slippage, charged on the notional of each fill."""
        return self.commission_rate + self.slippage_rate

    def entry_filters(self) -> EntryFilters:
        """The typed filters; unknown keys are an error (a typo would silently disable a filter)."""
        raw = self.filters or {}
        known = {f.name for f in fields(EntryFilters)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"filters has unknown key(s) {unknown}; allowed keys: {sorted(known)}.")
        values = dict(raw)
        if "exclude_symbols" in values:
            values["exclude_symbols"] = tuple(values["exclude_symbols"] or ())
        for key in ("min_price", "max_price", "volume_ma_ratio"):
            if values.get(key) is not None:
                _check_range(f"filters.{key}", float(values[key]), 0.0, math.inf)
        return EntryFilters(**values)

    def order_rules(self) -> OrderRules:
        """The exchange order rules in force: each field as set, else the `market_rules` preset's value."""
        preset = preset_defaults(self.market_rules)
        min_order = _or_preset(self.min_order_value, preset, "min_order_value")
        table = _or_preset(self.tick_table, preset, "tick_table")
        participation = _or_preset(self.max_volume_participation, preset, "max_volume_participation")
        if min_order is not None:
            _check_range("min_order_value", min_order, 0.0, math.inf, high_open=True)
        if participation is not None:
            _check_range("max_volume_participation", participation, 0.0, 1.0, low_open=True)
        return OrderRules(
            min_order_value=float(min_order) if min_order is not None else None,
            ticks=tick_table(table) if table is not None else None,
            max_participation=float(participation) if participation is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _or_preset(value: Any, preset: dict[str, Any], name: str) -> Any:
    return value if value is not None else preset.get(name)


def _check_range(
    name: str,
    value: float,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}={value!r} is not a number.") from exc
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if math.isnan(number) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ConfigError(
            f"{name}={value!r} is outside {left}{low}, {high}{right}; set it within that range."
        )


def _check_int(name: str, value: int, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name}={value!r} must be an integer >= {low}.")
