"""How much of a parameter sweep's winner is luck: the pure statistics of validation.

- folds: `WalkForward`, `Holdout`, `Fold`, `plan_folds`, `parse_length` (train/test windows over the bars)
- probability of backtest overfitting: `BlockStats`, `compute_pbo`, `PBOResult` (Bailey, Borwein, López de
  Prado, Zhu 2017)
- deflated Sharpe ratio: `expected_max_sharpe`, `probabilistic_sharpe`, `deflated_sharpe`,
  `DeflatedSharpeResult` (Bailey, López de Prado 2014)
- `ValidationError`, the package's error (a `ConfigError`)

Formulas, conventions and sources: docs/validation.md.
"""

from .deflated import DeflatedSharpeResult, deflated_sharpe, expected_max_sharpe, probabilistic_sharpe
from .folds import Fold, FoldDict, Holdout, ValidationError, WalkForward, parse_length, plan_folds
from .pbo import BlockStats, PBOResult, compute_pbo

__all__ = [
    "BlockStats",
    "DeflatedSharpeResult",
    "Fold",
    "FoldDict",
    "Holdout",
    "PBOResult",
    "ValidationError",
    "WalkForward",
    "compute_pbo",
    "deflated_sharpe",
    "expected_max_sharpe",
    "parse_length",
    "plan_folds",
    "probabilistic_sharpe",
]
