"""Digests: the top rows and aggregates merged across jobs equal those computed over all rows at once."""

from __future__ import annotations

import random

from backtesting_modules.jobs.results import compute_columns
from backtesting_modules.pipeline.digest import compute_digest, merge_groups, ranked


def _rows(n: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [
        {
            "strategy": rng.choice("AB"),
            "symbol": rng.choice(["X", "Y", "Z"]),
            "params": {"k": i},
            "metrics": {"sharpe": None if i % 7 == 0 else rng.uniform(-2, 3)},
            "extras": {},
        }
        for i in range(n)
    ]


def test_merged_digests_equal_one_digest_of_all_rows() -> None:
    parts = [_rows(50, seed) for seed in range(4)]
    everything = [r for part in parts for r in part]
    whole = compute_digest(compute_columns(everything), "sharpe", True, 10)
    assert whole["top"] == ranked(everything, "sharpe", True)[:10]
    digests = [compute_digest(compute_columns(part), "sharpe", True, 10) for part in parts]
    merged_top = sorted(
        (r for d in digests for r in d["top"]), key=lambda r: r["metrics"]["sharpe"], reverse=True
    )
    assert merged_top[:10] == whole["top"]
    for key in ("strategy", "symbol"):
        merged = merge_groups(digests, key, "sharpe", True)
        single = merge_groups([whole], key, "sharpe", True)
        assert [m[key] for m in merged] == [s[key] for s in single]
        for m, s in zip(merged, single, strict=True):
            assert m["backtests"] == s["backtests"] and m["best_sharpe"] == s["best_sharpe"]
            assert abs(m["mean_sharpe"] - s["mean_sharpe"]) < 1e-12


def test_lower_is_better_metric_keeps_the_minimum() -> None:
    rows = _rows(30, 9)
    digest = compute_digest(compute_columns(rows), "sharpe", False, 3)
    values = [r["metrics"]["sharpe"] for r in digest["top"]]
    assert values == sorted(values)
