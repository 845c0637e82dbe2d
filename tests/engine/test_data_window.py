"""Bars after loading, as a batch uses them: their identity (the same bars from CSV or Parquet hash the same,
one changed bar does not), date windows (start inclusive, end exclusive, an empty one names the range),
and gaps (found, kept, or filled at the previous close with zero volume)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtesting_modules.data import (
    apply_gap_policy,
    bars_sha256,
    cut_window,
    describe_bars,
    fill_gaps,
    find_gaps,
    load_bars,
    parse_bars,
    synthetic_bars,
)
from backtesting_modules.errors import DataError

HOUR = pd.Timedelta("1h")


@pytest.fixture
def bars() -> pd.DataFrame:
    return synthetic_bars("KRW-ETH", periods=48, freq="1h", seed=3, start="2024-01-01")


def _write(bars: pd.DataFrame, path: Path) -> Path:
    frame = bars.reset_index()
    if path.suffix == ".csv":
        frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def test_the_same_bars_hash_the_same_from_csv_and_parquet_and_one_changed_close_does_not(
    bars: pd.DataFrame, tmp_path: Path
) -> None:
    from_csv = load_bars(_write(bars, tmp_path / "KRW-ETH_1h.csv"))
    from_parquet = load_bars(_write(bars, tmp_path / "KRW-ETH_1h.parquet"))
    assert bars_sha256(from_csv) == bars_sha256(from_parquet) == bars_sha256(bars)
    changed = bars.copy()
    changed.iloc[10, changed.columns.get_loc("close")] += 1.0
    assert bars_sha256(changed) != bars_sha256(bars)
    # Bytes read elsewhere (an S3 object) parse to the same bars.
    body = (tmp_path / "KRW-ETH_1h.parquet").read_bytes()
    assert bars_sha256(parse_bars(body, suffix=".parquet", name="s3://b/k", symbol="KRW-ETH")) == bars_sha256(
        bars
    )


@pytest.mark.parametrize(
    ("since", "until", "first", "count"),
    [
        ("2024-01-01T10:00", "2024-01-02", "2024-01-01 10:00", 14),  # start inclusive, end exclusive
        (None, "2024-01-01T05:00", "2024-01-01 00:00", 5),
        ("2024-01-02T20:00", None, "2024-01-02 20:00", 4),
        ("2023-12-01", "2030-01-01", "2024-01-01 00:00", 48),
    ],
)
def test_windows_cut_start_inclusive_end_exclusive(
    bars: pd.DataFrame, since: str | None, until: str | None, first: str, count: int
) -> None:
    cut = cut_window(bars, since, until, name="KRW-ETH")
    assert len(cut) == count and cut.index[0] == pd.Timestamp(first, tz="UTC")
    assert cut.attrs["window"] == [since, until] and cut.attrs["symbol"] == "KRW-ETH"


def test_an_empty_window_names_the_bars_and_their_range(bars: pd.DataFrame) -> None:
    with pytest.raises(
        DataError, match=r"KRW-ETH: .* holds 0 bar\(s\).* 2024-01-01 00:00 to 2024-01-02 23:00 UTC"
    ):
        cut_window(bars, "2025-01-01", None, name="KRW-ETH")


def test_gaps_are_found_kept_or_filled_at_the_previous_close(bars: pd.DataFrame) -> None:
    holed = bars.drop(bars.index[[5, 6, 7, 20]])
    gaps = find_gaps(holed, HOUR)
    assert (gaps.missing, gaps.longest) == (4, 3)
    assert gaps.starts == (bars.index[5], bars.index[20]) and gaps.lengths == (3, 1)
    filled = fill_gaps(holed, HOUR, name="KRW-ETH")
    assert len(filled) == len(bars) and filled.attrs["filled_bars"] == 4
    assert filled.index.equals(bars.index)
    previous = bars["close"].iloc[4]
    assert np.all(filled.iloc[5:8][["open", "high", "low", "close"]].to_numpy() == previous)
    assert np.all(filled["volume"].iloc[5:8].to_numpy() == 0.0)
    pd.testing.assert_frame_equal(filled.drop(bars.index[[5, 6, 7, 20]]), holed, check_freq=False)

    kept = apply_gap_policy(holed, "keep", HOUR, name="KRW-ETH")
    assert len(kept) == len(holed) and kept.attrs["gaps"] == {"policy": "keep", "missing": 4, "longest": 3}
    facts = describe_bars(apply_gap_policy(holed, "fill", HOUR, name="KRW-ETH"))
    assert (facts["gaps"], facts["missing"], facts["filled"], facts["bars"]) == ("fill", 4, 4, 48)
    with pytest.raises(DataError, match="gaps='drop' is not one of"):
        apply_gap_policy(holed, "drop", HOUR, name="KRW-ETH")


def test_series_without_gaps_report_none(bars: pd.DataFrame) -> None:
    assert find_gaps(bars, HOUR).missing == 0
    assert fill_gaps(bars, HOUR, name="x").attrs["filled_bars"] == 0


_WITHOUT_PYARROW = """
import sys
sys.modules["pyarrow"] = None  # the Lambda layer has no pyarrow: pandas falls back to fastparquet
from pathlib import Path
from backtesting_modules.data import bars_sha256, parse_bars
path = Path(sys.argv[1])
bars = parse_bars(path.read_bytes(), suffix=".parquet", name=path.name, symbol="KRW-ETH")
import pandas.io.parquet as pq
print(bars_sha256(bars), pq.get_engine("auto").__class__.__name__)
"""


@pytest.mark.parametrize("as_index", [False, True])
def test_parquet_reads_the_same_bars_without_pyarrow_as_the_workers_do(
    bars: pd.DataFrame, tmp_path: Path, as_index: bool
) -> None:
    # The driver reads Parquet with pyarrow; a worker, reading an S3 object in place, with fastparquet.
    path = tmp_path / "KRW-ETH_1h.parquet"
    if as_index:
        bars.to_parquet(path)
    else:
        _write(bars, path)
    here = bars_sha256(parse_bars(path.read_bytes(), suffix=".parquet", name=path.name, symbol="KRW-ETH"))
    layer = Path(__file__).resolve().parents[2] / "layer"
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PYARROW, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(layer)},
    )
    digest, engine = done.stdout.split()
    assert engine == "FastParquetImpl"
    assert digest == here == bars_sha256(bars)
