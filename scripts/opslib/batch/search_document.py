"""The search document (docs/search.md), stored at `search/<batch>.json` and written beside the report:
per (strategy, symbol) study, the trials (parameters, objective, trades, state), the convergence (best
objective after each trial), Optuna's parameter importances, the best trials with their deflated Sharpe
ratio computed from the number of trials actually run, and each parameter's range explored vs allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from backtesting_modules.validation import ValidationError, deflated_sharpe

from .validation_scan import per_period_sharpe

if TYPE_CHECKING:
    from .search import SearchDriver
    from .search_sampler import SearchStudy

SEARCH_VERSION = 1
BEST_SHOWN = 5  # best trials the document details (deflated Sharpe, parameters)


def compute_search_document(driver: SearchDriver) -> dict[str, Any]:
    spec = driver.spec
    validated = spec.validation.enabled
    objective = (
        f"{spec.ranking.metric}, the mean over {len(driver.windows)} out-of-sample test window(s) "
        f"({spec.validation.kind.value})"
        if validated
        else f"{spec.ranking.metric} on all the bars, in sample (validation: none)"
    )
    return {
        "version": SEARCH_VERSION,
        "batch_id": driver.batch,
        "metric": spec.ranking.metric,
        "maximize": next(iter(driver.studies.values())).maximize,
        "objective": objective,
        "out_of_sample": validated,
        "windows": [list(w) if w else None for w in driver.windows],
        "min_trades": spec.ranking.min_trades,
        "returns_period": spec.validation.returns_period,
        "waves": driver.waves_told,
        "studies": [_study(driver, key, study) for key, study in driver.studies.items()],
    }


def _study(driver: SearchDriver, key: tuple[str, str], study: SearchStudy) -> dict[str, Any]:
    counts = {state: 0 for state in ("complete", "few_trades", "failed")}
    for trial in study.trials:
        counts[trial.state] = counts.get(trial.state, 0) + 1
    stopped = "patience" if study.patience_spent and study.budget_left else "budget"
    returns = {n: np.concatenate(parts) for n, parts in driver.returns[key].items() if parts}
    return {
        "strategy": study.strategy.name,
        "symbol": study.symbol,
        "method": study.search.method.value,
        "seed": study.search.seed,
        "sampler_seed": study.seed,
        "budget": study.search.trials,
        "trials_run": len(study.trials),
        "pruned_by_constraints": study.pruned,
        "states": counts,
        "waves": study.waves,
        "stopped": stopped,
        "sampler_seconds": round(study.sampler_s, 3),
        "best": _best(study, returns),
        "convergence": study.best_by_trial,
        "importances": study.importances(),
        "ranges": _ranges(study),
        "trials": [t.to_json() for t in study.trials],
    }


def _best(study: SearchStudy, returns: dict[int, np.ndarray]) -> list[dict[str, Any]]:
    """The best trials by objective, each with its deflated Sharpe ratio: N = every trial that ran, V the
    variance of the completed trials' per-period Sharpe ratios."""
    done = [t for t in study.trials if t.state == "complete" and t.number in returns]
    matrix = np.column_stack([returns[t.number] for t in done]) if done else np.zeros((0, 0))
    sharpes = per_period_sharpe(np.nan_to_num(matrix)) if done else np.zeros(0)
    variance = float(np.var(sharpes, ddof=1)) if sharpes.size > 1 else 0.0
    out = []
    for trial in study.best_trials(BEST_SHOWN):
        entry: dict[str, Any] = trial.to_json()
        entry["deflated_sharpe"] = _deflated(returns.get(trial.number), variance, len(study.trials))
        out.append(entry)
    return out


def _deflated(series: np.ndarray | None, variance: float, trials: int) -> dict[str, Any]:
    if series is None:
        return {"probability": None, "why": "no per-period returns were kept"}
    try:
        return deflated_sharpe(np.nan_to_num(series), (variance, max(1, trials))).to_dict()
    except ValidationError as exc:
        return {"probability": None, "why": str(exc)}


def _ranges(study: SearchStudy) -> dict[str, dict[str, Any]]:
    """Per searched parameter: the range allowed, the range the trials explored, the best trial's value."""
    best = study.best_trials(1)
    out = {}
    for name, space in study.search.space:
        values = [float(t.params[name]) for t in study.trials if name in t.params]
        entry: dict[str, Any] = {"allowed": [space.low, space.high], "log": space.log}
        if values:
            low, high = min(values), max(values)
            entry["explored"] = [low, high]
            span = space.high - space.low
            entry["explored_share"] = (high - low) / span if span > 0 else 1.0
        if best:
            entry["best"] = best[0].params.get(name)
        out[name] = entry
    return out
