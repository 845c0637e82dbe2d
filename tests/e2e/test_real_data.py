"""Real bars end to end on the embedded default: files on disk and objects in S3, identified by their
content, cut to a window with a gap policy, and results reused across batches exactly when the bars and the
job are the same. One stack and one set of worker processes serve every test here; each test writes its own
bars (its own seed), so batches of different tests never share bars.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backtesting_modules.data import describe_bars, synthetic_bars
from backtesting_modules.jobs.planner import throughput_for
from backtesting_modules.jobs.spec import BatchSpec, parse_spec
from opslib.batch.bars import load_symbol_bars
from opslib.batch.execute import BatchOutcome, execute_batch
from opslib.batch.reports import render_report
from opslib.batch.submitter import Submitter
from opslib.errors import BatchInputError
from opslib.local.testbed import Testbed

SYMBOLS = ["KRW-BTC", "KRW-ETH"]
GRID = {"fast": [5, 10], "slow": [30, 60]}
_seeds = itertools.count(100)


BED_PREFIX = "real0"  # the module's stack in the shared `bed` (tests/e2e/conftest.py)


def data_location(bed: Testbed) -> str:
    return f"s3://{bed.names.bucket}-data/"


@pytest.fixture
def submitter(bed: Testbed) -> Submitter:
    # As config/stack.yaml data.read_locations would allow it (the IAM policies grant the same).
    return Submitter(bed.clients, bed.names, bed.urls, read_locations=[data_location(bed)])


def bars_for(symbol: str, seed: int, periods: int = 1500) -> pd.DataFrame:
    frame = synthetic_bars(symbol, start="2024-01-01", periods=periods, freq="1h", seed=seed)
    frame.attrs = {}
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    out = frame.copy()
    out.index = pd.DatetimeIndex(out.index).strftime("%Y-%m-%dT%H:%M:%SZ")
    out.index.name = "timestamp"
    out.to_csv(path)
    return path


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    out = frame.copy()
    out.index = pd.DatetimeIndex(out.index).strftime("%Y-%m-%dT%H:%M:%SZ")
    out.index.name = "timestamp"
    out.to_csv(buffer)
    return buffer.getvalue().encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    out = frame.copy()
    out.index.name = "timestamp"
    out.to_parquet(buffer)
    return buffer.getvalue()


def files_spec(paths: dict[str, Path], grid: dict[str, Any] = GRID, **data: Any) -> BatchSpec:
    return parse_spec(
        {
            "name": "real-data",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": sorted(paths),
            "data": {"source": "files", "paths": {s: str(p) for s, p in paths.items()}, **data},
            "config": {"filters": None, "min_volume": 0.0},
            "strategies": [{"name": "SMA_Crossover", "grid": grid}],
            "ranking": {"metric": "sharpe", "top": 1000, "min_trades": 0},
        }
    )


def s3_spec(uri: str, **data: Any) -> BatchSpec:
    return parse_spec(
        {
            "name": "real-data-s3",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": SYMBOLS,
            "data": {"source": "s3", "uri": uri, "timeframe": "1h", **data},
            "config": {"filters": None, "min_volume": 0.0},
            "strategies": [{"name": "SMA_Crossover", "grid": GRID}],
            "ranking": {"metric": "sharpe", "top": 1000, "min_trades": 0},
        }
    )


def run(submitter: Submitter, spec: BatchSpec, **kwargs: Any) -> BatchOutcome:
    # Small jobs (two combinations each: a 2x2 grid is two jobs per symbol), so that reuse is visible per job:
    # 2 combinations × 1,500 bars of engine time at SMA_Crossover's calibrated rate.
    target = 2 * 1500 / throughput_for("SMA_Crossover")
    return execute_batch(submitter, spec, depth=50, timeout_s=120, target_seconds=target, **kwargs)


def rows(outcome: BatchOutcome) -> dict[tuple[str, str], dict[str, Any]]:
    top = outcome.summary["ranking"]["top"]
    return {(r["symbol"], str(sorted(r["params"].items()))): r["metrics"] for r in top}


def symbol_jobs(outcome: BatchOutcome, symbol: str) -> set[str]:
    return {j.job_id for j in outcome.jobs if j.symbols == (symbol,)}


def test_changed_bars_make_a_new_batch_and_only_their_jobs_run_again(
    submitter: Submitter, tmp_path: Path
) -> None:
    seed = next(_seeds)
    paths = {s: write_csv(bars_for(s, seed + i), tmp_path / f"{s}_1h.csv") for i, s in enumerate(SYMBOLS)}
    first = run(submitter, files_spec(paths))
    assert first.record.complete and first.reused == 0 and first.summary["failures"] == []
    assert len(symbol_jobs(first, "KRW-BTC")) >= 2  # one job per tile: reuse is per job

    # One close of KRW-BTC changes: its bars have a new hash, hence new jobs; KRW-ETH's jobs are the same.
    changed = bars_for("KRW-BTC", seed)
    row = changed.index[700]
    changed.loc[row, "close"] = (changed.loc[row, "open"] + changed.loc[row, "close"]) / 2  # within high/low
    write_csv(changed, paths["KRW-BTC"])
    second = run(submitter, files_spec(paths))
    assert second.batch_id != first.batch_id
    assert symbol_jobs(second, "KRW-ETH") == symbol_jobs(first, "KRW-ETH")
    assert not symbol_jobs(second, "KRW-BTC") & symbol_jobs(first, "KRW-BTC")
    assert second.reused == len(symbol_jobs(first, "KRW-ETH"))
    assert second.summary["jobs"]["reused"] == second.reused
    assert second.record.succeeded == len(second.jobs)
    eth = {k: v for k, v in rows(second).items() if k[0] == "KRW-ETH"}
    assert eth == {k: v for k, v in rows(first).items() if k[0] == "KRW-ETH"}
    assert len(rows(second)) == len(rows(first))  # every backtest is in the summary, reused or not
    facts = second.summary["data"]["symbols"]
    assert facts["KRW-BTC"]["sha256"] != first.summary["data"]["symbols"]["KRW-BTC"]["sha256"]
    assert facts["KRW-ETH"]["sha256"] == first.summary["data"]["symbols"]["KRW-ETH"]["sha256"]


def test_the_same_bars_in_parquet_are_the_same_batch(submitter: Submitter, tmp_path: Path) -> None:
    seed = next(_seeds)
    frames = {s: bars_for(s, seed + i) for i, s in enumerate(SYMBOLS)}
    csv = {s: write_csv(f, tmp_path / f"{s}_1h.csv") for s, f in frames.items()}
    first = run(submitter, files_spec(csv))
    parquet = {}
    for symbol, frame in frames.items():
        parquet[symbol] = tmp_path / f"{symbol}_1h.parquet"
        parquet[symbol].write_bytes(parquet_bytes(frame))
    again = run(submitter, files_spec(parquet))
    # Bars are identified by their content, not by the file that held them: nothing runs again.
    assert again.batch_id == first.batch_id
    assert again.record.succeeded == first.record.succeeded == len(first.jobs)
    assert rows(again) == rows(first)


def test_a_wider_grid_runs_only_the_jobs_it_adds(submitter: Submitter, tmp_path: Path) -> None:
    seed = next(_seeds)
    paths = {s: write_csv(bars_for(s, seed + i), tmp_path / f"{s}_1h.csv") for i, s in enumerate(SYMBOLS)}
    narrow = run(submitter, files_spec(paths))
    wide = run(submitter, files_spec(paths, grid={"fast": [5, 10], "slow": [30, 60, 90, 120]}))
    shared = {j.job_id for j in narrow.jobs} & {j.job_id for j in wide.jobs}
    assert shared and len(wide.jobs) > len(shared)
    assert wide.reused == len(shared)
    assert wide.summary["jobs"]["reused"] == len(shared)
    assert wide.summary["backtests"] == 2 * 2 * 4 == len(rows(wide))
    for key, metrics in rows(narrow).items():
        assert rows(wide)[key] == metrics
    # --rerun: a fresh batch that reuses nothing.
    fresh = run(submitter, files_spec(paths), salt="rerun", reuse=False)
    assert fresh.batch_id != narrow.batch_id and fresh.reused == 0
    assert rows(fresh) == rows(narrow)


def test_window_and_gap_policy_are_applied_and_reported(submitter: Submitter, tmp_path: Path) -> None:
    seed = next(_seeds)
    paths = {}
    for i, symbol in enumerate(SYMBOLS):
        frame = bars_for(symbol, seed + i)
        frame = frame.drop(frame.index[400:405])  # 5 missing hours inside the window
        paths[symbol] = write_csv(frame, tmp_path / f"{symbol}_1h.csv")
    spec = files_spec(paths, since="2024-01-05", until="2024-02-20", gaps="fill", timeframe="1h")
    outcome = run(submitter, spec)
    assert outcome.record.succeeded == len(outcome.jobs)
    data = outcome.summary["data"]
    assert data["window"] == ["2024-01-05T00:00:00", "2024-02-20T00:00:00"] and data["gaps"] == "fill"
    expected_bars = int((pd.Timestamp("2024-02-20") - pd.Timestamp("2024-01-05")) / pd.Timedelta("1h"))
    for symbol in SYMBOLS:
        facts = data["symbols"][symbol]
        assert facts["bars"] == expected_bars  # filled: every hour of the window, none missing
        assert facts["first"].startswith("2024-01-05T00:00") and facts["last"].startswith("2024-02-19T23:00")
        assert facts["filled"] == 5 and facts["missing"] == 5
        assert facts["sha256"] == describe_bars(load_symbol_bars(spec, symbol))["sha256"]
    text = render_report(outcome.summary, [("target", "test")])
    assert "## Bars" in text
    assert "window 2024-01-05T00:00:00 to 2024-02-20T00:00:00 (UTC, end excluded), gaps: fill." in text
    bars_section = text.split("## Bars", 1)[1]
    btc = next(line for line in bars_section.splitlines() if line.startswith("| KRW-BTC"))
    cells = [c.strip() for c in btc.strip("|").split("|")]
    assert cells[1:5] == [f"{expected_bars:,}", "2024-01-05 00:00 to 2024-02-19 23:00", "5", "5"]


def test_an_empty_window_is_refused_before_anything_is_sent(
    submitter: Submitter, bed: Testbed, tmp_path: Path
) -> None:
    seed = next(_seeds)
    paths = {s: write_csv(bars_for(s, seed + i), tmp_path / f"{s}_1h.csv") for i, s in enumerate(SYMBOLS)}
    before = {b.batch_id for b in submitter.store.batches()}
    with pytest.raises(BatchInputError, match=r"KRW-(BTC|ETH).*2030-01-01"):
        run(submitter, files_spec(paths, since="2030-01-01"))
    assert {b.batch_id for b in submitter.store.batches()} == before
    assert bed.messages(bed.names.job_queue) == 0


@pytest.fixture
def data_bucket(bed: Testbed) -> str:
    bucket = f"{bed.names.bucket}-data"
    s3 = bed.clients.client("s3")
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        region = bed.config.region
        where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **where)
    return bucket


def put_objects(bed: Testbed, bucket: str, prefix: str, frames: dict[str, pd.DataFrame], fmt: str) -> str:
    s3 = bed.clients.client("s3")
    for symbol, frame in frames.items():
        body = csv_bytes(frame) if fmt == "csv" else parquet_bytes(frame)
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{symbol}_1h.{fmt}", Body=body)
    return f"s3://{bucket}/{prefix}/{{symbol}}_1h.{fmt}"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_s3_objects_are_read_in_place_and_match_the_same_bars_uploaded(
    submitter: Submitter, bed: Testbed, data_bucket: str, tmp_path: Path, fmt: str
) -> None:
    seed = next(_seeds)
    frames = {s: bars_for(s, seed + i) for i, s in enumerate(SYMBOLS)}
    uri = put_objects(bed, data_bucket, f"{fmt}{seed}", frames, fmt)
    window = {"since": "2024-01-10", "until": "2024-02-15"}
    in_place = run(submitter, s3_spec(uri, **window))
    assert in_place.record.succeeded == len(in_place.jobs) and in_place.summary["failures"] == []
    assert not any(k.startswith(f"{fmt}{seed}") for k in _keys(bed, bed.names.bucket, "bars/"))
    paths = {s: write_csv(f, tmp_path / f"{s}_1h.csv") for s, f in frames.items()}
    uploaded = run(submitter, files_spec(paths, timeframe="1h", **window))
    assert rows(in_place) == rows(uploaded)
    for symbol in SYMBOLS:
        facts = in_place.summary["data"]["symbols"][symbol]
        # The workers measured the object they read: the same bars, byte for byte, as the uploaded ones.
        assert facts["sha256"] == uploaded.summary["data"]["symbols"][symbol]["sha256"]
        assert facts["object"] == uri.format(symbol=symbol) and facts["etag"]
        assert facts["bars"] == uploaded.summary["data"]["symbols"][symbol]["bars"]


def _keys(bed: Testbed, bucket: str, prefix: str) -> list[str]:
    listing = bed.clients.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


def test_a_missing_s3_object_is_refused_naming_it(
    submitter: Submitter, bed: Testbed, data_bucket: str
) -> None:
    seed = next(_seeds)
    uri = put_objects(bed, data_bucket, f"missing{seed}", {"KRW-BTC": bars_for("KRW-BTC", seed)}, "csv")
    with pytest.raises(BatchInputError, match=f"missing{seed}/KRW-ETH_1h.csv"):
        run(submitter, s3_spec(uri))
    assert bed.messages(bed.names.job_queue) == 0


def _without_timestamp(frame: pd.DataFrame) -> bytes:
    return frame.reset_index(drop=True).to_csv(index=False).encode()


def _parquet_without_close(frame: pd.DataFrame) -> bytes:
    return parquet_bytes(frame.drop(columns=["close"]))


@pytest.mark.parametrize(
    ("suffix", "body", "message"),
    [
        ("csv", _without_timestamp, "does not hold bars"),
        ("parquet", _parquet_without_close, r"missing: close\); re-export it"),
        ("parquet", lambda frame: b"timestamp,open\n", "is not a Parquet file"),
        ("json", csv_bytes, r"bars objects are \.csv or \.parquet, not '\.json'"),
    ],
    ids=["csv-without-timestamp", "parquet-without-close", "not-parquet", "unknown-suffix"],
)
def test_an_s3_object_that_holds_no_bars_is_refused_before_anything_is_sent(
    submitter: Submitter, bed: Testbed, data_bucket: str, suffix: str, body: Any, message: str
) -> None:
    seed = next(_seeds)
    s3 = bed.clients.client("s3")
    for i, symbol in enumerate(SYMBOLS):
        frame = bars_for(symbol, seed + i)
        good = parquet_bytes(frame) if suffix == "parquet" else csv_bytes(frame)
        data = body(frame) if symbol == "KRW-ETH" else good  # the second symbol is the bad one
        s3.put_object(Bucket=data_bucket, Key=f"bad{seed}/{symbol}_1h.{suffix}", Body=data)
    uri = f"s3://{data_bucket}/bad{seed}/{{symbol}}_1h.{suffix}"
    with pytest.raises(BatchInputError, match=message):
        run(submitter, s3_spec(uri))
    assert bed.messages(bed.names.job_queue) == 0


def test_an_empty_window_on_s3_objects_is_refused_naming_their_range(
    submitter: Submitter, bed: Testbed, data_bucket: str
) -> None:
    seed = next(_seeds)
    frames = {s: bars_for(s, seed + i) for i, s in enumerate(SYMBOLS)}
    uri = put_objects(bed, data_bucket, f"window{seed}", frames, "parquet")
    with pytest.raises(
        BatchInputError, match=r"KRW-BTC: the window since 2030-01-01.*runs from 2024-01-01 00:00"
    ):
        run(submitter, s3_spec(uri, since="2030-01-01"))
    assert bed.messages(bed.names.job_queue) == 0


def test_an_s3_location_the_stack_may_not_read_is_refused(bed: Testbed, data_bucket: str) -> None:
    seed = next(_seeds)
    uri = put_objects(bed, data_bucket, f"outside{seed}", {s: bars_for(s, seed) for s in SYMBOLS}, "csv")
    narrow = Submitter(bed.clients, bed.names, bed.urls, read_locations=[f"s3://{data_bucket}/upbit/"])
    with pytest.raises(BatchInputError, match=r"data\.uri: .*outside.*data\.read_locations.*upbit/"):
        run(narrow, s3_spec(uri))
    assert bed.messages(bed.names.job_queue) == 0


def test_an_s3_object_rewritten_after_planning_fails_its_jobs_not_the_batch(
    submitter: Submitter, bed: Testbed, data_bucket: str
) -> None:
    seed = next(_seeds)
    frames = {s: bars_for(s, seed + i) for i, s in enumerate(SYMBOLS)}
    uri = put_objects(bed, data_bucket, f"changed{seed}", frames, "csv")
    spec = s3_spec(uri)
    prepared = submitter.prepare(spec)  # ETags pinned here
    rewritten = bars_for("KRW-ETH", seed + 99)
    put_objects(bed, data_bucket, f"changed{seed}", {"KRW-ETH": rewritten}, "csv")
    outcome = run(submitter, spec, prepared=prepared)
    eth = symbol_jobs(outcome, "KRW-ETH")
    assert outcome.record.failed == len(eth) and outcome.record.succeeded == len(outcome.jobs) - len(eth)
    failures = outcome.summary["failures"]
    assert {f["job_id"] for f in failures} == eth
    assert all("changed since the batch was planned" in f["error"] and f["attempts"] == 1 for f in failures)
    # Nothing was computed on bars other than the planned ones.
    assert {k[0] for k in rows(outcome)} == {"KRW-BTC"}
