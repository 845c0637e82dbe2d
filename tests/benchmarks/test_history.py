"""benchmarks/history.py: the weekly history of benchmarks.yml (one run per run id, run-id order, capped;
each line checked) and the trend section of the weekly report (a mermaid xychart-beta per headline figure,
the latest value against the median of the runs before it, a drift flagged)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import history  # noqa: E402
from history import FIGURES, HistoryError, Run, load_history, merge, parse_run, render_trend  # noqa: E402

SHA = "0123456789abcdef0123456789abcdef01234567"


def make_run(
    run_id: int,
    *,
    engine: float | None = 40e6,
    speedup: float = 1.8,
    overhead: float = 11.0,
    day: int | None = None,
    workers: int = 2,
) -> Run:
    bigger: list[dict[str, Any]] = [
        {"name": "sequential throughput", "unit": "backtests/s", "value": 100.0, "extra": "wall 1–2 s"},
        {"name": f"distributed {workers}w speedup", "unit": "x", "value": speedup},
    ]
    if engine is not None:
        bigger.append({"name": "engine sweep", "unit": "bar·combinations/s", "value": engine})
    smaller = [{"name": f"distributed {workers}w overhead", "unit": "%", "value": overhead}]
    date = f"2026-{1 + (day or run_id) // 28:02d}-{1 + (day or run_id) % 28:02d}T03:17:00Z"
    return parse_run(
        {"run_id": str(run_id), "commit": SHA, "date": date, "bigger": bigger, "smaller": smaller},
        f"run {run_id}",
    )


# ------------------------------------------------------------------------------------------------ merge


def test_merge_adds_a_run_in_run_id_order() -> None:
    runs = merge([make_run(3), make_run(7)], make_run(5))
    assert [r.run_id for r in runs] == ["3", "5", "7"]
    # run ids are compared as numbers, not as text ("10" after "9")
    assert [r.run_id for r in merge([make_run(9)], make_run(10))] == ["9", "10"]


def test_merge_keeps_one_run_per_run_id_the_new_one_winning() -> None:
    """A re-run of a scheduled run (same run id, next attempt) replaces the record of the first attempt."""
    old = make_run(5, speedup=1.5)
    again = make_run(5, speedup=1.9)
    runs = merge([make_run(4), old, make_run(6)], again)
    assert [r.run_id for r in runs] == ["4", "5", "6"]
    assert runs[1] is again
    assert runs[1].value(FIGURES[1].pattern) == 1.9


def test_merge_caps_the_history_to_the_last_runs() -> None:
    runs: list[Run] = []
    for run_id in range(1, 11):
        runs = merge(runs, make_run(run_id), keep=4)
    assert [r.run_id for r in runs] == ["7", "8", "9", "10"]
    # an old run merged into a full history is the one dropped
    assert [r.run_id for r in merge(runs, make_run(2), keep=4)] == ["7", "8", "9", "10"]


def test_the_history_file_round_trips_as_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "history.jsonl"
    runs = [make_run(1), make_run(2, engine=None)]
    history.store_history(path, runs)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["run_id"] == "1"
    assert "bar·combinations/s" in lines[0]  # written as text, not \\u escapes
    assert load_history(path) == runs
    assert load_history(tmp_path / "missing.jsonl") == []
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    assert load_history(tmp_path / "empty.jsonl") == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", ":2: not JSON"),
        ('["a list"]', ":2: not a JSON object"),
        ('{"run_id": 12}', "'run_id' must be a run id in digits"),
        ('{"run_id": "12", "commit": "main", "date": "2026-01-01"}', "'commit' must be a commit sha"),
        ('{"run_id": "12", "commit": "abcdef1", "date": "last monday"}', "'date' must be an ISO date"),
        (
            '{"run_id": "12", "commit": "abcdef1", "date": "2026-01-01", "bigger": {}, "smaller": []}',
            "bigger: not a list",
        ),
        (
            '{"run_id": "12", "commit": "abcdef1", "date": "2026-01-01", "bigger": [], '
            '"smaller": [{"name": "x", "value": "7"}]}',
            "smaller[0]: an entry needs a 'name' (text) and a finite number 'value'",
        ),
    ],
    ids=["json", "object", "run-id", "commit", "date", "entries", "entry"],
)
def test_a_bad_history_line_is_named_with_its_field(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "history.jsonl"
    good = json.dumps(make_run(1).to_json())
    path.write_text(f"{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(HistoryError) as exc:
        load_history(path)
    assert message in str(exc.value)


def write_bench(bench: Path, overhead: float = 11.0, engine: tuple[float, ...] = (39e6, 41e6)) -> None:
    """What benchmarks.yml leaves in bench/: performance.py's github-action-benchmark files and the
    engine.py --json outputs of the interleaved rounds."""
    (bench / "perf").mkdir(parents=True)
    (bench / "raw").mkdir()
    bigger = [
        {"name": "distributed 2w throughput", "unit": "backtests/s", "value": 900.0, "extra": "wall …"},
        {"name": "distributed 2w speedup", "unit": "x", "value": 1.8},
    ]
    smaller = [{"name": "distributed 2w overhead", "unit": "%", "value": overhead}]
    (bench / "perf" / "benchmark-bigger.json").write_text(json.dumps(bigger), encoding="utf-8")
    (bench / "perf" / "benchmark-smaller.json").write_text(json.dumps(smaller), encoding="utf-8")
    for i, rate in enumerate(engine, start=1):
        for side, value in (("base", rate / 2), ("head", rate)):
            doc = {"sweep": {"engine_bar_combos_per_s": value, "combinations": 345}}
            (bench / "raw" / f"{side}-{i}-engine.out").write_text(f"progress\n{json.dumps(doc)}\n")


def test_load_run_keeps_the_benchmark_entries_and_adds_the_engine_median(tmp_path: Path) -> None:
    write_bench(tmp_path)
    run = history.load_run(tmp_path / "perf", tmp_path / "raw", "77", SHA, "2026-12-07T03:40:00Z")
    assert run.bigger == (
        {"name": "distributed 2w throughput", "unit": "backtests/s", "value": 900.0, "extra": "wall …"},
        {"name": "distributed 2w speedup", "unit": "x", "value": 1.8},
        {"name": "engine sweep", "unit": "bar·combinations/s", "value": 40_000_000},  # head's median
    )
    assert run.smaller == ({"name": "distributed 2w overhead", "unit": "%", "value": 11.0},)
    empty = tmp_path / "no-raw"
    empty.mkdir()
    assert "engine sweep" not in str(
        history.load_run(tmp_path / "perf", empty, "78", SHA, "2026-12-08").bigger
    )
    with pytest.raises(HistoryError, match=r"benchmark-bigger\.json.*run performance\.py with --out first"):
        history.load_run(tmp_path / "raw", empty, "79", SHA, "2026-12-08")


def test_the_merge_command_appends_this_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = tmp_path / "bench"
    write_bench(bench)
    previous = tmp_path / "previous.jsonl"
    history.store_history(previous, [make_run(run_id) for run_id in (1, 2, 3)])
    out = bench / "history" / "history.jsonl"
    args = ["merge", "--history", str(previous), "--perf", str(bench / "perf"), "--raw", str(bench / "raw")]
    args += ["--run-id", "9", "--commit", SHA, "--keep", "3", "--out", str(out)]
    assert history.main([*args, "--date", "2026-12-07T03:40:00Z"]) == 0
    assert [r.run_id for r in load_history(out)] == ["2", "3", "9"]
    assert "history: 3 run(s), latest 9" in capsys.readouterr().out
    assert history.main(args) == 0  # the same run again, dated now: still one record of run 9
    runs = load_history(out)
    assert [r.run_id for r in runs] == ["2", "3", "9"] and runs[-1].date.endswith("Z")
    previous.write_text("{broken\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        history.main(args)
    assert exc.value.code == 2 and f"{previous}:1: not JSON" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ trend


def test_the_trend_charts_each_figure_over_the_last_runs() -> None:
    runs = [
        make_run(i, engine=(38 + i) * 1e6, speedup=1.7 + i / 100, overhead=10 + i / 10) for i in range(1, 6)
    ]
    text = render_trend(runs, last=3)
    assert text.startswith("## Trend (last 3 scheduled runs)\n")
    engine_chart = (
        "```mermaid\n"
        "xychart-beta\n"
        '    title "Engine sweep throughput (M bar·combinations/s)"\n'
        '    x-axis ["01-04", "01-05", "01-06"]\n'
        '    y-axis "M bar·combinations/s" 0 --> 50\n'
        "    line [41, 42, 43]\n"
        "```\n"
    )
    assert engine_chart in text
    assert "    line [1.73, 1.74, 1.75]\n" in text and '    y-axis "×" 0 --> 2\n' in text
    assert "    line [10.3, 10.4, 10.5]\n" in text and '    y-axis "%" 0 --> 20\n' in text
    assert text.count("```mermaid") == 3 and text.count("```") == 6
    # the table: latest against the median of the runs before it in the window (41 and 42: 41.5)
    assert "| Engine sweep throughput | 43 M bar·combinations/s | 41.5 M bar·combinations/s | +3.6% |" in text
    assert "| Distributed speedup | 1.75× | 1.73× | +0.9% | within ±10% |" in text  # median 1.735
    assert "| Pipeline overhead | 10.5 % | 10.4 % | +0.15 points | within ±3 points |" in text
    assert not any("drift" in line for line in text.splitlines() if line.startswith("| "))
    assert "2026-01-04 to 2026-01-06; latest run 5 on 0123456789ab." in text


def test_a_slow_drift_is_flagged_against_the_median_of_the_weeks_before() -> None:
    """Each week 2 % slower: no week is far from the last, but the latest is far below the median."""
    runs = [make_run(i, engine=40e6 * 0.98**i, overhead=10 + 0.6 * i) for i in range(12)]
    text = render_trend(runs)
    engine_row = next(line for line in text.splitlines() if line.startswith("| Engine sweep"))
    # latest 40 × 0.98^11 = 32.0 M against the median of weeks 0..10 (week 5: 36.2 M)
    assert engine_row == (
        "| Engine sweep throughput | 32 M bar·combinations/s | 36.2 M bar·combinations/s | -11.4% "
        "| **drift: worse** by more than 10% |"
    )
    assert (
        "    line [40, 39.2, 38.416, 37.648, 36.895, 36.157, 35.434, 34.725, 34.031, 33.35, 32.683, 32.029]\n"
        in text
    )
    overhead_row = next(line for line in text.splitlines() if line.startswith("| Pipeline overhead"))
    assert "| +3.60 points | **drift: worse** by more than 3 points |" in overhead_row
    # exactly at the tolerance is not a drift
    at = render_trend([make_run(i, overhead=10 + 0.5 * i) for i in range(12)])
    assert "| +3.00 points | within ±3 points |" in at
    speedup_row = next(line for line in text.splitlines() if line.startswith("| Distributed speedup"))
    assert "within ±10%" in speedup_row
    # better is not a drift: the overhead going down, the engine going up
    better = [make_run(i, engine=40e6 * 1.02**i, overhead=20 - 0.6 * i) for i in range(12)]
    rows = [line for line in render_trend(better).splitlines() if line.startswith("| ")]
    assert "drift" not in "".join(rows)
    assert sum("better by more than" in row for row in rows) == 2


def test_the_trend_copes_with_one_run_missing_figures_and_an_empty_history() -> None:
    one = render_trend([make_run(1, engine=None, workers=4)])
    assert one.startswith("## Trend (last 1 scheduled run)\n")
    assert "| Engine sweep throughput | — | — | — | not in these runs |" in one
    assert "| Distributed speedup | 1.8× | — | — | first run: nothing to compare |" in one  # 4 workers too
    assert one.count("```mermaid") == 2
    # a run without the engine figure is left out of that chart only
    mixed = render_trend([make_run(1), make_run(2, engine=None), make_run(3)])
    assert '    x-axis ["01-02", "01-04"]\n' in mixed and '    x-axis ["01-02", "01-03", "01-04"]\n' in mixed
    assert render_trend([]) == "## Trend (last 0 scheduled runs)\n\nNo scheduled run in the history yet.\n"


def test_chart_values_are_fixed_point_and_the_axis_ends_well() -> None:
    assert [history._num(v) for v in (40.0, 1.8049, -0.0001, 1e-9, 123456.5)] == [
        "40",
        "1.805",
        "0",
        "0",
        "123456.5",
    ]
    assert [history._nice_ceiling(v) for v in (0, 0.9, 1.98, 2.2, 44.0, 51.0)] == [1, 1, 2, 2.5, 50, 100]


def test_the_trend_command_writes_the_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.jsonl"
    history.store_history(path, [make_run(i) for i in range(1, 4)])
    out = tmp_path / "out" / "trend.md"
    assert history.main(["trend", str(path), "--last", "2", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_trend(load_history(path), last=2)
    with pytest.raises(SystemExit) as exc:
        history.main(["trend", str(path), "--last", "0", "--out", str(out)])
    assert exc.value.code == 2 and "--last must be at least 1" in capsys.readouterr().err
