"""The `validation:` section and `ranking.min_trades`: defaults by job type, the canonical form round trip,
and every refusal naming the field, the value and what would fit."""

from __future__ import annotations

from typing import Any

import pytest

from backtesting_modules.jobs.spec import (
    DEFAULT_MIN_TRADES,
    JobType,
    SpecError,
    ValidationKind,
    parse_spec,
)
from backtesting_modules.validation import Holdout, WalkForward

BASE: dict[str, Any] = {
    "name": "v",
    "job_type": "PARAMETER_OPTIMIZATION",
    "symbols": ["KRW-BTC"],
    "data": {"source": "synthetic", "seed": 1, "periods": 500, "freq": "1h"},
    "strategies": [{"name": "SMA_Crossover", "grid": {"fast": [5, 10], "slow": [20, 30, 40]}}],
}


def spec_with(**changes: Any) -> Any:
    return parse_spec({**BASE, **changes})


def test_a_sweep_defaults_to_a_holdout_of_the_last_quarter_and_30_trades() -> None:
    spec = spec_with()
    assert spec.validation.kind is ValidationKind.HOLDOUT and spec.validation.fraction == 0.25
    assert spec.validation.scheme() == Holdout(fraction=0.25, gap=0)
    assert spec.ranking.min_trades == DEFAULT_MIN_TRADES == 30
    # The default number of winners is clamped to ranking.top and to each grid.
    assert spec.validation.winners(6, 10) == 5 and spec.validation.winners(3, 10) == 3
    assert spec.validation.winners(6, 2) == 2


@pytest.mark.parametrize("job_type", ["SINGLE_STRATEGY", "MULTI_STRATEGY", "TIMEZONE_ANALYSIS"])
def test_other_job_types_have_no_validation(job_type: str) -> None:
    strategies = [{"name": "SMA_Crossover"}] if job_type != "MULTI_STRATEGY" else BASE["strategies"]
    spec = spec_with(job_type=job_type, strategies=strategies)
    assert not spec.validation.enabled and spec.validation.scheme() is None


@pytest.mark.parametrize(
    ("section", "scheme"),
    [
        ("none", None),
        ({"holdout": {"period": "14d", "gap": 24}}, Holdout(period="14d", gap=24)),
        (
            {"walk_forward": {"folds": 3, "train": "30d", "test": "7d", "gap": "1d"}, "top_k": 2},
            WalkForward(3, "30d", "7d", anchored=False, gap="1d"),
        ),
        (
            {"walk_forward": {"folds": 2, "test": 200, "anchored": True}},
            WalkForward(2, None, 200, anchored=True),
        ),
    ],
)
def test_sections_parse_and_round_trip_through_the_canonical_form(section: Any, scheme: Any) -> None:
    spec = spec_with(validation=section)
    assert spec.validation.scheme() == scheme
    again = spec_with(validation=spec.to_dict()["validation"])
    assert again.validation == spec.validation
    assert again.to_dict() == spec.to_dict()


@pytest.mark.parametrize(
    ("section", "ranking", "message"),
    [
        (
            {"holdout": {"fraction": 1.5}},
            {},
            "validation.holdout.fraction: 1.5 must be a number between 0 and 1",
        ),
        ({"holdout": {"fraction": 0.2, "period": "9d"}}, {}, "validation.holdout: give one of fraction"),
        ({"holdout": {}, "walk_forward": {"folds": 2, "test": 5}}, {}, "give one of holdout or walk_forward"),
        (
            {"walk_forward": {"folds": 2, "test": 5}},
            {},
            "validation.walk_forward.train: is required for a rolling",
        ),
        (
            {"walk_forward": {"folds": 0, "train": 5, "test": 5}},
            {},
            "validation.walk_forward.folds: 0 must be",
        ),
        ({"walk_forward": {"folds": 2, "train": "3M", "test": 5}}, {}, "validation.walk_forward.train: '3M'"),
        ({"walk_forward": {"folds": 2, "train": 5, "test": 5, "anchored": "yes"}}, {}, "must be true"),
        ({"top_k": 7}, {}, "validation.top_k: 7 is larger than the grid of strategies[0] (SMA_Crossover)"),
        ({"top_k": 4}, {"top": 3}, "validation.top_k: 4 is above ranking.top=3"),
        ({"pbo_blocks": 7}, {}, "validation.pbo_blocks: 7 must be an even number from 4 to 20"),
        ({"pbo_blocks": 22}, {}, "validation.pbo_blocks: 22 must be an even number from 4 to 20"),
        ({"returns_period": "1y"}, {}, "validation.returns_period: '1y'"),
        ({"holdouts": {}}, {}, "Did you mean 'holdout'?"),
        ("sometimes", {}, "validation: expected none, or a mapping with holdout or walk_forward"),
        ({}, {"min_trades": -1}, "ranking.min_trades: -1 must be an integer >= 0"),
    ],
)
def test_bad_sections_are_refused_naming_the_field(
    section: Any, ranking: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        spec_with(validation=section, ranking={"metric": "sharpe", **ranking})
    assert message in str(caught.value)


def test_validation_belongs_to_sweeps_only() -> None:
    with pytest.raises(
        SpecError, match="validation: validates the winners of a parameter sweep; a SINGLE_STRATEGY"
    ):
        spec_with(
            job_type="SINGLE_STRATEGY", strategies=[{"name": "SMA_Crossover"}], validation={"holdout": {}}
        )
    assert spec_with(job_type=JobType.SINGLE_STRATEGY.value, strategies=[{"name": "SMA_Crossover"}],
                     validation="none").validation.kind is ValidationKind.NONE  # fmt: skip
