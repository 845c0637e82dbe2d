"""The search section of a report (docs/search.md): per (strategy, symbol) study, what the objective was
and how far to trust the best trials (their deflated Sharpe ratio from the number of trials run), the
convergence chart (best objective by trial), Optuna's parameter importances and the ranges explored vs
allowed. `search_headline` is the one-line answer the CLI and summary.json carry."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tabulate import tabulate

CHART_POINTS = 60  # at most this many points of a convergence chart


def render_search(document: Mapping[str, Any]) -> str:
    lines = [
        "## Search",
        "",
        f"Objective: **{document['objective']}**; trials with fewer than {document['min_trades']} trades are "
        "not ranked. The deflated Sharpe ratio of a best trial counts every trial that ran "
        "(Bailey & López de Prado): the probability that its Sharpe ratio beats the best of as many trials "
        "of no skill.",
    ]
    if not document["out_of_sample"]:
        lines += [
            "",
            "**In sample only** (`validation: none`): the best trials were chosen and scored on the same "
            "bars; add a `validation:` section to score the trials out of sample.",
        ]
    for study in document["studies"]:
        lines += ["", render_study(study, document)]
    return "\n".join(lines) + "\n"


def render_study(study: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    states = study["states"]
    head = [
        f"### {study['strategy']} on {study['symbol']}: {study['method']}, seed {study['seed']}",
        "",
        f"{study['trials_run']:,} of {study['budget']:,} trials run in {study['waves']} waves "
        f"(stopped by {study['stopped']}); {states.get('complete', 0):,} scored, "
        f"{states.get('few_trades', 0):,} with too few trades, {states.get('failed', 0):,} failed; "
        f"{study['pruned_by_constraints']:,} proposals rejected by the strategy's constraints (not run, "
        f"not counted). The sampler took {study.get('sampler_seconds', 0.0):.1f} s of the driver's time.",
    ]
    best = study["best"]
    if not best:
        return "\n".join([*head, "", "No trial was scored: nothing to rank (see the states above)."])
    parts = [*head, "", "Best trials:", "", _best_table(best, document["metric"])]
    parts += ["", render_convergence(study, document)]
    importances = study.get("importances") or {}
    parts += ["", _ranges_table(study["ranges"], importances)]
    return "\n".join(parts)


def _best_table(best: list[Mapping[str, Any]], metric: str) -> str:
    rows = []
    for trial in best:
        dsr = trial.get("deflated_sharpe") or {}
        rows.append(
            [
                trial["trial"],
                _number(trial.get("objective"), 3),
                ", ".join(_number(v, 3) for v in trial.get("folds", [])) or "–",
                _whole(trial.get("trades")),
                _percent(dsr.get("probability")),
                _params(trial["params"]),
            ]
        )
    headers = ["trial", metric, f"{metric} per window", "trades", "deflated Sharpe", "parameters"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def render_convergence(study: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    """The best objective after each trial, as a mermaid line chart (at most CHART_POINTS points)."""
    series = [(i + 1, v) for i, v in enumerate(study["convergence"]) if v is not None]
    if len(series) < 2:
        return "Convergence: fewer than two scored trials, no chart."
    step = max(1, math.ceil(len(series) / CHART_POINTS))
    picked = series[::step]
    if picked[-1] != series[-1]:
        picked.append(series[-1])
    return "\n".join(
        [
            f"Convergence: the best {document['metric']} after each trial.",
            "",
            "```mermaid",
            "xychart-beta",
            f'    title "{study["strategy"]} {study["symbol"]}: best {document["metric"]} by trial"',
            f"    x-axis [{', '.join(str(n) for n, _ in picked)}]",
            f'    y-axis "{document["metric"]}"',
            f"    line [{', '.join(f'{v:.4f}' for _, v in picked)}]",
            "```",
        ]
    )


def _ranges_table(ranges: Mapping[str, Mapping[str, Any]], importances: Mapping[str, float]) -> str:
    order = sorted(ranges, key=lambda name: -importances.get(name, -1.0))
    rows = []
    for name in order:
        entry = ranges[name]
        explored = entry.get("explored")
        rows.append(
            [
                name,
                _percent(importances.get(name)) if importances else "–",
                f"{_number(entry['allowed'][0], 4)} … {_number(entry['allowed'][1], 4)}"
                + (" (log)" if entry.get("log") else ""),
                f"{_number(explored[0], 4)} … {_number(explored[1], 4)}" if explored else "–",
                _percent(entry.get("explored_share")),
                _number(entry.get("best"), 4),
            ]
        )
    headers = ["parameter", "importance", "allowed", "explored", "share explored", "best trial"]
    note = (
        "Parameters by importance (Optuna's default evaluator, PED-ANOVA, over the scored trials), with the "
        "range each was allowed and the range the trials explored:"
        if importances
        else "Parameters (no importances: fewer than two scored trials), allowed and explored ranges:"
    )
    return note + "\n\n" + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def search_headline(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per study, the best trial and how far to trust it: for the CLI, --json and summary.json."""
    out = []
    for study in document["studies"]:
        best = study["best"][0] if study["best"] else None
        out.append(
            {
                "strategy": study["strategy"],
                "symbol": study["symbol"],
                "trials": study["trials_run"],
                "waves": study["waves"],
                "objective": document["metric"]
                + (" (out of sample)" if document["out_of_sample"] else " (in sample)"),
                "best": None
                if best is None
                else {
                    "value": best.get("objective"),
                    "params": best["params"],
                    "deflated_sharpe": (best.get("deflated_sharpe") or {}).get("probability"),
                },
            }
        )
    return out


def render_search_line(headline: list[Mapping[str, Any]]) -> str:
    lines = []
    for entry in headline:
        best = entry["best"]
        if best is None:
            lines.append(f"{entry['strategy']} on {entry['symbol']}: no trial scored of {entry['trials']}")
            continue
        lines.append(
            f"best of {entry['trials']} trials, {entry['strategy']} on {entry['symbol']}: "
            f"{entry['objective']} {_number(best['value'], 3)}, deflated Sharpe "
            f"{_percent(best['deflated_sharpe'])} ({_short_params(best['params'])})"
        )
    return "\n".join(lines)


def _short_params(params: Mapping[str, Any], shown: int = 5) -> str:
    """The first `shown` parameters, and how many more the search document lists."""
    names = list(params)
    text = _params({name: params[name] for name in names[:shown]})
    return text if len(names) <= shown else f"{text}, … {len(names) - shown} more in search.json"


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_number(v, 4) if isinstance(v, float) else v}" for k, v in params.items())


def _number(value: Any, digits: int = 2) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) and math.isfinite(value) else "–"


def _whole(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) and math.isfinite(value) else "–"


def _percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) and math.isfinite(value) else "–"
