"""scripts/run_batch.py: usage and spec errors exit 2 before anything starts; the demo batch runs locally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.script_loader import load_script, run_main

cli = load_script("run_batch")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_main(cli, capsys, *args)


@pytest.mark.parametrize(
    ("spec", "args", "message"),
    [
        ("name: x\njob_type: PARAMETER_OPTIMIZATION\n", [], "strategies"),
        (
            "name: x\njob_type: NOPE\nstrategies: []\nsymbols: [A]\ndata: {source: synthetic}\n",
            [],
            "job_type",
        ),
        (None, [], "No such file"),
        ("name: x\n", ["--workers", "0"], "--workers 0"),
    ],
)
def test_bad_specs_and_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: str | None, args: list[str], message: str
) -> None:
    path = tmp_path / "spec.yaml"
    if spec is not None:
        path.write_text(spec)
    code, _, err = run(capsys, str(path), *args)
    assert code == 2
    assert message in err


def test_demo_batch_runs_on_the_embedded_default(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "small.yaml"
    spec.write_text(
        "name: small\njob_type: PARAMETER_OPTIMIZATION\nsymbols: [KRW-ETH, KRW-XRP]\n"
        "data: {source: synthetic, seed: 3, periods: 2000, freq: 1h}\nconfig: {filters: null}\n"
        "strategies:\n  - name: SMA_Crossover\n    grid: {fast: [5, 10], slow: [20, 40]}\n"
        "ranking: {metric: sharpe, top: 5}\n"
    )
    code, out, _ = run(capsys, str(spec), "--workers", "1", "--json", "--reports", str(tmp_path / "reports"))
    assert code == 0
    doc = json.loads(out.strip().splitlines()[-1])
    assert (doc["jobs_failed"], doc["backtests"]) == (0, 8)
    assert set(doc) >= {
        "batch_id",
        "jobs_total",
        "jobs_succeeded",
        "jobs_failed",
        "backtests",
        "elapsed_s",
        "report",
    }
    report = Path(doc["report"])
    assert (
        report.exists()
        and (report.parent / "results.csv").exists()
        and (report.parent / "summary.json").exists()
    )
    assert "## By strategy" in report.read_text()
    text = report.read_text()
    # The charts sit beside the report: a heatmap per (strategy, symbol), the winners' curves, the histogram.
    assert "## Charts" in text and text.index("## Charts") < text.index("## By strategy")
    for name in ("grid-SMA_Crossover-KRW-ETH.png", "grid-SMA_Crossover-KRW-XRP.png", "winners.png"):
        assert f"]({name})" in text and (report.parent / name).stat().st_size > 10_000
    cost = doc["cost"]  # metered from the job records, beside the projection of the same batch
    ran = cost["metered"]["jobs"]  # the 2 train jobs and the winners' out-of-sample jobs
    assert ran > 2 and cost["metered"]["total_usd"] > 0 and cost["projected"]["jobs"] == ran
    assert "actual (metered) $" in text and "vs projected $" in text
    assert "median sharpe" in text and "| –" not in text.split("## By strategy")[1].split("##")[0]
