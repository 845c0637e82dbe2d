"""benchmarks/ci_report.py, bench/report.md of benchmarks.yml: medians of the interleaved engine runs per
dotted key, the base-head table with its ratio ("—" where the base has no value), the performance report
under a demoted heading, and pr-number.txt for benchmark-comment.yml (the workflow step itself runs in
test_workflows.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_report", ROOT / "benchmarks" / "ci_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ci_report"] = module
    spec.loader.exec_module(module)
    return module


ci_report = _load()

PERF = "# Performance (quick)\n\nsome table\n\n## Against the base run\n\n# Performance notes\n"


def engine_out(result: dict[str, Any]) -> str:
    """What engine.py --json prints: progress lines, then the JSON result on the last line."""
    return "engine benchmark (quick)\nsweep: 345 combinations\n" + json.dumps(result) + "\n"


def write_raw(raw: Path, runs: dict[str, dict[str, Any]]) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for name, result in runs.items():
        (raw / f"{name}-engine.out").write_text(engine_out(result), encoding="utf-8")


def test_flatten_keeps_numbers_under_dotted_keys() -> None:
    doc = {"sweep": {"combinations": 345, "wall_s": 1.5, "ok": True, "label": "x"}, "runs": [1, 2], "n": 0}
    assert list(ci_report.flatten(doc)) == [("sweep.combinations", 345.0), ("sweep.wall_s", 1.5), ("n", 0.0)]
    assert ci_report.last_json('progress\n{"a": 1}\n\n') == {"a": 1}
    assert ci_report.last_json("  \n") == {}


def test_medians_over_runs() -> None:
    runs = [{"t_s": 1.0, "x": {"rate": 10}}, {"t_s": 3.0, "x": {"rate": 30}, "late": 5}, {"t_s": 2.5}]
    assert ci_report.medians(runs) == {"t_s": 2.5, "x.rate": 20.0, "late": 5.0}
    assert ci_report.medians([]) == {}


def test_the_report_of_a_pull_request(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(
        raw,
        {
            "base-1": {"single": {"wall_s": 2.0}, "sweep": {"rate": 1000, "combinations": 345}},
            "head-1": {"single": {"wall_s": 1.0}, "sweep": {"rate": 1500, "combinations": 345}, "new_s": 0.5},
            "base-2": {"single": {"wall_s": 4.0}, "sweep": {"rate": 3000, "combinations": 345}},
            "head-2": {"single": {"wall_s": 2.0}, "sweep": {"rate": 2500, "combinations": 345}, "new_s": 0.7},
        },
    )
    perf = tmp_path / "perf" / "report.md"
    perf.parent.mkdir()
    perf.write_text(PERF, encoding="utf-8")
    out = tmp_path / "bench" / "report.md"
    out.parent.mkdir()
    args = ["--raw", str(raw), "--perf", str(perf), "--out", str(out), "--pr", "42"]
    assert ci_report.main(args) == 0
    assert out.read_text(encoding="utf-8") == (
        "# Benchmarks\n"
        "\n"
        "Pull request #42: head against base in the same job.\n"
        "\n"
        "## Engine (medians of 2 interleaved runs)\n"
        "\n"
        "| metric | base | head | head / base |\n"
        "|---|---:|---:|---:|\n"
        "| `single.wall_s` | 3 | 1.5 | 0.50× |\n"  # medians: base (2+4)/2, head (1+2)/2
        "| `sweep.rate` | 2000 | 2000 | 1.00× |\n"
        "| `sweep.combinations` | 345 | 345 | 1.00× |\n"
        "| `new_s` | — | 0.6 | — |\n"  # a key the base lacks
        "\n"
        "For times (`*_s`) a ratio below 1 is faster; for rates above 1 is better.\n"
        "\n"
        "## Performance (quick)\n"  # only the first '# Performance' is demoted
        "\n"
        "some table\n"
        "\n"
        "## Against the base run\n"
        "\n"
        "# Performance notes\n"
        "\n"
    )
    assert (out.parent / "pr-number.txt").read_text(encoding="utf-8") == "42\n"


def test_a_scheduled_run_has_no_base_and_no_pr_number(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, {"head-1": {"wall_s": 1.0}, "head-2": {"wall_s": 3.0}})
    perf = tmp_path / "perf.md"
    perf.write_text("# Performance\n\nfull mode\n", encoding="utf-8")
    out = tmp_path / "report.md"
    assert ci_report.main(["--raw", str(raw), "--perf", str(perf), "--out", str(out), "--pr", ""]) == 0
    text = out.read_text(encoding="utf-8")
    assert "Scheduled run on the default branch (no base to compare).\n" in text
    assert "| `wall_s` | — | 2 | — |\n" in text
    assert text.endswith("\n## Performance\n\nfull mode\n\n")
    assert not (tmp_path / "pr-number.txt").exists()


def test_rows_format_the_ratio_and_hide_a_zero_or_missing_base() -> None:
    assert ci_report.engine_row("a_s", 1.23456, 2.0) == "| `a_s` | 2 | 1.235 | 0.62× |"
    assert ci_report.engine_row("a_s", 1.0, 0.0) == "| `a_s` | 0 | 1 | — |"  # no division by zero
    assert ci_report.engine_row("a_s", 1.0, None) == "| `a_s` | — | 1 | — |"
    assert ci_report.demote("## Performance\n") == "### Performance\n"  # as before: the first occurrence


def test_bad_inputs_exit_2_with_the_file_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, {})
    perf = tmp_path / "missing.md"
    with pytest.raises(SystemExit) as exc:
        ci_report.main(["--raw", str(raw), "--perf", str(perf), "--out", str(tmp_path / "r.md")])
    assert exc.value.code == 2 and f"--perf {perf}" in capsys.readouterr().err
    perf.write_text("# Performance\n", encoding="utf-8")
    (raw / "head-1-engine.out").write_text("Traceback (most recent call last):\n  boom\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        ci_report.main(["--raw", str(raw), "--perf", str(perf), "--out", str(tmp_path / "r.md")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "head-1-engine.out: the last line is not engine.py's JSON" in err
    assert not (tmp_path / "r.md").exists()
