"""scripts/workflow_spec.py, the spec writer of backtest.yml's form: the custom spec built from the form's
strings, a spec file with the form's priority, validation with the project's spec parser, and the bad inputs
that exit 2 with the input named and the fix (the workflow step itself runs in test_workflows.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from backtesting_modules.jobs.spec import Priority, load_spec, parse_spec
from tests.script_loader import load_script, run_main

ROOT = Path(__file__).resolve().parents[2]
ws = load_script("workflow_spec")


@pytest.fixture(autouse=True)
def _at_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the workflow runs from the checkout: spec files are relative to it


def test_the_custom_spec_is_built_from_the_form_strings() -> None:
    spec = ws.build_spec(
        spec="custom",
        strategies=" SMA_Crossover, RSI_MeanReversion ,",
        symbols="KRW-BTC, KRW-ETH;KRW-XRP",
        timeframe=" 4h ",
        period=" 2000 ",
        grid="SMA_Crossover.fast=5:20:5; SMA_Crossover.slow = 30, 40 ;RSI_MeanReversion.lower=20,27.5;"
        " RSI_MeanReversion.period=7,14",
        priority="high",
    )
    assert spec == {
        "name": "actions-custom",
        "job_type": "PARAMETER_OPTIMIZATION",
        "symbols": ["KRW-BTC", "KRW-ETH", "KRW-XRP"],
        "data": {"source": "synthetic", "seed": 42, "periods": 2000, "freq": "4h"},
        "config": {"filters": None},
        "strategies": [
            # a range stays the spec's "start:stop:step" string; a comma list becomes YAML scalars
            {"name": "SMA_Crossover", "grid": {"fast": "5:20:5", "slow": [30, 40]}},
            {"name": "RSI_MeanReversion", "grid": {"lower": [20, 27.5], "period": [7, 14]}},
        ],
        "ranking": {"metric": "sharpe", "top": 20},
        "priority": "high",
    }
    parsed = parse_spec(spec)
    assert parsed.priority is Priority.HIGH and parsed.data.periods == 2000 and parsed.data.timeframe == "4h"
    assert [s.grid_dict() for s in parsed.strategies] == [
        {"fast": [5, 10, 15, 20], "slow": [30, 40]},
        {"lower": [20.0, 27.5], "period": [7, 14]},
    ]


def test_s3_data_reads_the_uri_in_place_with_the_window_and_gap_policy() -> None:
    spec = ws.build_spec(
        spec="custom",
        strategies="SMA_Crossover",
        symbols="KRW-BTC,KRW-ETH",
        timeframe="1h",
        period=" 2024-01-01..2025-01-01 ",
        grid="fast=5:50:5; slow=20:200:10",
        data="s3://my-market-data/upbit/{symbol}_1h.csv gaps=fill",
        target="aws",
    )
    assert spec["data"] == {
        "source": "s3",
        "uri": "s3://my-market-data/upbit/{symbol}_1h.csv",
        "timeframe": "1h",
        "gaps": "fill",
        "since": "2024-01-01",
        "until": "2025-01-01",
    }
    parsed = parse_spec(spec)
    assert (parsed.data.uri, parsed.data.gaps) == ("s3://my-market-data/upbit/{symbol}_1h.csv", "fill")
    open_ended = ws.build_spec(
        spec="custom",
        strategies="SMA_Crossover",
        symbols="KRW-BTC",
        timeframe="1h",
        period="2024-06-01..",
        grid="",
        data="s3://b/{symbol}.parquet",
        target="aws",
    )
    assert open_ended["data"] == {
        "source": "s3",
        "uri": "s3://b/{symbol}.parquet",
        "timeframe": "1h",
        "since": "2024-06-01",
    }


def test_an_unscoped_axis_applies_to_every_strategy_and_a_scoped_one_to_its_strategy() -> None:
    grids = ws.parse_grid("fast=5:50:5; Other.x=1,2; ;  slow=a,true,0.5", ["SMA_Crossover", "Other"])
    assert grids == {
        "SMA_Crossover": {"fast": "5:50:5", "slow": ["a", True, 0.5]},
        "Other": {"fast": "5:50:5", "x": [1, 2], "slow": ["a", True, 0.5]},
    }
    assert ws.parse_grid("", ["SMA_Crossover"]) == {"SMA_Crossover": {}}
    assert ws.split(" a, ,b;c ") == ["a", "b", "c"]


def test_main_writes_the_custom_spec_and_it_loads_with_load_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "spec.yaml"
    code, stdout, stderr = run_main(
        ws,
        capsys,
        "--spec=custom",
        "--strategies=SMA_Crossover",
        "--symbols=KRW-BTC,KRW-ETH",
        "--timeframe=1h",
        "--period=1000",
        "--grid=fast=5:50:5; slow=20:200:10",
        "--priority=normal",
        f"--out={out}",
    )
    assert code == 0, stderr
    assert "spec ok" in stderr
    text = out.read_text(encoding="utf-8")
    assert stdout == text + "\n"  # printed as written (the step's log shows the spec)
    assert list(yaml.safe_load(text)) == [
        "name",
        "job_type",
        "symbols",
        "data",
        "config",
        "strategies",
        "ranking",
        "priority",
    ]
    spec = load_spec(out)
    assert (spec.name, spec.symbols, spec.priority) == (
        "actions-custom",
        ("KRW-BTC", "KRW-ETH"),
        Priority.NORMAL,
    )
    assert spec.strategies[0].grid_dict() == {"fast": list(range(5, 51, 5)), "slow": list(range(20, 201, 10))}


def test_a_spec_file_gets_the_forms_priority_and_ignores_the_custom_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "spec.yaml"
    code, _, stderr = run_main(
        ws,
        capsys,
        "--spec",
        "batches/demo.yaml",
        "--strategies",
        "Nope",
        "--grid",
        "not a grid",
        "--period",
        "",
        "--priority",
        "high",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    demo = yaml.safe_load((ROOT / "batches" / "demo.yaml").read_text(encoding="utf-8"))
    written = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert demo["priority"] == "normal"
    assert written == {**demo, "priority": "high"}
    assert list(written) == list(demo)  # the file's key order is kept
    spec = load_spec(out)
    assert (spec.name, spec.priority) == ("demo", Priority.HIGH)
    # without --priority the file's own priority stands
    assert ws.build_spec(spec="batches/demo.yaml") == demo


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--grid", "fast 5:50:5"],
            "grid: axis 'fast 5:50:5' has no '='; write each axis as param=start:stop:step or param=a,b,c",
        ),
        (
            ["--grid", "fast=5:50:5; RSI_MeanReversion.period=7,14"],
            "grid: 'RSI_MeanReversion.period' names the strategy 'RSI_MeanReversion', which is not in "
            "strategies (SMA_Crossover); add it to strategies or drop the 'RSI_MeanReversion.' prefix.",
        ),
        (["--period", "1y"], "period: '1y' is not a whole number of bars; give an integer, e.g. 8760"),
        (["--period", "87.6"], "period: '87.6' is not a whole number of bars"),
        (["--data", "data/upbit/{symbol}_1h.csv"], "data: 'data/upbit/{symbol}_1h.csv' is neither synthetic"),
        (
            ["--data", "s3://b/{symbol}.csv", "--target", "local"],
            "data: S3 bars run on the deployed stack only",
        ),
        (["--data", "s3://b/{symbol}.csv fill", "--target", "aws"], "data: 'fill' is not an option"),
        (
            ["--data", "s3://b/{symbol}.csv", "--target", "aws", "--period", "2024-01-01"],
            "period: '2024-01-01' is not a window",
        ),
    ],
    ids=[
        "axis-without-equals",
        "scope-not-in-strategies",
        "period-not-a-number",
        "period-fractional",
        "data-not-s3",
        "s3-on-local",
        "s3-bad-option",
        "s3-period-not-a-window",
    ],
)
def test_bad_form_input_exits_2_naming_the_input_and_the_fix(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "spec.yaml"
    form = {"--strategies": "SMA_Crossover", "--symbols": "KRW-BTC", "--period": "1000", "--grid": ""}
    form.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = [item for pair in form.items() for item in pair]
    code, stdout, stderr = run_main(ws, capsys, "--spec", "custom", *argv, "--out", str(out))
    assert code == 2
    assert f"error: {message}" in stderr
    assert not out.exists() and not stdout  # nothing written: the input is refused before the spec exists


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategies", "SMA_Crossover,Nope"], "strategies[1].name"),
        (["--strategies", ""], "strategies: is empty"),
        (["--grid", "fast=5:50"], "strategies[0].grid.fast: '5:50' is not 'start:stop:step'"),
        (["--timeframe", "sometimes"], "data.freq"),
        (["--priority", "urgent"], "priority"),
        (["--data", "s3://b/{symbol}.csv gaps=sometimes", "--target", "aws", "--period", ""], "data.gaps"),
        (["--data", "s3://b/x.csv", "--target", "aws", "--period", ""], "data.uri"),
        (["--data", "s3://b/{symbol}.csv", "--target", "aws", "--period", "2025-01-01..2024-01-01"], "until"),
    ],
    ids=[
        "unknown-strategy",
        "no-strategy",
        "bad-range",
        "bad-timeframe",
        "bad-priority",
        "bad-gaps",
        "uri-without-symbol",
        "window-backwards",
    ],
)
def test_a_spec_the_parser_rejects_exits_2_with_the_spec_error(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "spec.yaml"
    form = {"--strategies": "SMA_Crossover", "--symbols": "KRW-BTC", "--period": "1000", "--grid": ""}
    form.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = [item for pair in form.items() for item in pair]
    code, stdout, stderr = run_main(ws, capsys, "--spec=custom", *argv, f"--out={out}")
    assert code == 2
    assert f"error: {out}: " in stderr and message in stderr  # load_spec's message: the file, then the field
    assert "spec ok" not in stderr
    assert out.read_text(encoding="utf-8") in stdout  # written and shown, so the log has what was refused


def test_a_missing_or_malformed_spec_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = run_main(ws, capsys, "--spec", "batches/missing.yaml", "--priority", "normal")
    assert code == 2 and "spec: cannot read 'batches/missing.yaml'" in stderr
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    code, _, stderr = run_main(ws, capsys, "--spec", str(listed))
    assert code == 2 and "is not a mapping" in stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [\n", encoding="utf-8")
    code, _, stderr = run_main(ws, capsys, "--spec", str(broken))
    assert code == 2 and "is not valid YAML" in stderr
