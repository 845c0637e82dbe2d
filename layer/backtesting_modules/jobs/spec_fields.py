"""Field validators of the batch spec parser: one raw YAML value and its field path in, a checked value out.

Each helper raises `_FieldError(path, message)`; `spec_parser.parse_spec` turns it into a `SpecError`
reading ``<source>: <path>: <message>``, so every message says what is wrong and how to fix it. Private to
`spec_parser` (the leading underscores say so); the model they check against lives in `spec_model`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, TypeVar

import pandas as pd
from pandas.tseries.frequencies import to_offset

from ..errors import did_you_mean
from .spec_model import MAX_AXIS_VALUES, Scalar, timeframe_delta

E = TypeVar("E", bound=Enum)


class _FieldError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path or "(top level)"
        self.message = message


def _parse_range(text: str, path: str) -> list[Scalar]:
    parts = text.split(":")
    if len(parts) != 3:
        raise _FieldError(path, f"{text!r} is not 'start:stop:step'; write e.g. '5:50:5' (stop inclusive).")
    try:
        numbers = [float(p) for p in parts]
    except ValueError as exc:
        raise _FieldError(path, f"{text!r} has a part that is not a number; write e.g. '5:50:5'.") from exc
    start, stop, step = numbers
    if not all(math.isfinite(n) for n in numbers) or step <= 0:
        raise _FieldError(path, f"{text!r} needs a positive step; write e.g. '5:50:5'.")
    if start > stop:
        raise _FieldError(path, f"{text!r} has start > stop; write 'start:stop:step' with start <= stop.")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_AXIS_VALUES:
        raise _FieldError(
            path,
            f"{text!r} expands to {count:,} values, more than {MAX_AXIS_VALUES:,} on one axis; "
            "use a larger step or a narrower range.",
        )
    integral = all(n == int(n) for n in numbers) and all("." not in p for p in parts)
    if integral:
        return [int(start) + i * int(step) for i in range(count)]
    return [round(start + i * step, 12) for i in range(count)]


def _check_keys(
    mapping: Mapping[str, Any], allowed: Sequence[str], path: str, required: Sequence[str]
) -> None:
    prefix = f"{path}." if path else ""
    for key in mapping:
        if key not in allowed:
            raise _FieldError(
                f"{prefix}{key}",
                f"unknown key.{did_you_mean(str(key), allowed)} Allowed keys here: {', '.join(allowed)}.",
            )
    for key in required:
        if key not in mapping:
            raise _FieldError(f"{prefix}{key}", "is required; add it.")


def _mapping(value: Any, path: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _FieldError(path, f"expected {what}, got {type(value).__name__}; fix the YAML there.")
    return {str(k): v for k, v in value.items()}


def _list(value: Any, path: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _FieldError(path, f"expected {what}, got {type(value).__name__}.")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _FieldError(path, f"{value!r} must be a non-empty string.")
    return value.strip()


def _pattern(value: Any, path: str) -> str:
    text = _string(value, path)
    if "{symbol}" not in text:
        raise _FieldError(path, f"{text!r} has no {{symbol}} placeholder; e.g. 'data/{{symbol}}_1h.csv'.")
    return text


def _freq(value: Any, path: str) -> str:
    """A fixed bar interval pandas understands (the synthetic generator's `freq`)."""
    text = _string(value, path)
    try:
        seconds = pd.Timedelta(to_offset(text)).total_seconds()  # type: ignore[arg-type]
    except (TypeError, ValueError):  # an unknown alias, or a calendar period (months, years)
        seconds = 0.0
    if seconds <= 0:
        raise _FieldError(path, f"{text!r} is not a fixed bar interval; write e.g. 1h, 4h, 1D or 15min.")
    return text


def _exchange_timeframe(text: str, path: str) -> None:
    try:
        seconds = timeframe_delta(text).total_seconds()
    except ValueError:  # an unknown unit, or a calendar period (1M, 1y)
        seconds = 0.0
    if seconds <= 0:
        raise _FieldError(
            path, f"{text!r} is not a fixed-length timeframe; write e.g. 1m, 15m, 1h, 4h or 1d."
        )


def _date(value: Any, path: str) -> str:
    try:
        return pd.Timestamp(str(value)).isoformat()
    except ValueError as exc:
        raise _FieldError(path, f"{value!r} is not a date; write e.g. 2024-01-01.") from exc


def _positive_int(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _FieldError(path, f"{value!r} must be an integer >= 1.")
    return value


def _nonnegative_int(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _FieldError(path, f"{value!r} must be an integer >= 0.")
    return value


def _enum(kind: type[E], value: Any, path: str, *, upper: bool) -> E:
    names = [m.value for m in kind]
    text = str(value).upper() if upper else str(value).lower()
    for member in kind:
        if member.value == text:
            return member
    raise _FieldError(path, f"{value!r} is not one of {', '.join(names)}.{did_you_mean(text, names)}")
