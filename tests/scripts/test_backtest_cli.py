"""scripts/backtest.py: single runs, sweeps, JSON output, reports and usage errors (exit status 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.script_loader import load_script, run_main

cli = load_script("backtest")
BASE = ["--synthetic", "3", "--periods", "1500", "--config", "filters=none"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_main(cli, capsys, *args)


def test_single_run_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, *BASE, "--strategy", "SMA_Crossover", "--param", "fast=5", "--param", "slow=20", "--json"
    )
    assert code == 0
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["strategy"] == "SMA_Crossover"
    assert doc["params"] == {"fast": 5, "slow": 20}
    assert doc["metrics"]["trades"] == len(doc["trades"])
    assert doc["run"]["synthetic"] is True


def test_sweep_json_and_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "sweep.md"
    code, out, _ = run(
        capsys,
        *BASE,
        "--strategy",
        "SMA_Crossover",
        "--grid",
        "fast=5:15:5",
        "--grid",
        "slow=10,20",
        "--rank",
        "total_return",
        "--json",
        "--report",
        str(report),
    )
    assert code == 0
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["combinations"] == 4 and doc["skipped"] == 2
    returns = [row["total_return"] for row in doc["rows"]]
    assert returns == sorted(returns, reverse=True)
    text = report.read_text()
    assert "synthetic data" in text and "ranked by **total_return**" in text


def test_config_none_and_fill(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        *BASE,
        "--strategy",
        "SMA_Crossover",
        "--config",
        "stop_loss_pct=none",
        "--fill",
        "close",
        "--json",
    )
    assert code == 0
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["run"]["fill"] == "close"
    assert all(t["exit_reason"] != "STOP_LOSS" for t in doc["trades"])


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *BASE, "--strategy", "Dynamic_RSI_MACD")
    assert code == 0
    assert "| metric" in out and "sharpe" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "SMA_Crosover"], "Did you mean 'SMA_Crossover'"),
        (["--strategy", "SMA_Crossover", "--param", "fats=3"], "Did you mean 'fast'"),
        (["--strategy", "SMA_Crossover", "--param", "fast"], "--param 'fast': expected NAME=VALUE"),
        (["--strategy", "SMA_Crossover", "--grid", "fast=9:1:1"], "need start <= stop"),
        (["--strategy", "SMA_Crossover", "--grid", "fast=a,b"], "values must be numbers"),
        (["--strategy", "SMA_Crossover", "--config", "stop_los=0.1"], "Did you mean 'stop_loss_pct'"),
        (["--strategy", "SMA_Crossover", "--config", "commission_rate=0.5"], "commission_rate"),
        (["--strategy", "SMA_Crossover", "--grid", "fast=5", "--rank", "sharp"], "Did you mean 'sharpe'"),
        (["--strategy", "SMA_Crossover", "--top", "0"], "--top 0"),
        (["--strategy", "SMA_Crossover", "--timeframe", "1M"], "--timeframe '1M': not a bar interval"),
        (["--strategy", "SMA_Crossover", "--since", "2030-01-01"], "the data runs from 2021-01-01 00:00"),
        (["--strategy", "SMA_Crossover", "--since", "yesterday"], "since"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = run(capsys, *BASE, *args)
    assert code == 2
    assert message in err


@pytest.mark.parametrize(
    ("gaps", "bars", "note"),
    [
        (
            "keep",
            995,
            "Bars: window 2024-01-02 to (end) (UTC, end excluded); 5 missing bar(s), longest run 5, left out",
        ),
        (
            "fill",
            1000,
            "5 missing bar(s), longest run 5, filled at the previous close with zero volume (gaps: fill)",
        ),
    ],
)
def test_window_and_gap_policy_are_applied_and_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, gaps: str, bars: int, note: str
) -> None:
    import pandas as pd

    from backtesting_modules.data import synthetic_bars

    frame = synthetic_bars("KRW-ETH", start="2024-01-01", periods=1024, freq="1h", seed=5)
    frame = frame.drop(frame.index[500:505])
    path = tmp_path / "KRW-ETH_1h.csv"
    out = frame.reset_index()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False)
    report = tmp_path / "report.md"
    args = ["--data", str(path), "--since", "2024-01-02", "--gaps", gaps, "--config", "filters=none"]
    code, out_text, _ = run(
        capsys, *args, "--strategy", "SMA_Crossover", "--json", "--report", str(report), "--timeframe", "1h"
    )
    assert code == 0
    doc = json.loads(out_text.strip().splitlines()[-1])
    assert doc["run"]["n_bars"] == bars
    assert pd.Timestamp(doc["run"]["start"]) == pd.Timestamp("2024-01-02", tz="UTC")
    assert any(note in n for n in doc["run"]["notes"])
    assert note in report.read_text(encoding="utf-8")


def test_missing_data_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "--data", str(tmp_path / "nope.csv"), "--strategy", "SMA_Crossover")
    assert code == 2
    assert "nope.csv" in err


def test_missing_required_argument_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--synthetic", "1")
    assert code == 2
    assert "--strategy" in err


def test_timezone_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "tz.md"
    code, out, _ = run(
        capsys,
        *BASE,
        "--strategy",
        "SMA_Crossover",
        "--timezone",
        "--gate",
        "makenaide",
        "--json",
        "--report",
        str(report),
    )
    assert code == 0
    doc = json.loads(out.strip().splitlines()[-1])
    assert len(doc["by_hour_local"]) == 24
    traded = {row["hour"] for row in doc["by_hour_local"] if row["trades"] > 0}
    assert traded <= {2, 9, 15, 18, 21, 23}
    assert doc["ungated_metrics"]["trades"] >= doc["metrics"]["trades"]
    assert "## Gated against ungated" in report.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timezone", "--grid", "fast=5,10"], "use --param, not --grid"),
        (["--timezone", "--freq", "1D", "--periods", "400"], "intraday bars"),
        (["--timezone", "--min-activity", "150"], "min_activity=150"),
    ],
)
def test_timezone_usage_errors(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = run(capsys, *BASE, "--strategy", "SMA_Crossover", *args)
    assert code == 2
    assert message in err


def test_png_needs_matplotlib_or_writes_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "equity.png"
    code, _, err = run(capsys, *BASE, "--strategy", "SMA_Crossover", "--png", str(png))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert code == 2 and "pip install matplotlib" in err
    else:
        assert code == 0 and png.stat().st_size > 0


def test_a_sweep_is_validated_on_a_holdout_by_default_and_walk_forward_when_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    grid = ["--strategy", "SMA_Crossover", "--grid", "fast=5:30:5", "--grid", "slow=40:120:40", "--json"]
    code, out, _ = run(capsys, "--synthetic", "3", "--periods", "4000", "--config", "filters=none", *grid)
    doc = json.loads(out.strip().splitlines()[-1])["validation"]
    assert code == 0 and doc["validation"]["holdout"]["fraction"] == 0.25 and len(doc["folds"]) == 1
    report = tmp_path / "wf.md"
    code, out, _ = run(
        capsys, "--synthetic", "3", "--periods", "4000", "--config", "filters=none", *grid,
        "--walk-forward", "folds=3,train=60d,test=20d,gap=24", "--min-trades", "5", "--report", str(report),
    )  # fmt: skip
    doc = json.loads(out.strip().splitlines()[-1])["validation"]
    assert code == 0 and [f["number"] for f in doc["folds"]] == [1, 2, 3]
    assert all(f["gap_bars"] == 24 for f in doc["folds"])
    (group,) = doc["groups"]
    # 3 test windows of 20 days, stitched: 60 days, and the partial days at their edges.
    assert group["trials"] == 3 * 18 and 60 <= group["out_of_sample"]["periods"] <= 63
    text = report.read_text(encoding="utf-8")
    assert text.index("## Out of sample") < text.index("in sample, not validated")
    code, out, _ = run(capsys, "--synthetic", "3", "--periods", "4000", "--config", "filters=none", *grid,
                       "--no-validation")  # fmt: skip
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["validation"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--walk-forward", "folds=3,train=60d"], "--walk-forward 'folds=3,train=60d': test missing"),
        (["--walk-forward", "folds=3,train=60d,test=20d,speed=2"], "'speed=2' is not folds=N"),
        (["--walk-forward", "folds=30,train=60d,test=20d"], "validation.walk_forward"),
        (["--holdout", "1.5"], "--holdout: validation.holdout.fraction: 1.5"),
        (["--walk-forward", "folds=2,train=10,test=20d"], "warm-up"),
    ],
)
def test_a_validation_that_cannot_run_exits_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    grid = ["--strategy", "SMA_Crossover", "--grid", "fast=5:30:5", "--grid", "slow=40:120:40"]
    code, _, err = run(
        capsys, "--synthetic", "3", "--periods", "4000", "--config", "filters=none", *grid, *args
    )
    assert code == 2 and message in err, err
