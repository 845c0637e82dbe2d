"""The GitHub Actions workflows: they parse, trigger as documented, follow the hardening rules (permissions,
SHA pins, no expressions in scripts, no persisted credentials, timeouts), and the repository commands they
run exist and run here with the same arguments."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.script_loader import load_script, run_main

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = {"ci", "deploy", "backtest", "benchmarks", "benchmark-comment"}


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def triggers(doc: dict[str, Any]) -> dict[str, Any]:
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as True
    return on if isinstance(on, dict) else {key: None for key in ([on] if isinstance(on, str) else on)}


def steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def runs(doc: dict[str, Any]) -> list[str]:
    return [step["run"] for step in steps(doc) if "run" in step]


def step_named(doc: dict[str, Any], job: str, name: str) -> dict[str, Any]:
    return next(step for step in doc["jobs"][job]["steps"] if step.get("name") == name)


@pytest.fixture(params=sorted(NAMES))
def workflow(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, load(request.param)


def test_every_workflow_parses_and_none_is_missing() -> None:
    assert {path.stem for path in WORKFLOWS.glob("*.yml")} == NAMES
    for name in NAMES:
        assert load(name)["jobs"]


def test_triggers() -> None:
    ci = triggers(load("ci"))
    assert set(ci) == {"pull_request", "push"}
    assert load("ci")["concurrency"] == {"group": "ci-${{ github.ref }}", "cancel-in-progress": True}

    deploy = triggers(load("deploy"))
    assert set(deploy) == {"push", "workflow_dispatch"}
    assert deploy["push"]["branches"] == ["main"]
    assert set(deploy["push"]["paths"]) == {
        "layer/**",
        "lambdas/**",
        "scripts/**",
        "config/**",
        "requirements*.txt",
        ".github/workflows/deploy.yml",
    }
    env_input = deploy["workflow_dispatch"]["inputs"]["environment"]
    assert (env_input["type"], env_input["options"]) == ("choice", ["dev", "prod"])
    assert load("deploy")["concurrency"] == {
        "group": "deploy-${{ inputs.environment || 'dev' }}",
        "cancel-in-progress": False,
    }

    backtest = triggers(load("backtest"))
    assert set(backtest) == {"workflow_dispatch"}
    inputs = backtest["workflow_dispatch"]["inputs"]
    assert inputs["spec"]["options"] == ["batches/demo.yaml", "batches/benchmark.yaml", "custom"]
    for option in inputs["spec"]["options"][:-1]:
        assert (ROOT / option).is_file()
    for name in ("strategies", "symbols", "timeframe", "period", "grid"):
        assert inputs[name]["type"] == "string"
    assert inputs["priority"]["options"] == ["normal", "high"]
    assert inputs["environment"]["options"] == ["dev", "prod"]
    assert (inputs["target"]["options"], inputs["target"]["default"]) == (["local", "aws"], "local")

    bench = triggers(load("benchmarks"))
    assert set(bench) == {"schedule", "pull_request"}
    minute = bench["schedule"][0]["cron"].split()[0]
    assert minute.isdigit() and int(minute) % 2 == 1
    assert set(bench["pull_request"]["paths"]) == {
        "layer/**",
        "lambdas/**",
        "scripts/opslib/**",
        "benchmarks/**",
    }

    comment = triggers(load("benchmark-comment"))
    assert comment == {"workflow_run": {"workflows": ["benchmarks"], "types": ["completed"]}}
    assert load("benchmarks")["name"] == "benchmarks"


def test_permissions_and_timeouts(workflow: tuple[str, dict[str, Any]]) -> None:
    name, doc = workflow
    assert "permissions" in doc and doc["permissions"] in ({}, {"contents": "read"}), name
    for job_name, job in doc["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"{name}.{job_name}"
        assert "permissions" in job, f"{name}.{job_name}"
        if job["permissions"].get("id-token") == "write":
            assert "environment" in job, f"{name}.{job_name}: the OIDC role trusts only environments"


def test_only_the_comment_workflow_can_write_and_it_runs_no_checkout() -> None:
    for name in NAMES - {"benchmark-comment"}:
        for job in load(name)["jobs"].values():
            writes = {key for key, value in job["permissions"].items() if value == "write"}
            assert writes <= {"id-token"}, name
    job = load("benchmark-comment")["jobs"]["comment"]
    assert job["permissions"] == {"pull-requests": "write", "actions": "read"}
    assert not any("checkout" in step.get("uses", "") for step in job["steps"])
    text = (WORKFLOWS / "benchmark-comment.yml").read_text(encoding="utf-8")
    assert "<!-- makenaide-benchmark -->" in text and "^[0-9]{1,10}$" in text


def test_every_action_is_pinned_to_a_commit_with_a_version_comment(
    workflow: tuple[str, dict[str, Any]],
) -> None:
    name, _ = workflow
    lines = [line for line in (WORKFLOWS / f"{name}.yml").read_text(encoding="utf-8").splitlines()]
    uses = [line for line in lines if re.match(r"\s*(-\s+)?uses:", line)]
    assert uses, name
    for line in uses:
        assert re.search(r"uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


def test_no_expressions_from_inputs_or_events_in_scripts(workflow: tuple[str, dict[str, Any]]) -> None:
    name, doc = workflow
    for script in runs(doc):
        assert "${{" not in script, f"{name}: pass values through env: instead\n{script}"


def test_every_checkout_drops_its_credentials(workflow: tuple[str, dict[str, Any]]) -> None:
    name, doc = workflow
    for step in steps(doc):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, name


def test_every_repository_command_exists(workflow: tuple[str, dict[str, Any]]) -> None:
    name, doc = workflow
    for script in runs(doc):
        for path in re.findall(r"\b((?:scripts|benchmarks)/[\w/]+\.py)\b", script):
            assert (ROOT / path).is_file(), f"{name}: {path}"
        for target in re.findall(r"\bmake ([\w-]+)", script):
            makefiles = (ROOT / "Makefile").read_text() + (ROOT / "workflow-lint.mk").read_text()
            assert re.search(rf"^{re.escape(target)}:", makefiles, re.M), f"{name}: make {target}"


def test_the_plan_command_runs_against_moto(
    mocked_aws: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = load("deploy")
    plan = step_named(doc, "plan", "plan into the job summary")["run"]
    apply = step_named(doc, "apply", "apply")["run"]
    for flag in (
        '--environment "$STACK_ENVIRONMENT"',
        '--summary "$GITHUB_STEP_SUMMARY"',
        "--layer-zip build/layer.zip",
    ):
        assert flag in plan and flag in apply
    assert "--dry-run" in plan and "--yes" in apply and "--dry-run" not in apply
    summary = tmp_path / "summary.md"
    args = [
        "--environment",
        "dev",
        "--dry-run",
        "--summary",
        str(summary),
        "--layer-zip",
        "/nonexistent/layer.zip",
    ]
    code, out, err = run_main(load_script("deploy_all"), capsys, *args, "--json")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["changes"]
    assert summary.read_text().strip()


def smoke_spec() -> str:
    script = step_named(
        load("deploy"), "smoke", "write the smoke spec (one symbol, one strategy, so one job)"
    )["run"]
    match = re.search(r"<<'SPEC'\n(.*?)\nSPEC", script, re.S)
    assert match
    return match.group(1)


def test_the_smoke_batch_runs_locally_as_the_workflow_runs_it(tmp_path: Path) -> None:
    run = step_named(load("deploy"), "smoke", "run the smoke batch")["run"]
    assert "--target aws" in run and "--json" in run and "--reports" in run
    spec = tmp_path / "smoke.yaml"
    spec.write_text(smoke_spec())
    reports = tmp_path / "reports"
    result = subprocess.run(
        [
            sys.executable,
            "scripts/run_batch.py",
            str(spec),
            "--workers",
            "1",
            "--json",
            "--reports",
            str(reports),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert (doc["jobs_total"], doc["jobs_failed"], doc["backtests"]) == (1, 0, 4)
    report = Path(doc["report"])
    for name in ("report.md", "results.csv", "summary.json"):
        assert (report.parent / name).is_file()


def run_spec_writer(tmp_path: Path, **inputs: str) -> Path:
    tmp_path.mkdir()
    script = step_named(load("backtest"), "batch", "write the spec")["run"]
    match = re.search(r"<<'PY'\n(.*?)\nPY", script, re.S)
    assert match
    env = {**os.environ, "RUNNER_TEMP": str(tmp_path), "GITHUB_ENV": str(tmp_path / "github_env")}
    env.update({key.upper(): value for key, value in inputs.items()})
    subprocess.run([sys.executable, "-c", match.group(1)], cwd=ROOT, env=env, check=True, capture_output=True)
    assert (tmp_path / "github_env").read_text() == f"SPEC={tmp_path / 'spec.yaml'}\n"
    return tmp_path / "spec.yaml"


def test_the_backtest_form_writes_a_valid_spec(tmp_path: Path) -> None:
    from backtesting_modules.jobs.spec import load_spec

    custom = run_spec_writer(
        tmp_path / "custom",
        spec_choice="custom",
        strategies="SMA_Crossover, RSI_MeanReversion",
        symbols="KRW-BTC,KRW-ETH",
        timeframe="1h",
        period="2000",
        grid="SMA_Crossover.fast=5:20:5; SMA_Crossover.slow=30,40; RSI_MeanReversion.period=7,14",
        priority="high",
    )
    spec = yaml.safe_load(custom.read_text())
    assert spec["priority"] == "high" and spec["symbols"] == ["KRW-BTC", "KRW-ETH"]
    assert spec["strategies"][0]["grid"] == {"fast": "5:20:5", "slow": [30, 40]}
    load_spec(custom)
    demo = run_spec_writer(
        tmp_path / "demo",
        spec_choice="batches/demo.yaml",
        priority="normal",
        strategies="",
        symbols="",
        timeframe="",
        period="",
        grid="",
    )
    load_spec(demo)
    assert yaml.safe_load(demo.read_text())["name"] == "demo"


def test_the_benchmark_commands_run_locally_with_the_workflows_arguments(tmp_path: Path) -> None:
    """benchmarks.yml and ci.yml run these commands: the quick engine benchmark, and performance.py (here on
    a tiny spec, base then head with --compare, and a small scalability sweep)."""
    root = Path(__file__).resolve().parents[2]
    bench = load("benchmarks")
    runs = " ".join(str(step.get("run", "")) for step in bench["jobs"]["bench"]["steps"])
    assert "benchmarks/engine.py --quick --json" in runs
    assert "benchmarks/performance.py" in runs and "--compare" in runs and "--out" in runs
    ci_runs = " ".join(
        str(step.get("run", "")) for job in load("ci")["jobs"].values() for step in job["steps"]
    )
    assert "make bench-quick" in ci_runs
    engine = subprocess.run(
        [sys.executable, "benchmarks/engine.py", "--quick", "--json", "--out", str(tmp_path / "engine.md")],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(engine.stdout.strip().splitlines()[-1])
    assert result["sweep"]["combinations"] == 345 and (tmp_path / "engine.md").exists()
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        "name: tiny\njob_type: PARAMETER_OPTIMIZATION\nsymbols: [KRW-BTC]\n"
        "data: {source: synthetic, periods: 1000, seed: 3}\nconfig: {filters: null}\n"
        "strategies:\n  - name: SMA_Crossover\n    grid: {fast: '2:11:1', slow: '20:39:1'}\n"
    )

    def performance(*extra: str) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "benchmarks/performance.py", str(spec), "--repeats", "2", "--json", *extra],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        doc: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return doc

    base = performance("--out", str(tmp_path / "base"))
    assert {"sequential_s", "distributed_s", "speedup", "workers", "backtests"} <= set(base)
    assert (base["backtests"], base["workers"]) == (200, 2)
    head = performance(
        "--compare",
        str(tmp_path / "base" / "results.json"),
        "--out",
        str(tmp_path / "head"),
        "--scalability",
        "--sizes",
        "10,200/4",
        "--max-workers",
        "2",
    )
    report = (tmp_path / "head" / "report.md").read_text()
    assert "## Against the base run" in report and "## Scalability" in report and "xychart-beta" in report
    cells = json.loads((tmp_path / "head" / "results.json").read_text())["scalability"]
    assert [(c["backtests"], c["jobs"], c["workers"]) for c in cells] == [
        (10, 1, 1),
        (10, 1, 2),
        (200, 4, 1),
        (200, 4, 2),
    ]
    for name in ("benchmark-bigger.json", "benchmark-smaller.json"):
        entries = json.loads((tmp_path / "head" / name).read_text())
        assert entries and all({"name", "unit", "value"} <= set(e) for e in entries)
    assert head["backtests"] == 200
