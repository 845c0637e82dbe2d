"""Bad command-line arguments of every script a person runs: exit status 2, a message naming the argument and
the fix, and nothing written (no report, no data folder, no AWS resource)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, ClassVar

import boto3
import ccxt
import pytest

from tests.badinput.support import spec_text, write
from tests.script_loader import load_script, run_main

backtest = load_script("backtest")
fetch_ohlcv = load_script("fetch_ohlcv")
run_batch = load_script("run_batch")
SYNTHETIC = [
    "--synthetic",
    "3",
    "--periods",
    "300",
    "--config",
    "filters=none",
    "--strategy",
    "SMA_Crossover",
]

# --- scripts/backtest.py -------------------------------------------------------------------------------

BACKTEST_CASES = [
    ("grid-two-parts", ["--grid", "fast=5:50"], "--grid fast '5:50'", "expected start:stop:step"),
    ("grid-infinite", ["--grid", "fast=1:inf:1"], "--grid fast '1:inf:1'", "must be finite"),
    ("grid-billions", ["--grid", "fast=1:1e12:1"], "--grid fast '1:1e12:1'", "use a larger step"),
    ("grid-unknown-param", ["--grid", "fsat=5,10"], "no parameter 'fsat'", "Did you mean 'fast'?"),
    (
        "grid-and-param",
        ["--grid", "fast=5,10", "--param", "fast=5"],
        "--param fast and --grid fast",
        "one of",
    ),
    ("param-not-number", ["--param", "fast=abc"], "parameter fast='abc'", "is not a number"),
    ("config-bad-yaml", ["--config", "filters={a"], "--config filters='{a'", "quote it or fix the syntax"),
    ("config-unknown-field", ["--config", "stop_los=0.1"], "--config stop_los", "'stop_loss_pct'?"),
    ("freq-unknown", ["--freq", "1fortnight"], "--freq '1fortnight'", "use a pandas alias such as '4h'"),
    ("periods-too-few", ["--periods", "1"], "--periods 1", "need at least 2 bars"),
    ("seed-not-int", ["--synthetic", "abc"], "argument --synthetic", "invalid int value"),
    ("fill-unknown", ["--fill", "open"], "argument --fill", "choose from"),
    ("rank-typo", ["--grid", "fast=5,10", "--rank", "sharp"], "unknown metric 'sharp'", "'sharpe'?"),
]


@pytest.mark.parametrize(
    ("args", "named", "fix"), [c[1:] for c in BACKTEST_CASES], ids=[c[0] for c in BACKTEST_CASES]
)
def test_backtest_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], named: str, fix: str
) -> None:
    report = tmp_path / "out" / "report.md"
    code, _, err = run_main(backtest, capsys, *SYNTHETIC, *args, "--report", str(report))
    assert code == 2, err
    assert named in err and fix in err, err
    assert not report.parent.exists()


def test_backtest_unwritable_report_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = write(tmp_path / "a-file", "")  # a file where the report's folder should be
    code, _, err = run_main(backtest, capsys, *SYNTHETIC, "--report", str(blocker / "report.md"))
    assert code == 2, err
    assert f"--report {blocker / 'report.md'}" in err and "choose a writable path" in err


# --- scripts/fetch_ohlcv.py ----------------------------------------------------------------------------


class FakeExchange:
    """Just enough of a ccxt exchange to validate arguments; fetching is never reached."""

    id = "upbit"
    timeframes: ClassVar[dict[str, str]] = {"1m": "minutes/1", "1h": "minutes/60", "1d": "days"}
    parse_timeframe = staticmethod(ccxt.Exchange.parse_timeframe)

    def __init__(self) -> None:
        self.markets: dict[str, Any] = {}
        self.markets_by_id: dict[str, Any] = {}

    def load_markets(self) -> None:
        btc = {"id": "KRW-BTC", "symbol": "BTC/KRW"}
        self.markets, self.markets_by_id = {"BTC/KRW": btc}, {"KRW-BTC": [btc]}

    def milliseconds(self) -> int:
        return 1_706_000_000_000

    def fetch_ohlcv(self, *_: Any, **__: Any) -> list[list[float]]:
        raise AssertionError("bad arguments must be refused before any download")


FETCH_CASES = [
    ("unknown-exchange", ["--exchange", "binanse"], "--exchange 'binanse'", "did you mean 'binance'"),
    ("unknown-symbol", ["--symbols", "KRW-BTX"], "--symbols: 'KRW-BTX'", "did you mean 'KRW-BTC'"),
    ("empty-symbols", ["--symbols", " , "], "--symbols is empty", "pass e.g. --symbols KRW-BTC"),
    ("unknown-timeframe", ["--timeframe", "1hr"], "--timeframe '1hr'", "did you mean '1h'"),
    ("since-not-a-date", ["--since", "soon"], "argument --since: 'soon' is not a date", "use ISO 8601"),
    ("since-after-until", ["--until", "2023-12-01"], "is not before --until", "swap or widen them"),
    ("zero-per-request", ["--limit-per-request", "0"], "argument --limit-per-request", "must be at least 1"),
    ("negative-retries", ["--max-retries", "-1"], "argument --max-retries", "must be 0 or more"),
    ("unknown-format", ["--format", "xlsx"], "argument --format", "choose from"),
]


def _fetch(capsys: pytest.CaptureFixture[str], out: Path, *change: str) -> tuple[int, str]:
    args = {"--exchange": "upbit", "--symbols": "KRW-BTC", "--since": "2024-01-01", "--out": str(out)}
    extra = dict(zip(change[::2], change[1::2], strict=True))
    argv = [item for pair in {**args, **extra}.items() for item in pair]
    try:
        code = fetch_ohlcv.main(argv, make_exchange=lambda _: FakeExchange(), sleep=lambda _: None)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "named", "fix"), [c[1:] for c in FETCH_CASES], ids=[c[0] for c in FETCH_CASES]
)
def test_fetch_usage_errors_download_and_write_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], named: str, fix: str
) -> None:
    out = tmp_path / "data"
    code, err = _fetch(capsys, out, *args)
    assert code == 2, err
    assert named in err and fix in err, err
    assert not out.exists()


def test_fetch_out_is_a_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = write(tmp_path / "data", "not a folder")
    code, err = _fetch(capsys, out)
    assert code == 2, err
    assert f"--out {out} is a file" in err and "pass a directory" in err
    assert out.read_text() == "not a folder"


# --- scripts/run_batch.py ------------------------------------------------------------------------------

RUN_BATCH_CASES = [
    ("zero-workers", ["--workers", "0"], "--workers 0", "at least 1"),
    ("unknown-target", ["--target", "gcp"], "argument --target", "choose from"),
    ("unknown-environment", ["--environment", "stagging"], "environment 'stagging'", "Pass one of them"),
    ("timeout-not-number", ["--timeout", "soon"], "argument --timeout", "invalid float value"),
    ("visibility-not-int", ["--visibility-timeout", "1m"], "argument --visibility-timeout", "invalid int"),
]


@pytest.mark.parametrize(
    ("args", "named", "fix"), [c[1:] for c in RUN_BATCH_CASES], ids=[c[0] for c in RUN_BATCH_CASES]
)
def test_run_batch_usage_errors_start_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], named: str, fix: str
) -> None:
    spec = write(tmp_path / "batch.yaml", spec_text())
    reports = tmp_path / "reports"
    code, out, err = run_main(run_batch, capsys, str(spec), *args, "--reports", str(reports))
    assert code == 2, err
    assert named in err and fix in err, err
    assert out == "" and not reports.exists()


# --- deploy scripts (moto in-process) ------------------------------------------------------------------

DEPLOY_CASES = [
    ("region-typo", "deploy_queues", ["--region", "ap-northeast-22"], "--region 'ap-northeast-22'", "e.g."),
    ("region-typo-all", "deploy_all", ["--region", "eu-wst-1"], "'eu-west-1'?", "Use e.g. ap-northeast-2"),
    ("environment-typo", "deploy_storage", ["--environment", "prd"], "'prd'", "Did you mean 'prod'?"),
    (
        "config-missing",
        "deploy_roles",
        ["--config", "/nonexistent/stack.yaml"],
        "cannot read",
        "--config path",
    ),
    ("unknown-flag", "deploy_worker", ["--dryrun"], "unrecognized arguments: --dryrun", "usage:"),
    ("teardown-region", "teardown", ["--region", "mars-1"], "--region 'mars-1'", "Use e.g."),
]


@pytest.mark.parametrize(
    ("script", "args", "named", "fix"), [c[1:] for c in DEPLOY_CASES], ids=[c[0] for c in DEPLOY_CASES]
)
def test_deploy_usage_errors_change_nothing(
    mocked_aws: None,
    capsys: pytest.CaptureFixture[str],
    script: str,
    args: list[str],
    named: str,
    fix: str,
) -> None:
    code, _, err = run_main(load_script(script), capsys, *args, "--yes")
    assert code == 2, err
    assert named in err and fix in err, err
    assert boto3.client("sqs").list_queues().get("QueueUrls", []) == []
    assert boto3.client("s3").list_buckets()["Buckets"] == []


def test_deploy_config_that_is_not_yaml_exits_2(
    mocked_aws: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = write(tmp_path / "stack.yaml", "prefix: [unclosed\n")
    code, _, err = run_main(load_script("deploy_queues"), capsys, "--config", str(config), "--yes")
    assert code == 2, err
    assert f"{config} is not valid YAML" in err and "fix the syntax" in err
    assert boto3.client("sqs").list_queues().get("QueueUrls", []) == []


def test_deploy_without_yes_and_without_a_terminal_applies_nothing(
    mocked_aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal, as in CI
    code, out, err = run_main(load_script("deploy_queues"), capsys)
    assert code == 2, err
    assert "4 change(s) planned" in err and "pass --yes" in err and "--dry-run" in err
    assert "create" in out  # the plan is shown
    assert boto3.client("sqs").list_queues().get("QueueUrls", []) == []


def test_render_iam_refuses_a_short_account_id(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "iam"
    code, _, err = run_main(load_script("render_iam"), capsys, "--account-id", "12345", "--out", str(out))
    assert code == 2
    assert "--account-id must be 12 digits" in err and "'12345'" in err
    assert not out.exists()
