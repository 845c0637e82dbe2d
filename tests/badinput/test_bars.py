"""Bad bar files: through `scripts/backtest.py --data` (exit 2, the message names the row or column and the
fix, no report written) and as the data of a batch (nothing is submitted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.badinput.support import DeployedStack, spec_text, write
from tests.script_loader import load_script, run_main

backtest = load_script("backtest")
run_batch = load_script("run_batch")

HEADER = "timestamp,open,high,low,close,volume\n"
ROWS = [
    "2024-01-01T00:00:00Z,10,11,9,10.5,100",
    "2024-01-01T01:00:00Z,10.5,12,10,11,120",
    "2024-01-01T02:00:00Z,11,11.5,10.5,11,90",
]
BAD_ROW = "2024-01-01T01:00:00Z,{}"  # the middle row, with the given OHLCV


def csv(*rows: str, header: str = HEADER) -> str:
    return header + "".join(f"{r}\n" for r in rows)


def with_middle(ohlcv: str) -> str:
    return csv(ROWS[0], BAD_ROW.format(ohlcv), ROWS[2])


# (id, file name, content, the row/column/cause named, the fix named)
CASES = [
    ("nan-price", "KRW-X_1h.csv", with_middle("10.5,12,10,,120"), "row 1", "drop or fill the row"),
    ("infinite-price", "KRW-X_1h.csv", with_middle("10.5,inf,10,11,120"), "high=inf not finite", "re-fetch"),
    (
        "unsorted",
        "KRW-X_1h.csv",
        csv(ROWS[1], ROWS[0], ROWS[2]),
        "row 1 (2024-01-01T00:00:00",
        "sort_index()",
    ),
    (
        "duplicate-timestamps",
        "KRW-X_1h.csv",
        csv(ROWS[0], ROWS[0], ROWS[2]),
        "duplicates the timestamp of row 0",
        "drop duplicates",
    ),
    (
        "missing-column",
        "KRW-X_1h.csv",
        csv(*(r.rsplit(",", 1)[0] for r in ROWS), header="timestamp,open,high,low,close\n"),
        "missing column(s) ['volume']",
        "provide all of",
    ),
    (
        "no-timestamp-column",
        "KRW-X_1h.csv",
        csv(*(r.split(",", 1)[1] for r in ROWS), header="open,high,low,close,volume\n"),
        "no timestamp column",
        "name it 'timestamp'",
    ),
    (
        "negative-price",
        "KRW-X_1h.csv",
        with_middle("-10.5,12,-11,11,120"),
        "open=-10.5",
        "prices must be > 0",
    ),
    (
        "negative-volume",
        "KRW-X_1h.csv",
        with_middle("10.5,12,10,11,-5"),
        "volume=-5.0",
        "set the volume to 0",
    ),
    ("high-below-low", "KRW-X_1h.csv", with_middle("10.5,9,12,11,120"), "high=9.0 is below", "swapped"),
    ("text-price", "KRW-X_1h.csv", with_middle("abc,12,10,11,120"), "column 'open'", "pd.to_numeric"),
    (
        "bad-timestamp",
        "KRW-X_1h.csv",
        csv(ROWS[0], "yesterday,1,2,1,1,1"),
        "row 1 column 'timestamp'",
        "use e.g.",
    ),
    (
        "epoch-seconds",
        "KRW-X_1h.csv",
        csv("1704067200,10,11,9,10.5,100", "1704070800,10.5,12,10,11,120"),
        "is not epoch milliseconds",
        "convert seconds (x1000)",
    ),
    ("empty-file", "KRW-X_1h.csv", "", "could not read", "complete CSV export, or re-fetch it"),
    ("header-only", "KRW-X_1h.csv", HEADER, "got 0", "load a longer period"),
    ("truncated-parquet", "KRW-X_1h.parquet", "PAR1", "as Parquet", "complete Parquet export"),
    ("unknown-extension", "KRW-X_1h.txt", csv(*ROWS), "unsupported bar file type '.txt'", "use one of .csv"),
]


@pytest.mark.parametrize(
    ("name", "content", "named", "fix"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_bar_file_exits_2_naming_the_row_and_the_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, content: str, named: str, fix: str
) -> None:
    data = write(tmp_path / name, content)
    report = tmp_path / "out" / "report.md"
    code, _, err = run_main(
        backtest, capsys, "--data", str(data), "--strategy", "SMA_Crossover", "--report", str(report)
    )
    assert code == 2, err
    assert named in err and fix in err, err
    assert not report.parent.exists()


def _files_spec(tmp_path: Path) -> Path:
    """A batch over two files: KRW-BTC is fine, KRW-ETH is unsorted."""
    good = "\n".join(f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z,100,101,99,100,10" for h in range(60))
    write(tmp_path / "KRW-BTC_1h.csv", HEADER + good + "\n")
    write(tmp_path / "KRW-ETH_1h.csv", csv(ROWS[1], ROWS[0], ROWS[2]))
    data = {"source": "files", "pattern": str(tmp_path / "{symbol}_1h.csv"), "timeframe": "1h"}
    return write(tmp_path / "batch.yaml", spec_text(data=data))


def test_a_batch_over_a_bad_bar_file_submits_nothing(
    deployed: DeployedStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    code, _, err = run_main(
        run_batch, capsys, str(_files_spec(tmp_path)), "--target", "aws", "--reports", str(reports)
    )
    assert code != 0
    assert "KRW-ETH_1h.csv row 1" in err and "timestamps must increase" in err, err
    assert not reports.exists()
    # Every symbol is validated before the first upload: no bars, no batch record, no job record, no message.
    deployed.assert_nothing_submitted(bars_allowed=False)


def test_a_batch_over_a_bad_bar_file_exits_2(
    deployed: DeployedStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, _ = run_main(
        run_batch, capsys, str(_files_spec(tmp_path)), "--target", "aws", "--reports", str(tmp_path / "r")
    )
    assert code == 2
