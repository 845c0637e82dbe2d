"""benchmarks/calibrate.py with tiny parameters, and the table it writes: every built-in strategy is
calibrated, and the planner sizes each strategy's jobs by its own figure."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from backtesting_modules.jobs import BatchSpec, parse_spec, plan_jobs
from backtesting_modules.jobs.planner import DEFAULT_THROUGHPUT, batch_throughput, throughput_for
from backtesting_modules.jobs.throughput_table import MEASURED, MEASURED_SETS

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import calibrate  # noqa: E402


def test_every_built_in_strategy_is_calibrated_for_grids_and_for_sets() -> None:
    # A strategy added to the registry without a figure would be planned at the default: calibrate it.
    assert set(MEASURED) == set(calibrate.built_in_strategies()) == set(MEASURED_SETS)
    assert all(1e6 < rate < 1e9 for rate in [*MEASURED.values(), *MEASURED_SETS.values()])
    assert throughput_for("SMA_Crossover") == MEASURED["SMA_Crossover"]
    assert throughput_for("SMA_Crossover", sets=True) == MEASURED_SETS["SMA_Crossover"]
    assert (
        throughput_for("A_User_Strategy")
        == DEFAULT_THROUGHPUT
        == throughput_for("A_User_Strategy", sets=True)
    )


def _spec(strategy: str, grid: dict[str, list[float]]) -> BatchSpec:
    return parse_spec(
        {
            "name": "sizing",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": ["KRW-BTC"],
            "data": {"source": "synthetic", "periods": 1000, "seed": 1},
            "strategies": [{"name": strategy, "grid": grid}],
        }
    )


def test_plan_jobs_sizes_each_strategy_by_its_own_rate() -> None:
    for name in ("SMA_Crossover", "Static_Donchian_Supertrend"):
        spec = _spec(name, calibrate.calibration_grid(name, 40))
        own = plan_jobs(spec, "b", bars=1000, target_seconds=0.01)
        given = plan_jobs(spec, "b", bars=1000, target_seconds=0.01, throughput=throughput_for(name))
        assert own == given and len(own) > 1
        cap = round(0.01 * throughput_for(name) / 1000)  # combinations in about 0.01 s of its engine time
        assert all(j.stop - j.start <= cap for j in own)
        assert max(j.stop - j.start for j in own) > cap // 3  # tiles step 1-2-3: none needlessly small


def test_a_batch_throughput_weights_each_strategy_by_its_work() -> None:
    spec = parse_spec(
        {
            "name": "mixed",
            "job_type": "PARAMETER_OPTIMIZATION",
            "symbols": ["KRW-BTC"],
            "data": {"source": "synthetic", "periods": 1000, "seed": 1},
            "strategies": [
                {"name": "SMA_Crossover", "grid": {"fast": [5, 10], "slow": [30, 60]}},
                {"name": "Static_Donchian_Supertrend", "params": {}},
            ],
        }
    )
    # 4 SMA combinations and 1 Static one: the harmonic mean weighted by work, between the two rates.
    a, b = throughput_for("SMA_Crossover"), throughput_for("Static_Donchian_Supertrend")
    assert batch_throughput(spec) == pytest.approx(5 / (4 / a + 1 / b))


def test_calibration_measures_both_rates_and_writes_a_table_the_planner_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "throughput_table.py"
    assert calibrate.main(["--quick", "--json", "--write", "--table", str(table)]) == 0
    measured = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(measured) == set(calibrate.built_in_strategies())
    assert all(m["throughput"] > 0 and m["sets_throughput"] > 0 for m in measured.values())
    text = table.read_text(encoding="utf-8")
    assert "e+" not in text  # float literals as ruff formats them: `make lint` passes on a written table
    written = ast.parse(text)
    names = {t.id for node in written.body if isinstance(node, ast.AnnAssign) for t in [node.target]}
    assert names == {"MEASURED", "MEASURED_SETS"}
    namespace: dict[str, dict[str, float]] = {}
    exec(compile(written, str(table), "exec"), namespace)
    assert namespace["MEASURED"]["SMA_Crossover"] == pytest.approx(
        measured["SMA_Crossover"]["throughput"], rel=1e-3
    )


def test_the_check_runs_planned_jobs_and_reports_measured_against_planned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert calibrate.main(["--check", "--quick", "--json"]) == 0
    out = capsys.readouterr().out
    checked = json.loads(out.strip().splitlines()[-1])
    assert set(checked) == set(calibrate.built_in_strategies())
    for c in checked.values():
        assert c["jobs_run"] >= 1 and c["planned_s"] > 0 and c["measured_s"] > 0
        assert c["ratio_min"] <= c["ratio_median"] <= c["ratio_max"]
    assert "measured / planned" in out
