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
    assert inputs["spec"]["options"] == [
        "batches/demo.yaml",
        "batches/benchmark.yaml",
        "batches/search.yaml",
        "custom",
    ]
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


def test_only_the_comment_workflow_can_write_and_it_checks_out_only_the_default_branch() -> None:
    for name in NAMES - {"benchmark-comment"}:
        for job in load(name)["jobs"].values():
            writes = {key for key, value in job["permissions"].items() if value == "write"}
            assert writes <= {"id-token"}, name
    job = load("benchmark-comment")["jobs"]["comment"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write", "actions": "read"}
    # workflow_run checks out the default branch; no `ref:` or `repository:` may point it at the PR's code,
    # and the only code run from it is ci_report.py (the comment's cut)
    checkouts = [step for step in job["steps"] if "checkout" in step.get("uses", "")]
    assert len(checkouts) == 1 and set(checkouts[0]["with"]) == {"persist-credentials", "sparse-checkout"}
    scripts = " ".join(runs(load("benchmark-comment")))
    assert re.findall(r"python[\w.]*\s+(\S+)", scripts) == ["benchmarks/ci_report.py"]
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


def run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `run:` script as GitHub runs it (bash --noprofile --norc -eo pipefail), with this interpreter for
    .venv/bin/python and the repository's scripts wherever cwd is."""
    script = script.replace(".venv/bin/python", sys.executable)
    for folder in ("scripts", "benchmarks"):
        script = re.sub(rf"(?<![\w/]){folder}/", f"{ROOT / folder}/", script)
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


FORM_VARIABLES = (
    "SPEC_CHOICE",
    "STRATEGIES",
    "SYMBOLS",
    "TIMEFRAME",
    "PERIOD",
    "GRID",
    "PRIORITY",
    "DATA",
    "TARGET",
)


def test_the_backtest_form_stays_within_githubs_limit_of_ten_inputs() -> None:
    inputs = triggers(load("backtest"))["workflow_dispatch"]["inputs"]
    assert len(inputs) <= 10, sorted(inputs)


def test_no_workflow_runs_inline_python() -> None:
    """`.github/workflows/` calls the scripts, never logic of its own."""
    for name in NAMES:
        for script in runs(load(name)):
            assert not re.search(r"python[\w.]*\s+(-c\b|-\s|-$)", script, re.M), f"{name}: inline Python"
            assert "<<'PY'" not in script and '<<"PY"' not in script and "<<PY" not in script, name


def unquoted_expansions(script: str) -> list[str]:
    """The `$VAR` expansions of a shell script that are outside double quotes (single quotes expand none)."""
    found, quote, i = [], "", 0
    while i < len(script):
        char = script[i]
        if char == "\\" and quote != "'":
            i += 2
            continue
        if char in "'\"" and quote in ("", char):
            quote = "" if quote else char
        elif char == "$" and not quote:
            match = re.match(r"\$\{?\w*", script[i:])
            assert match
            found.append(match.group(0))
        i += 1
    return found


def test_unquoted_expansions_are_found() -> None:
    script = 'a --x="$A" "$B/c" \'$D\' $E\necho "x=${F}" >> $G'
    assert unquoted_expansions(script) == ["$E", "$G"]


def test_the_form_reaches_the_spec_step_only_through_env_as_quoted_arguments() -> None:
    job = load("backtest")["jobs"]["batch"]
    for variable in FORM_VARIABLES:
        assert job["env"][variable].startswith("${{ inputs."), variable
    run = step_named(load("backtest"), "batch", "write and validate the spec")["run"]
    assert "scripts/workflow_spec.py" in run
    assert set(FORM_VARIABLES) <= set(re.findall(r"\$\{?(\w+)", run))
    # every expansion quoted: a form string is one argument, never split, globbed or run
    assert unquoted_expansions(run) == [], run
    names = [step.get("name") for step in job["steps"]]
    assert "validate the spec" not in names  # the script validates what it writes (load_spec's rules)


def run_spec_step(tmp_path: Path, **inputs: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    tmp_path.mkdir()
    script = step_named(load("backtest"), "batch", "write and validate the spec")["run"]
    env = {"RUNNER_TEMP": str(tmp_path), "GITHUB_ENV": str(tmp_path / "github_env")}
    env.update({key.upper(): value for key, value in inputs.items()})
    return run_step(script, ROOT, env), tmp_path / "spec.yaml"


def test_the_backtest_form_writes_a_valid_spec(tmp_path: Path) -> None:
    from backtesting_modules.jobs.spec import load_spec

    done, custom = run_spec_step(
        tmp_path / "custom",
        spec_choice="custom",
        strategies="SMA_Crossover, RSI_MeanReversion",
        symbols="KRW-BTC,KRW-ETH",
        timeframe="1h",
        period="2000",
        grid="SMA_Crossover.fast=5:20:5; SMA_Crossover.slow=30,40; RSI_MeanReversion.period=7,14",
        priority="high",
        data="synthetic",
        target="local",
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "custom" / "github_env").read_text() == f"SPEC={custom}\n"
    spec = yaml.safe_load(custom.read_text())
    assert spec["priority"] == "high" and spec["symbols"] == ["KRW-BTC", "KRW-ETH"]
    assert spec["strategies"][0]["grid"] == {"fast": "5:20:5", "slow": [30, 40]}
    load_spec(custom)
    done, demo = run_spec_step(
        tmp_path / "demo",
        spec_choice="batches/demo.yaml",
        priority="normal",
        strategies="",
        symbols="",
        timeframe="",
        period="",
        grid="",
        data="",
        target="local",
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "demo" / "github_env").read_text() == f"SPEC={demo}\n"
    load_spec(demo)
    assert yaml.safe_load(demo.read_text())["name"] == "demo"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"grid": "fast 5:50:5"}, "grid: axis 'fast 5:50:5' has no '='"),
        ({"grid": "RSI_MeanReversion.period=7,14"}, "not in strategies (SMA_Crossover)"),
        ({"period": "one year"}, "period: 'one year' is not a whole number of bars"),
        ({"data": "s3://b/{symbol}.csv"}, "S3 bars run on the deployed stack only (target aws)"),
        ({"data": "s3://b/{symbol}.csv gaps=fill", "target": "aws", "period": "2024"}, "since..until"),
        ({"strategies": "SMA_Crossover,Nope"}, "strategies[1].name"),  # load_spec's error, same step
        ({"grid": "-fast=5:50:5; $(touch PWNED); `touch PWNED`"}, "has no '='"),  # data, not code
    ],
    ids=[
        "axis-without-equals",
        "scope-not-listed",
        "period",
        "s3-on-local",
        "s3-window",
        "spec-error",
        "hostile-string",
    ],
)
def test_bad_form_input_fails_the_spec_step_with_status_2(
    tmp_path: Path, inputs: dict[str, str], message: str
) -> None:
    form = {
        "spec_choice": "custom",
        "strategies": "SMA_Crossover",
        "symbols": "KRW-BTC",
        "timeframe": "1h",
        "period": "1000",
        "grid": "fast=5:50:5; slow=20:200:10",
        "priority": "normal",
        "data": "synthetic",
        "target": "local",
        **inputs,
    }
    pwned = tmp_path / "pwned"
    form = {key: value.replace("PWNED", str(pwned)) for key, value in form.items()}
    done, _ = run_spec_step(tmp_path / "run", **form)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "run" / "github_env").exists()  # the step stops before SPEC is exported
    assert not pwned.exists()


