"""The out-of-sample view a validated batch's report leads with (docs/validation.md): per strategy and
symbol the in-sample Sharpe of the fold winners beside their stitched out-of-sample results, walk-forward
efficiency, the probability of backtest overfitting and the deflated Sharpe ratio; every fold's winner; and
the logit distribution of the most promising pair as a chart. Formatting only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from tabulate import tabulate


def render_validation(document: Mapping[str, Any]) -> str:
    """The markdown section (see the module docstring)."""
    groups = sorted(document["groups"], key=_oos_sharpe, reverse=True)
    trials = sum(g["trials"] for g in groups)
    lines = [
        "## Out of sample",
        "",
        f"{_scheme(document)}. {trials:,} variants were tried in all (every fold's grid, every symbol); "
        f"winners need at least {document['ranking']['min_trades']} trades. In-sample figures are the fold "
        "winners' on their train windows; out-of-sample figures are the same parameter sets on the test "
        "windows that followed, stitched (what a trader re-optimising every fold would have had).",
        "",
        tabulate(
            [_group_row(g) for g in groups],
            headers=[
                "strategy",
                "symbol",
                "IS Sharpe",
                "OOS Sharpe",
                "OOS return",
                "OOS max DD",
                "WF efficiency",
                "PBO",
                "deflated Sharpe",
                "same winner",
            ],
            tablefmt="github",
            disable_numparse=True,
        ),
        "",
        _reading(groups),
        "",
        "### Winners of each fold",
        "",
        render_fold_winners(groups, document["folds"]),
    ]
    chart = render_logit_chart(groups[0]) if groups else ""
    if chart:
        lines += ["", chart]
    return "\n".join(lines) + "\n"


def _scheme(document: Mapping[str, Any]) -> str:
    spec = document["validation"]
    folds = document["folds"]
    if "walk_forward" in spec:
        wf = spec["walk_forward"]
        kind = "anchored" if wf.get("anchored") else "rolling"
        train = wf.get("train", "everything before")
        return (
            f"Walk-forward, {kind}: {len(folds)} folds, train {train}, test {wf['test']}, "
            f"gap {wf.get('gap', 0)}; returns per {document['returns_period']} for PBO "
            f"({document.get('pbo_blocks') or 'no'} blocks)"
        )
    fold = folds[0]
    return (
        f"Holdout: the sweep ran on {fold['train_start'][:10]} to {fold['train_stop'][:10]} "
        f"({fold['train_bars']:,} bars); its winners were then run on {fold['test_start'][:10]} to "
        f"{fold['test_stop'][:10]} ({fold['test_bars']:,} bars), which it never saw"
    )


def _oos_sharpe(group: Mapping[str, Any]) -> float:
    value = group["out_of_sample"].get("sharpe")
    return value if value is not None else -math.inf


def _group_row(group: Mapping[str, Any]) -> list[str]:
    stability = group["stability"]
    same = stability.get("same_winner_share")
    return [
        group["strategy"],
        group["symbol"],
        _number(group["in_sample"].get("sharpe")),
        _number(group["out_of_sample"].get("sharpe")),
        _percent(group["out_of_sample"].get("total_return")),
        _percent(group["out_of_sample"].get("max_drawdown")),
        _number(group.get("walk_forward_efficiency")),
        _percent(group.get("pbo"), digits=0),
        _percent(group.get("deflated_sharpe"), digits=0),
        f"{same:.0%} of {stability['folds']}" if same is not None else "–",
    ]


def _reading(groups: Sequence[Mapping[str, Any]]) -> str:
    """One sentence a trader can act on: the pair that held up best, and how far to trust it."""
    if not groups or groups[0]["out_of_sample"].get("sharpe") is None:
        return "No winner ran out of sample: nothing here is validated."
    best = groups[0]
    pbo, dsr = best.get("pbo"), best.get("deflated_sharpe")
    trust = []
    if pbo is not None:
        trust.append(f"its PBO is {pbo:.0%} ({'high: likely luck' if pbo >= 0.5 else 'below one half'})")
    if dsr is not None:
        trust.append(
            f"its deflated Sharpe is {dsr:.0%} ({'significant' if dsr >= 0.95 else 'not significant'} at 5 %)"
        )
    return (
        f"Best out of sample: {best['strategy']} on {best['symbol']}, Sharpe "
        f"{_number(best['out_of_sample']['sharpe'])} out of sample against "
        f"{_number(best['in_sample'].get('sharpe'))} in sample; " + "; ".join(trust) + "."
    )


def render_fold_winners(groups: Sequence[Mapping[str, Any]], folds: Sequence[Mapping[str, Any]]) -> str:
    windows = {f["number"]: f"{f['test_start'][:10]} to {f['test_stop'][:10]}" for f in folds}
    rows = []
    for group in groups:
        for entry in group["folds"]:
            winner = entry["winners"][0] if entry["winners"] else None
            ins = (winner or {}).get("in_sample") or {}
            oos = (winner or {}).get("out_of_sample") or {}
            dsr = ((winner or {}).get("deflated_sharpe") or {}).get("probability")
            rows.append(
                [
                    group["strategy"],
                    group["symbol"],
                    entry["fold"],
                    windows.get(entry["fold"], ""),
                    _params(winner["params"])
                    if winner
                    else f"none of {entry['combinations']} had enough trades",
                    _number(ins.get("sharpe")),
                    _number(oos.get("sharpe")),
                    _percent(oos.get("total_return")),
                    f"{_count(ins.get('trades'))} / {_count(oos.get('trades'))}",
                    _percent(dsr, digits=0),
                    _percent(entry["pbo"].get("pbo"), digits=0),
                ]
            )
    headers = [
        "strategy",
        "symbol",
        "fold",
        "test window",
        "winner",
        "IS Sharpe",
        "OOS Sharpe",
        "OOS return",
        "trades IS / OOS",
        "deflated Sharpe",
        "PBO",
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def render_logit_chart(group: Mapping[str, Any]) -> str:
    """The logit histogram of `group`'s first fold with a PBO, as a mermaid bar chart."""
    for entry in group["folds"]:
        histogram = entry["pbo"].get("logit_histogram")
        if not histogram:
            continue
        edges, counts = histogram["edges"], histogram["counts"]
        centres = ", ".join(f"{(a + b) / 2:.2f}" for a, b in itertools.pairwise(edges))
        title = (
            f"{group['strategy']} {group['symbol']}, fold {entry['fold']}: logit of the IS winner's OOS rank"
        )
        return "\n".join(
            [
                "### Probability of backtest overfitting",
                "",
                f"PBO {_percent(entry['pbo']['pbo'], digits=0)}: the share of the "
                f"{entry['pbo']['n_splits']:,} in-sample / out-of-sample splits of the train window where "
                "the in-sample winner ranked at or below the median out of sample (logit ≤ 0, left of "
                "zero below). Performance degradation: OOS Sharpe ≈ "
                f"{_number(entry['pbo'].get('slope'))} × IS Sharpe "
                f"+ {_number(entry['pbo'].get('intercept'))}.",
                "",
                "```mermaid",
                "xychart-beta",
                f'    title "{title}"',
                f"    x-axis [{centres}]",
                '    y-axis "splits"',
                f"    bar [{', '.join(str(int(c)) for c in counts)}]",
                "```",
            ]
        )
    return ""


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _number(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) and math.isfinite(value) else "–"


def _percent(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}%}" if isinstance(value, int | float) and math.isfinite(value) else "–"


def _count(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) and not pd.isna(value) else "–"
