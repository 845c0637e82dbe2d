"""The `validation:` section of a batch spec (docs/validation.md): how a sweep's winners are checked out of
sample. Parsed into `spec_model.ValidationSpec`; what needs the bars (do the folds fit the data, is a train
window longer than the strategy's warm-up, are there enough periods for the PBO blocks) is checked by the
driver once it has them, still before anything is sent.

    validation: none                                    # only when asked for
    validation: {holdout: {fraction: 0.25, gap: 0}}     # PARAMETER_OPTIMIZATION's default
    validation:
      walk_forward: {folds: 4, train: 180d, test: 30d, anchored: false, gap: 24}
      top_k: 5            # winners of each train sweep run on its test window
      pbo_blocks: 16      # S of the probability of backtest overfitting (even, 4-20; default 16,
                          # fewer when a train window has fewer returns periods)
      returns_period: 1d  # the period of the returns PBO and the deflated Sharpe are computed on

Lengths are a bar count or a duration (`90d`, `12w`, `36h`, `30m`: the timeframe spelling).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..validation import ValidationError, parse_length
from ..validation.pbo import MAX_BLOCKS, MIN_BLOCKS
from .spec_fields import _check_keys, _FieldError, _mapping, _nonnegative_int, _positive_int
from .spec_model import (
    NO_VALIDATION,
    JobType,
    Length,
    Ranking,
    StrategySpec,
    ValidationKind,
    ValidationSpec,
    count_combinations,
)

_KEYS = ("holdout", "walk_forward", "top_k", "pbo_blocks", "returns_period")
_HOLDOUT_KEYS = ("fraction", "period", "gap")
_WALK_FORWARD_KEYS = ("folds", "train", "test", "anchored", "gap")
DEFAULT = ValidationSpec()


def parse_validation(
    raw: Any, path: str, job_type: JobType, strategies: tuple[StrategySpec, ...], ranking: Ranking
) -> ValidationSpec:
    """The validation of a batch: `raw` is the section (None when absent: the job type's default)."""
    sweep = job_type is JobType.PARAMETER_OPTIMIZATION
    if raw is None:
        return DEFAULT if sweep else NO_VALIDATION
    if isinstance(raw, str) and raw.strip().lower() == "none":
        return NO_VALIDATION
    section = _mapping(raw, path, "none, or a mapping with holdout or walk_forward")
    _check_keys(section, _KEYS, path, ())
    if not sweep:
        raise _FieldError(
            path,
            f"validates the winners of a parameter sweep; a {job_type.value} batch has none: remove the "
            "section or set validation: none.",
        )
    splits = [k for k in ("holdout", "walk_forward") if k in section]
    if len(splits) > 1:
        raise _FieldError(path, "give one of holdout or walk_forward, not both.")
    kind = ValidationKind(splits[0]) if splits else ValidationKind.HOLDOUT
    split = _split(section.get(kind.value) or {}, f"{path}.{kind.value}", kind)
    spec = ValidationSpec(
        kind=kind,
        top_k=_positive_int(section["top_k"], f"{path}.top_k") if "top_k" in section else None,
        pbo_blocks=_pbo_blocks(section["pbo_blocks"], f"{path}.pbo_blocks")
        if "pbo_blocks" in section
        else None,
        returns_period=_duration(
            section.get("returns_period", DEFAULT.returns_period), f"{path}.returns_period"
        ),
        **split,
    )
    if spec.top_k is not None:  # the default is clamped to ranking.top and each grid instead
        _check_top_k(spec.top_k, path, strategies, ranking)
    return spec


def _split(raw: Any, path: str, kind: ValidationKind) -> dict[str, Any]:
    section = _mapping(raw, path, "a mapping")
    if kind is ValidationKind.HOLDOUT:
        _check_keys(section, _HOLDOUT_KEYS, path, ())
        return {**_holdout(section, path), "gap": _length(section.get("gap", 0), f"{path}.gap", zero=True)}
    _check_keys(section, _WALK_FORWARD_KEYS, path, ("folds", "test"))
    anchored = section.get("anchored", False)
    if not isinstance(anchored, bool):
        raise _FieldError(
            f"{path}.anchored", f"{anchored!r} must be true (expanding train) or false (rolling)."
        )
    if not anchored and "train" not in section:
        raise _FieldError(
            f"{path}.train", "is required for a rolling walk-forward (anchored: false); e.g. train: 180d."
        )
    return {
        "folds": _positive_int(section["folds"], f"{path}.folds"),
        "train": _length(section["train"], f"{path}.train") if "train" in section else None,
        "test": _length(section["test"], f"{path}.test"),
        "anchored": anchored,
        "gap": _length(section.get("gap", 0), f"{path}.gap", zero=True),
        "fraction": None,
    }


def _holdout(section: Mapping[str, Any], path: str) -> dict[str, Any]:
    if "fraction" in section and "period" in section:
        raise _FieldError(path, "give one of fraction (e.g. 0.25) or period (e.g. 90d), not both.")
    if "period" in section:
        return {"fraction": None, "period": _duration(section["period"], f"{path}.period")}
    fraction = section.get("fraction", DEFAULT.fraction)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise _FieldError(
            f"{path}.fraction",
            f"{fraction!r} must be a number between 0 and 1 (e.g. 0.25: the last quarter).",
        )
    return {"fraction": float(fraction), "period": None}


def _length(value: Any, path: str, *, zero: bool = False) -> Length:
    """A bar count (>= 1, or >= 0 with `zero`) or a duration such as 90d."""
    if isinstance(value, str):
        return _duration(value, path)
    return _nonnegative_int(value, path) if zero else _positive_int(value, path)


def _duration(value: Any, path: str) -> str:
    """A duration such as 90d (`validation.parse_length`, the folds' own reading of it)."""
    text = str(value).strip()
    try:
        parse_length(text, path)
    except ValidationError as exc:
        raise _FieldError(path, str(exc).removeprefix(f"{path}: ")) from exc
    return text


def _pbo_blocks(value: Any, path: str) -> int:
    blocks = _positive_int(value, path)
    if blocks % 2 or not MIN_BLOCKS <= blocks <= MAX_BLOCKS:
        raise _FieldError(
            path,
            f"{blocks} must be an even number from {MIN_BLOCKS} to {MAX_BLOCKS} (the returns are cut "
            f"into that many blocks and every half of them is tried); 16 is the usual choice.",
        )
    return blocks


def _check_top_k(top_k: int, path: str, strategies: tuple[StrategySpec, ...], ranking: Ranking) -> None:
    if top_k > ranking.top:
        raise _FieldError(
            f"{path}.top_k",
            f"{top_k} is above ranking.top={ranking.top}: winners are picked from each job's top "
            f"{ranking.top}; lower top_k or raise ranking.top.",
        )
    for i, item in enumerate(strategies):
        combinations = count_combinations(item)
        if top_k > combinations:
            raise _FieldError(
                f"{path}.top_k",
                f"{top_k} is larger than the grid of strategies[{i}] ({item.name}), which has "
                f"{combinations} valid combination(s): use top_k <= {combinations}.",
            )
