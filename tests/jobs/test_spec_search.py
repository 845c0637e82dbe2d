"""The `search:` of a strategy entry: defaults from the strategy's Param ranges ("search everything" in one
line), named ranges and fixed parameters, the canonical form round trip, the budget against
limits.max_backtests, and every refusal naming the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from backtesting_modules.jobs.spec import SpecError, count_backtests, parse_spec
from backtesting_modules.jobs.spec_model import SearchMethod, SearchRange
from backtesting_modules.strategies import get_strategy

BASE: dict[str, Any] = {
    "name": "s",
    "job_type": "PARAMETER_OPTIMIZATION",
    "symbols": ["KRW-BTC", "KRW-ETH"],
    "data": {"source": "synthetic", "seed": 1, "periods": 500, "freq": "1h"},
}


def parsed(entry: dict[str, Any], **top: Any) -> Any:
    return parse_spec({**BASE, "strategies": [entry], **top})


def test_searching_everything_is_one_line_and_uses_each_params_range() -> None:
    spec = parsed({"name": "Hybrid_VCP_Momentum", "search": {"method": "tpe", "trials": 500}})
    (item,) = spec.strategies
    strategy = get_strategy("Hybrid_VCP_Momentum")
    assert item.grid == () and item.search is not None and item.search.method is SearchMethod.TPE
    assert [name for name, _ in item.search.space] == strategy.param_names and len(item.search.space) == 30
    for name, found in item.search.space:
        param = strategy.param(name)
        assert (found.low, found.high) == (param.low, param.high)
        assert found.step == (1.0 if param.kind is int else None)
    assert count_backtests(spec) == 2 * 500  # the budget, per symbol


def test_named_ranges_and_fixed_parameters() -> None:
    entry = {
        "name": "SMA_Crossover",
        "search": {
            "method": "cmaes",
            "trials": 50,
            "seed": 3,
            "wave": 8,
            "patience": 4,
            "space": {"fast": {"low": 5, "high": 40, "step": 5}, "slow": {"fixed": 120}},
        },
    }
    (item,) = parsed(entry).strategies
    assert item.params == (("slow", 120),)
    assert item.search.space == (("fast", SearchRange(5.0, 40.0, step=5.0)),)
    assert (item.search.seed, item.search.wave, item.search.patience) == (3, 8, 4)
    again = parse_spec({**BASE, "strategies": parsed(entry).to_dict()["strategies"]})
    assert again.strategies == parsed(entry).strategies


def tpe(trials: int = 5, **space: Any) -> dict[str, Any]:
    return {"search": {"method": "tpe", "trials": trials, **({"space": space} if space else {})}}


@pytest.mark.parametrize(
    ("entry", "top", "message"),
    [
        ({"search": {"method": "tpr", "trials": 5}}, {}, "search.method: 'tpr' is not one of tpe, cmaes"),
        ({"search": {"method": "tpe"}}, {}, "search.trials: is required"),
        (tpe(0), {}, "search.trials: 0 must be an integer >= 1"),
        (tpe(fats={}), {}, "Did you mean 'fast'?"),
        (tpe(fast={"low": 40, "high": 10}), {}, "low 40 is above high 10"),
        (tpe(fast={"low": 1}), {}, "outside [2, 500]"),
        (tpe(fast={"low": 5, "log": True, "step": 5}), {}, "step and a log scale"),
        (tpe(fast={"step": 0.5}), {}, "must be a whole number"),
        (tpe(fast={"fixed": 5, "low": 2}), {}, "give fixed alone"),
        ({**tpe(), "grid": {"fast": [5]}}, {}, "search a space or sweep a grid, not both"),
        ({**tpe(), "params": {"fast": 5}}, {}, None),
        ({**tpe(fast={}), "params": {"fast": 5}}, {}, "is also in params"),
        (tpe(fast={"fixed": 5}, slow={"fixed": 50}), {}, "searches no parameter"),
        ({"search": {"method": "random", "trials": 1_500_000}}, {}, "limits.max_backtests"),
        (tpe(), {"job_type": "MULTI_STRATEGY"}, "use job_type PARAMETER_OPTIMIZATION"),
    ],
)
def test_bad_searches_are_refused_naming_the_field(
    entry: dict[str, Any], top: dict[str, Any], message: str | None
) -> None:
    full = {"name": "SMA_Crossover", **entry}
    if message is None:  # a fixed parameter outside the space is fine
        assert parsed(full, **top).strategies[0].params == (("fast", 5),)
        return
    with pytest.raises(SpecError) as caught:
        parsed(full, **top)
    assert message in str(caught.value)


def test_a_batch_searches_or_sweeps_grids_not_both() -> None:
    with pytest.raises(SpecError, match=r"strategies\[1\]: sweeps a grid while strategies\[0\] searches"):
        parse_spec(
            {
                **BASE,
                "strategies": [
                    {"name": "SMA_Crossover", "search": {"method": "tpe", "trials": 10}},
                    {"name": "Donchian_Breakout", "grid": {"entry_period": [10, 20]}},
                ],
            }
        )
    searched = parsed({"name": "SMA_Crossover", "search": {"method": "random", "trials": 10}})
    assert searched.searches and not parsed({"name": "SMA_Crossover", "grid": {"fast": [5]}}).searches
