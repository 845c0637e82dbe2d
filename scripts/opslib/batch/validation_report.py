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

# A validated group's columns, in report.md and report.html alike (report.md adds "same winner").
GROUP_HEADERS = (
    "strategy",
    "symbol",
    "IS Sharpe",
    "OOS Sharpe",
    "OOS return",
    "OOS max DD",
    "WF efficiency",
    "PBO",
    "deflated Sharpe",
)


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
            headers=[*GROUP_HEADERS, "same winner"],
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
    for chart in (render_equity_chart(groups[0]), render_logit_chart(groups[0])) if groups else ():
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


def render_equity_chart(group: Mapping[str, Any], points: int = 60) -> str:
    """The stitched out-of-sample equity of `group` (growth of 1), down-sampled, as a mermaid line."""
    equity = group["out_of_sample"].get("equity")
    if not equity or len(equity["values"]) < 2:
        return ""
    values, starts = equity["values"], equity["starts"]
    step = max(1, math.ceil(len(values) / points))
    picked = list(range(0, len(values), step))
    if picked[-1] != len(values) - 1:
        picked.append(len(values) - 1)
    labels = ", ".join(f'"{starts[i][:10]}"' for i in picked)
    return "\n".join(
        [
            "### Out-of-sample equity",
            "",
            f"{group['strategy']} on {group['symbol']}: the fold winners, each on its test window, one after "
            "another (growth of 1).",
            "",
            "```mermaid",
            "xychart-beta",
            f'    title "{group["strategy"]} {group["symbol"]}: stitched out-of-sample equity"',
            f"    x-axis [{labels}]",
            '    y-axis "growth of 1"',
            f"    line [{', '.join(f'{values[i]:.4f}' for i in picked)}]",
            "```",
        ]
    )


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


def validation_headline(document: dict[str, Any]) -> dict[str, Any]:
    """What `run_batch.py --json` says of a validated sweep: per strategy and symbol the out-of-sample
    Sharpe and return, walk-forward efficiency, PBO and deflated Sharpe; and the batch ids."""
    return {
        "test_batch_id": document.get("test_batch_id"),
        "folds": len(document["folds"]),
        "groups": [
            {
                "strategy": g["strategy"],
                "symbol": g["symbol"],
                "trials": g["trials"],
                "is_sharpe": g["in_sample"].get("sharpe"),
                "oos_sharpe": g["out_of_sample"].get("sharpe"),
                "oos_return": g["out_of_sample"].get("total_return"),
                "walk_forward_efficiency": g["walk_forward_efficiency"],
                "pbo": g["pbo"],
                "deflated_sharpe": g["deflated_sharpe"],
            }
            for g in document["groups"]
        ],
    }


def render_validation_line(headline: dict[str, Any]) -> str:
    """One line for the terminal: the pair best out of sample, and how far to trust it."""
    groups = [g for g in headline["groups"] if g["oos_sharpe"] is not None]
    if not groups:
        return "out of sample: no winner ran (see the report)"
    best = max(groups, key=lambda g: g["oos_sharpe"])
    pbo, dsr = best["pbo"], best["deflated_sharpe"]
    return (
        f"out of sample ({headline['folds']} fold(s), batch {headline['test_batch_id']}): best "
        f"{best['strategy']} {best['symbol']}, Sharpe {best['oos_sharpe']:.2f} out of sample against "
        f"{best['is_sharpe'] or 0:.2f} in sample, PBO {'–' if pbo is None else f'{pbo:.0%}'}, "
        f"deflated Sharpe {'–' if dsr is None else f'{dsr:.0%}'}"
    )
