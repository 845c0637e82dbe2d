"""The `search:` of a strategy entry (docs/search.md): an adaptive parameter search instead of a grid.

    strategies:
      - name: Hybrid_VCP_Momentum
        search:
          method: tpe           # tpe | cmaes | random | qmc
          trials: 2000          # the budget (limits.max_backtests counts it per symbol)
          wave: 64              # trials asked per round (default: enough to keep every worker busy)
          seed: 7
          patience: 5           # stop after this many waves without a better objective
          space:                # named parameters' ranges; the others search their Param range
            vcp_lookback: {low: 20, high: 120, step: 5}
            risk_per_trade: {low: 0.002, high: 0.05, log: true}
            use_volume_filter: {fixed: 1}
        params: {atr_period: 14}  # fixed, not searched

Every check needs only the strategy's declaration (its `Param` ranges): an unknown sampler or parameter,
`low` above `high`, a range outside the parameter's bounds, a log scale over non-positive values, a step
with a log scale, are refused with the field and the fix before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import did_you_mean
from ..strategies import Strategy
from .spec_fields import _check_keys, _enum, _FieldError, _mapping, _nonnegative_int, _positive_int
from .spec_model import Scalar, SearchMethod, SearchRange, SearchSpec

_SEARCH_KEYS = ("method", "trials", "wave", "seed", "patience", "space")
_RANGE_KEYS = ("low", "high", "log", "step", "fixed")


def parse_search(
    raw: Any, path: str, strategy: Strategy, fixed: Mapping[str, Scalar]
) -> tuple[SearchSpec, dict[str, Scalar]]:
    """The search of one strategy entry, and the parameters its space fixes (added to `params`)."""
    section = _mapping(raw, path, "a mapping {method, trials, wave, seed, patience, space}")
    _check_keys(section, _SEARCH_KEYS, path, ("method", "trials"))
    method = _enum(SearchMethod, section["method"], f"{path}.method", upper=False)
    trials = _positive_int(section["trials"], f"{path}.trials")
    space_raw = _mapping(
        section.get("space") or {}, f"{path}.space", "a mapping {param: {low, high} | {fixed}}"
    )
    named: dict[str, SearchRange] = {}
    pinned: dict[str, Scalar] = {}
    for key, value in space_raw.items():
        where = f"{path}.space.{key}"
        param = _param(strategy, str(key), where)
        if param.name in fixed:
            raise _FieldError(where, "is also in params; keep it in one of params or space.")
        entry = _mapping(value, where, "a mapping {low, high, log, step} or {fixed: value}")
        _check_keys(entry, _RANGE_KEYS, where, ())
        if "fixed" in entry:
            if set(entry) != {"fixed"}:
                raise _FieldError(where, "give fixed alone, or low and high (and log or step).")
            pinned[param.name] = _coerce(param, entry["fixed"], f"{where}.fixed", strategy)
        else:
            named[param.name] = _range(param, entry, where, strategy)
    space = tuple(
        (
            p.name,
            named.get(p.name)
            or SearchRange(float(p.low), float(p.high), step=1.0 if p.kind is int else None),
        )
        for p in strategy.params
        if p.name not in fixed and p.name not in pinned
    )
    if not space:
        raise _FieldError(
            f"{path}.space", "searches no parameter: every one is fixed; free one, or use params."
        )
    spec = SearchSpec(
        method=method,
        trials=trials,
        space=space,
        seed=_nonnegative_int(section.get("seed", 0), f"{path}.seed"),
        wave=_positive_int(section["wave"], f"{path}.wave") if "wave" in section else None,
        patience=_positive_int(section["patience"], f"{path}.patience") if "patience" in section else None,
    )
    return spec, pinned


def _param(strategy: Strategy, name: str, where: str) -> Any:
    known = [p.name for p in strategy.params]
    if name not in known:
        raise _FieldError(
            where,
            f"{strategy.name} has no parameter {name!r}.{did_you_mean(name, known)} "
            f"It has: {', '.join(known)}.",
        )
    return strategy.param(name)


def _coerce(param: Any, value: Any, where: str, strategy: Strategy) -> Scalar:
    try:
        return param.coerce(value, strategy.name)
    except (ValueError, OverflowError) as exc:
        raise _FieldError(where, str(exc)) from exc


def _range(param: Any, entry: Mapping[str, Any], where: str, strategy: Strategy) -> SearchRange:
    bounds = f"[{param.low}, {param.high}]"
    low = _coerce(param, entry.get("low", param.low), f"{where}.low", strategy)
    high = _coerce(param, entry.get("high", param.high), f"{where}.high", strategy)
    if low > high:
        raise _FieldError(
            where, f"low {low} is above high {high}; swap them (the parameter allows {bounds})."
        )
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise _FieldError(f"{where}.log", f"{log!r} must be true or false.")
    if log and low <= 0:
        raise _FieldError(f"{where}.log", f"a log scale needs low > 0, got {low}; raise low or drop log.")
    step = entry.get("step")
    if step is not None:
        if log:
            raise _FieldError(
                f"{where}.step", "a step and a log scale do not combine (Optuna's rule); drop one."
            )
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise _FieldError(f"{where}.step", f"{step!r} must be a number above 0, e.g. 1 or 0.5.")
        if param.kind is int and float(step) != int(step):
            raise _FieldError(f"{where}.step", f"{step} must be a whole number: {param.name} is an integer.")
    elif param.kind is int:
        step = 1
    return SearchRange(float(low), float(high), log, float(step) if step is not None else None)