def test_the_benchmark_report_step_writes_the_report_and_the_summary(tmp_path: Path) -> None:
    run = step_named(load("benchmarks"), "bench", "report (bench/report.md)")["run"]
    assert '"$PR_NUMBER"' in run and '>> "$GITHUB_STEP_SUMMARY"' in run
    assert (
        load("benchmarks")["jobs"]["bench"]["env"]["PR_NUMBER"] == "${{ github.event.pull_request.number }}"
    )
    (tmp_path / "bench" / "raw").mkdir(parents=True)
    (tmp_path / "bench" / "perf").mkdir()
    for name, wall in (("base-1", 2.0), ("head-1", 1.0), ("base-2", 4.0), ("head-2", 2.0)):
        out = json.dumps({"single": {"wall_s": wall}})
        (tmp_path / "bench" / "raw" / f"{name}-engine.out").write_text(f"progress\n{out}\n")
    (tmp_path / "bench" / "perf" / "report.md").write_text("# Performance (quick)\n\ntable\n")
    summary = tmp_path / "summary.md"
    done = run_step(run, tmp_path, {"PR_NUMBER": "7", "GITHUB_STEP_SUMMARY": str(summary)})
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "bench" / "report.md").read_text()
    assert summary.read_text() == report
    assert "Pull request #7:" in report and "| `single.wall_s` | 3 | 1.5 | 0.50× |" in report
    assert "\n## Performance (quick)\n" in report
    assert (tmp_path / "bench" / "pr-number.txt").read_text() == "7\n"


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
    # "200/4" asks for about 4 jobs: the 100 x 2 grid tiles in blocks of 24 fast values (the 1-2-3 series).
    assert [(c["backtests"], c["jobs"], c["workers"]) for c in cells] == [
        (10, 1, 1),
        (10, 1, 2),
        (200, 5, 1),
        (200, 5, 2),
    ]
    for name in ("benchmark-bigger.json", "benchmark-smaller.json"):
        entries = json.loads((tmp_path / "head" / name).read_text())
        assert entries and all({"name", "unit", "value"} <= set(e) for e in entries)
    assert head["backtests"] == 200
