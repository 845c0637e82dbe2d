"""The batch spec: YAML (`batches/*.yaml`) parsed into a frozen `BatchSpec`, validated before sending.

The public face of the spec, in three modules that import one another in one direction only:

- `spec_model`: the spec's format as data (`BatchSpec`, `StrategySpec`, `DataSpec`, `Ranking`, `JobType`,
  `Priority`, `DataSource`, `JobError`, `SpecError`, the `search:` of a strategy: `SearchSpec`,
  `SearchRange`, `SearchMethod`), the grid semantics (lists or ``"start:stop:step"``
  with an inclusive stop, expanded in the engine's order: `combo_table`, `valid_positions`), the count of
  backtests a spec asks for (`count_backtests`, `estimate_bars`) and the spec's content hash (`spec_hash`,
  `data_hash`);
- `spec_parser`: `load_spec` (the only I/O), `parse_spec` and `parse_range`: validation section by
  section, where every error names the field path and the fix;
- `spec_fields`: the parser's single-field checks; `spec_validation`: the `validation:` section.

Import from here; the split is an implementation detail.
"""

from __future__ import annotations

from .spec_model import (
    DEFAULT_BARS_ESTIMATE,
    DEFAULT_MAX_BACKTESTS,
    DEFAULT_MIN_TRADES,
    DEFAULT_PBO_BLOCKS,
    DEFAULT_RANKING_METRIC,
    DEFAULT_TOP_K,
    DEFAULT_TOP_N,
    MAX_AXIS_VALUES,
    NO_VALIDATION,
    BatchSpec,
    DataSource,
    DataSpec,
    GridAxes,
    JobError,
    JobType,
    Pairs,
    Priority,
    Ranking,
    Scalar,
    SearchMethod,
    SearchRange,
    SearchSpec,
    SpecError,
    StrategySpec,
    ValidationKind,
    ValidationSpec,
    canonical_json,
    combo_table,
    count_backtests,
    count_combinations,
    data_hash,
    estimate_bars,
    sha256_hex,
    spec_hash,
    timeframe_delta,
    valid_positions,
)
from .spec_parser import load_spec, parse_range, parse_spec

__all__ = [
    "DEFAULT_BARS_ESTIMATE",
    "DEFAULT_MAX_BACKTESTS",
    "DEFAULT_MIN_TRADES",
    "DEFAULT_PBO_BLOCKS",
    "DEFAULT_RANKING_METRIC",
    "DEFAULT_TOP_K",
    "DEFAULT_TOP_N",
    "MAX_AXIS_VALUES",
    "NO_VALIDATION",
    "BatchSpec",
    "DataSource",
    "DataSpec",
    "GridAxes",
    "JobError",
    "JobType",
    "Pairs",
    "Priority",
    "Ranking",
    "Scalar",
    "SearchMethod",
    "SearchRange",
    "SearchSpec",
    "SpecError",
    "StrategySpec",
    "ValidationKind",
    "ValidationSpec",
    "canonical_json",
    "combo_table",
    "count_backtests",
    "count_combinations",
    "data_hash",
    "estimate_bars",
    "load_spec",
    "parse_range",
    "parse_spec",
    "sha256_hex",
    "spec_hash",
    "timeframe_delta",
    "valid_positions",
]
