"""The engine's error hierarchy: one base error, a subclass per kind of bad input.

Every message names the offending field (or row) and says how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BacktestError(Exception):
    """Base of every error the engine raises on purpose."""


class DataError(BacktestError, ValueError):
    """Bars that cannot be backtested: unsorted, NaN, inconsistent OHLC, too short, unreadable."""


class ConfigError(BacktestError, ValueError):
    """A StrategyConfig field (or engine option) outside its allowed range."""


class StrategyError(BacktestError, ValueError):
    """An unknown strategy, unknown parameter, or a parameter value outside its range."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ' Did you mean X?' for the closest candidate, or '' when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" Did you mean {matches[0]!r}?" if matches else ""
