"""Bad batch specs through `scripts/run_batch.py --target aws` against a deployed (emulated) stack.

Every case exits with status 2, its message names the field path and the fix, and nothing reaches the
stack: no queue message, no table item, no object, no report folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.badinput.support import DeployedStack, spec_text, write
from tests.script_loader import load_script, run_main

run_batch = load_script("run_batch")
SMA = "SMA_Crossover"

# (id, spec file text or None for no file, the field path named, the fix named)
CASES = [
    ("missing-field", spec_text(strategies=None), "strategies: is required", "add it"),
    ("wrong-type", spec_text(symbols="KRW-BTC"), "symbols: expected a list", "such as [KRW-BTC, KRW-ETH]"),
    ("unknown-strategy", spec_text(strategies=[{"name": "SMA_Crosover"}]), "strategies[0].name", f"'{SMA}'?"),
    (
        "unknown-top-level-key",
        spec_text(strategy=[{"name": SMA}]),
        "strategy: unknown key",
        "Did you mean 'strategies'?",
    ),
    (
        "range-start-after-stop",
        spec_text(strategies=[{"name": SMA, "grid": {"fast": "50:5:5"}}]),
        "strategies[0].grid.fast",
        "with start <= stop",
    ),
    (
        "range-not-three-parts",
        spec_text(strategies=[{"name": SMA, "grid": {"fast": "5:50"}}]),
        "strategies[0].grid.fast",
        "write e.g. '5:50:5' (stop inclusive)",
    ),
    (
        "range-with-billions-of-values",
        spec_text(strategies=[{"name": SMA, "grid": {"fast": "1:1e12:1"}}]),
        "strategies[0].grid.fast",
        "use a larger step",
    ),
    (
        "grid-value-outside-range",
        spec_text(strategies=[{"name": SMA, "grid": {"fast": [1, 5]}}]),
        "strategies[0].grid.fast",
        "choose a value in that range",
    ),
    (
        "grid-and-params-overlap",
        spec_text(strategies=[{"name": SMA, "grid": {"fast": [5]}, "params": {"fast": 5}}]),
        "strategies[0].grid.fast",
        "keep it in one of grid or params",
    ),
    (
        "grid-far-beyond-the-limit",
        spec_text(
            strategies=[{"name": SMA, "grid": {"fast": "2:500:1", "slow": "3:500:1"}}],
            limits={"max_backtests": 1000},
        ),
        "strategies[0].grid: has 248,502 combinations × 2 run(s)",
        "raise limits.max_backtests",
    ),
    (
        "grid-beyond-the-limit",
        spec_text(limits={"max_backtests": 5}),
        "limits.max_backtests: the batch asks for 12 backtests, above the limit of 5",
        "shrink the grids",
    ),
    ("bad-ranking-metric", spec_text(ranking={"metric": "sharp"}), "ranking.metric", "'sharpe'?"),
    ("bad-data-source", spec_text(data={"source": "ftp"}), "data.source", "synthetic, files, s3, exchange"),
    (
        "calendar-frequency",
        spec_text(data={"source": "synthetic", "freq": "1M"}),
        "data.freq",
        "write e.g. 1h, 4h, 1D or 15min",
    ),
    (
        "exchange-timeframe",
        spec_text(
            data={"source": "exchange", "exchange": "upbit", "since": "2024-01-01", "timeframe": "1mo"}
        ),
        "data.timeframe",
        "write e.g. 1m, 15m, 1h",
    ),
    (
        "config-out-of-range",
        spec_text(config={"stop_loss_pct": 2}),
        "config.stop_loss_pct",
        "within that range",
    ),
    (
        "config-wrong-type-deep",
        spec_text(config={"filters": {"min_price": "cheap"}}),
        "config.filters",
        "a value of the wrong type",
    ),
    (
        "gap-policy",
        spec_text(data={"source": "files", "pattern": "data/{symbol}_1h.csv", "gaps": "sometimes"}),
        "data.gaps: 'sometimes' is not a gap policy",
        "use keep (leave missing bars out) or fill",
    ),
    (
        "unknown-market-rules",
        spec_text(config={"market_rules": "upbit_krv"}),
        "config.market_rules",
        "Did you mean 'upbit_krw'?",
    ),
    (
        "removed-config-field",
        spec_text(config={"technical_indicators": {"rsi": 14}}),
        "config.technical_indicators",
        "indicator periods are each strategy's parameters",
    ),
    (
        "empty-window",
        spec_text(
            data={"source": "synthetic", "seed": 1, "periods": 500, "freq": "1h", "since": "2030-01-01"}
        ),
        "KRW-BTC: synthetic(seed=1): the window since 2030-01-01",
        "move the window into it",
    ),
    (
        "missing-bars-file",
        spec_text(data={"source": "files", "pattern": "data/nowhere/{symbol}_1h.csv"}),
        "KRW-BTC: bar file",
        "fetch it with `python scripts/fetch_ohlcv.py`",
    ),
    ("not-yaml", "name: [unclosed\n", "not valid YAML", "fix the syntax"),
    ("empty-file", "", "expected a mapping with keys name", "fix the YAML there"),
    ("no-file", None, "cannot read the batch spec", "check the path"),
]


@pytest.mark.parametrize(("text", "where", "fix"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_spec_exits_2_naming_field_and_fix_and_submits_nothing(
    deployed: DeployedStack,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str | None,
    where: str,
    fix: str,
) -> None:
    spec = tmp_path / "batch.yaml"
    if text is not None:
        write(spec, text)
    reports = tmp_path / "reports"
    code, out, err = run_main(run_batch, capsys, str(spec), "--target", "aws", "--reports", str(reports))
    assert code == 2, err
    assert where in err and fix in err, err
    assert out == ""
    assert not reports.exists()
    deployed.assert_nothing_submitted()
