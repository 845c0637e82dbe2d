"""The strategy package: importing it registers every built-in strategy and re-exports the registry API."""

from __future__ import annotations

from . import classic, makenaide
from .registry import (
    Constraint,
    Param,
    ParamTable,
    Strategy,
    expand_grid,
    get_strategy,
    list_strategies,
    register,
    resolve_params,
    table_rows,
)

__all__ = [
    "Constraint",
    "Param",
    "ParamTable",
    "Strategy",
    "classic",
    "expand_grid",
    "get_strategy",
    "list_strategies",
    "makenaide",
    "register",
    "resolve_params",
    "table_rows",
]
