"""benchmarks.yml and benchmark-comment.yml, issue 18: the pull request gate (--fail-on-regression, the status
kept until the report is written and uploaded, then the job fails), the weekly history (a job that may only
read Actions data fetches the last scheduled run's history; bench merges, charts and uploads it again), and
the comment cut under 65,536 characters. The steps' scripts run here as GitHub runs them, with a fake `gh`
(and a fake interpreter for performance.py) on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks.test_history import SHA, make_run, write_bench
from tests.workflows.test_workflows import load, run_step, runs, step_named

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import history

RUN_URL = "https://github.com/o/r/actions/runs/4242"
FAKE_GH = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$FAKE_GH/log"
if [ -f "$FAKE_GH/fail" ]; then echo "HTTP 502" >&2; exit 1; fi
case "$*" in
  "api repos/o/r/actions/workflows/benchmarks.yml/runs"*) cat "$FAKE_GH/runs" ;;
  "api repos/o/r/actions/runs/"*"/artifacts"*)
    id="${2#repos/o/r/actions/runs/}"; id="${id%%/*}"
    if [ -d "$FAKE_GH/artifacts/$id" ]; then echo 1; else echo 0; fi ;;
  "run download "*) cp "$FAKE_GH/artifacts/$3/"* "${@: -1}/" ;;
  "api repos/o/r/pulls/"*) echo "$PR_HEAD" ;;
  "api --paginate "*) cat "$FAKE_GH/existing" 2>/dev/null || true ;;
  "api --method "*)
    body="${*: -1}"; cp "${body#body=@}" "$FAKE_GH/posted.md"; echo "$3" > "$FAKE_GH/method" ;;
  *) echo "unexpected: gh $*" >&2; exit 3 ;;
esac
"""


def bench_steps() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = load("benchmarks")["jobs"]["bench"]["steps"]
    return steps


def index_of(predicate: Any) -> int:
    return next(i for i, step in enumerate(bench_steps()) if predicate(step))


def fake_gh(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A `gh` that answers from files under the returned folder and logs its calls; the env to run with."""
    state = tmp_path / "gh"
    (state / "bin").mkdir(parents=True)
    gh = state / "bin" / "gh"
    gh.write_text(FAKE_GH, encoding="utf-8")
    gh.chmod(0o755)
    env = {
        "PATH": f"{state / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "FAKE_GH": str(state),
        "REPO": "o/r",
        "GH_TOKEN": "not-a-token",
    }
    return state, env


def calls(state: Path) -> list[str]:
    log = state / "log"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


# ------------------------------------------------------------------------------------ the pull request gate


def run_perf_step(tmp_path: Path, event: str, head_status: int, with_base: bool) -> tuple[Any, str, str]:
    """The performance step with a fake .venv/bin/python: it logs its arguments, and the head run (the one
    with --compare) exits with head_status."""
    work = tmp_path / "work"
    (work / ".venv" / "bin").mkdir(parents=True)
    (work / "bench").mkdir()
    fake = work / ".venv" / "bin" / "python"
    fake.write_text(
        '#!/usr/bin/env bash\necho "$*" >> "$FAKE_LOG"\n'
        'case " $* " in *" --compare "*) exit "$HEAD_STATUS" ;; esac\nexit "${NO_BASE_STATUS:-0}"\n',
        encoding="utf-8",
    )
    fake.chmod(0o755)
    if with_base:
        (work / "base" / "benchmarks").mkdir(parents=True)
        (work / "base" / "benchmarks" / "performance.py").write_text("", encoding="utf-8")
    output, log = tmp_path / "output", tmp_path / "log"
    script = step_named(
        load("benchmarks"), "bench", "performance (quick on pull requests; full with scalability on schedule)"
    )["run"]
    env = {
        "EVENT": event,
        "GITHUB_OUTPUT": str(output),
        "FAKE_LOG": str(log),
        "HEAD_STATUS": str(head_status),
    }
    if not with_base:
        env["NO_BASE_STATUS"] = str(head_status)
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=work,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (
        done,
        output.read_text(encoding="utf-8") if output.exists() else "",
        log.read_text(encoding="utf-8"),
    )


def test_a_pull_request_gates_on_a_regression_and_the_step_keeps_the_status(tmp_path: Path) -> None:
    done, output, log = run_perf_step(tmp_path / "regressed", "pull_request", 1, with_base=True)
    assert done.returncode == 0, (done.stdout, done.stderr)  # the step records it; the last step acts
    assert output == "status=1\n"
    base, head = log.splitlines()
    assert "--compare" not in base and "--fail-on-regression" not in base
    assert head.startswith("benchmarks/performance.py --quick --compare ")
    assert "/bench/base/results.json --fail-on-regression --out bench/perf --json" in head
    done, output, _ = run_perf_step(tmp_path / "clean", "pull_request", 0, with_base=True)
    assert done.returncode == 0 and output == "status=0\n"


def test_without_a_base_there_is_no_gate_but_a_crash_still_fails_at_the_end(tmp_path: Path) -> None:
    done, output, log = run_perf_step(tmp_path / "schedule", "schedule", 0, with_base=False)
    assert done.returncode == 0 and output == "status=0\n"
    assert log == "benchmarks/performance.py --scalability --out bench/perf --json\n"
    done, output, _ = run_perf_step(tmp_path / "crash", "schedule", 1, with_base=False)
    assert done.returncode == 0 and output == "status=1\n"


def test_the_job_fails_last_after_the_report_and_the_upload() -> None:
    steps = bench_steps()
    perf = index_of(lambda s: s.get("id") == "perf")
    report = index_of(lambda s: s.get("name") == "report (bench/report.md)")
    upload = index_of(lambda s: s.get("with", {}).get("name") == "benchmarks")
    fail = index_of(lambda s: s.get("name") == "fail on a performance regression")
    assert perf < report < upload < fail == len(steps) - 1
    # runs whatever performance.py's status, and when the history step failed
    assert steps[report]["if"] == "${{ !cancelled() && steps.perf.outcome == 'success' }}"
    assert steps[report]["env"]["PERF_STATUS"] == "${{ steps.perf.outputs.status }}"
    assert '--perf-status="$PERF_STATUS"' in steps[report]["run"]
    assert steps[upload]["if"] == "${{ !cancelled() }}"
    assert steps[fail]["if"] == "steps.perf.outputs.status != '0'"
    assert steps[fail]["env"] == {"STATUS": "${{ steps.perf.outputs.status }}"}
    done = run_step(steps[fail]["run"], Path.cwd(), {"STATUS": "1"})
    assert done.returncode == 1 and "::error::performance.py exited with status 1" in done.stdout


def test_no_expression_in_the_new_scripts() -> None:
    for name in ("benchmarks", "benchmark-comment"):
        for script in runs(load(name)):
            assert "${{" not in script, script


# ----------------------------------------------------------------------------------------- the history


def test_the_history_job_may_only_read_actions_and_runs_no_repository_code() -> None:
    doc = load("benchmarks")
    job = doc["jobs"]["history"]
    assert job["permissions"] == {"actions": "read"}
    assert job["if"] == "github.event_name == 'schedule'"
    assert isinstance(job["timeout-minutes"], int)
    uses = [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]
    assert uses == ["actions/upload-artifact"]  # no checkout
    script = "\n".join(runs({"jobs": {"history": job}}))
    assert "python" not in script and "make " not in script and ".venv" not in script
    assert job["steps"][-1]["with"]["name"] == "benchmark-history-previous"
    bench = doc["jobs"]["bench"]
    assert bench["permissions"] == {"contents": "read"}
    assert (
        bench["needs"] == "history" and bench["if"] == "${{ !cancelled() }}"
    )  # runs when history is skipped
    for job_name, each in doc["jobs"].items():
        assert "write" not in each["permissions"].values(), job_name


def test_the_history_is_downloaded_merged_and_kept_on_schedule_only() -> None:
    steps = bench_steps()
    download = steps[index_of(lambda s: s.get("with", {}).get("name") == "benchmark-history-previous")]
    assert download["uses"].startswith("actions/download-artifact@")
    assert download["if"] == "github.event_name == 'schedule' && needs.history.result == 'success'"
    merge = index_of(lambda s: s.get("name") == "history and trend (schedule)")
    assert steps[merge]["if"] == "github.event_name == 'schedule' && steps.perf.outputs.status == '0'"
    keep_index = index_of(lambda s: s.get("with", {}).get("name") == "benchmark-history")
    keep = steps[keep_index]
    assert keep["if"].startswith("github.event_name == 'schedule' && ")
    assert keep["with"]["retention-days"] == 90 and keep["with"]["path"] == "bench/history/"
    report = index_of(lambda s: s.get("name") == "report (bench/report.md)")
    assert merge < report < keep_index


def run_history_job(tmp_path: Path, runs_listed: list[int], artifacts: dict[int, str]) -> tuple[Any, Path]:
    state, env = fake_gh(tmp_path)
    (state / "runs").write_text("".join(f"{r}\n" for r in runs_listed), encoding="utf-8")
    for run_id, text in artifacts.items():
        (state / "artifacts" / str(run_id)).mkdir(parents=True)
        (state / "artifacts" / str(run_id) / "history.jsonl").write_text(text, encoding="utf-8")
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    env |= {
        "RUNNER_TEMP": str(temp),
        "GITHUB_RUN_ID": "500",
        "BRANCH": "main",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    script = load("benchmarks")["jobs"]["history"]["steps"][0]["run"]
    return run_step(script, tmp_path, env), temp / "history"


def test_the_history_job_takes_the_newest_scheduled_run_that_kept_one(tmp_path: Path) -> None:
    done, out = run_history_job(tmp_path, [500, 400, 300, 200], {300: "three\n", 200: "two\n"})
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert (out / "history.jsonl").read_text() == "three\n" and (out / "source.txt").read_text() == "300\n"
    log = calls(tmp_path / "gh")
    assert log[0].startswith(
        "api repos/o/r/actions/workflows/benchmarks.yml/runs?event=schedule&branch=main&"
    )
    assert [line.split()[1] for line in log[1:3]] == [  # this run (500) is skipped; 400 kept none
        "repos/o/r/actions/runs/400/artifacts?name=benchmark-history",
        "repos/o/r/actions/runs/300/artifacts?name=benchmark-history",
    ]
    assert log[3].startswith("run download 300 --repo o/r --name benchmark-history --dir ")
    assert len(log) == 4


def test_no_earlier_history_starts_one_and_an_api_error_fails_the_job(tmp_path: Path) -> None:
    done, out = run_history_job(tmp_path / "first", [500], {})
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert (out / "history.jsonl").read_text() == "" and (out / "source.txt").read_text() == "none\n"
    (tmp_path / "down").mkdir()
    (tmp_path / "down" / "gh").mkdir()
    (tmp_path / "down" / "gh" / "fail").touch()
    done, out = run_history_job(tmp_path / "down", [500, 400], {400: "x\n"})
    assert done.returncode != 0 and not (out / "source.txt").exists()


def test_the_weekly_run_merges_its_figures_and_charts_the_trend_in_the_report(tmp_path: Path) -> None:
    write_bench(tmp_path / "bench", overhead=20.0)
    (tmp_path / "bench" / "perf" / "report.md").write_text("# Performance\n\nfull mode\n", encoding="utf-8")
    previous = tmp_path / "temp" / "history-previous" / "history.jsonl"
    history.store_history(previous, [make_run(i, engine=40e6, overhead=11.0) for i in range(1, 6)])
    env = {
        "RUNNER_TEMP": str(tmp_path / "temp"),
        "HISTORY_RESULT": "success",
        "GITHUB_RUN_ID": "900",
        "GITHUB_SHA": SHA,
        "PR_NUMBER": "",
        "PERF_STATUS": "0",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    merge = step_named(load("benchmarks"), "bench", "history and trend (schedule)")["run"]
    done = run_step(merge, tmp_path, env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    kept = history.load_history(tmp_path / "bench" / "history" / "history.jsonl")
    assert [r.run_id for r in kept] == ["1", "2", "3", "4", "5", "900"] and kept[-1].commit == SHA
    report_step = step_named(load("benchmarks"), "bench", "report (bench/report.md)")["run"]
    done = run_step(report_step, tmp_path, env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    report = (tmp_path / "bench" / "report.md").read_text(encoding="utf-8")
    assert (tmp_path / "summary.md").read_text(encoding="utf-8") == report
    assert "## Trend (last 6 scheduled runs)" in report and report.count("xychart-beta") == 3
    assert (
        "| Pipeline overhead | 20 % | 11 % | +9.00 points | **drift: worse** by more than 3 points |"
        in report
    )
    assert "Performance gate" not in report  # a scheduled run has no base


def test_without_the_previous_history_the_weekly_run_warns_and_keeps_none(tmp_path: Path) -> None:
    write_bench(tmp_path / "bench")
    merge = step_named(load("benchmarks"), "bench", "history and trend (schedule)")["run"]
    env = {"RUNNER_TEMP": str(tmp_path), "HISTORY_RESULT": "failure", "GITHUB_RUN_ID": "9", "GITHUB_SHA": SHA}
    done = run_step(merge, tmp_path, env)
    assert (
        done.returncode == 0
        and "::warning::the previous benchmark history could not be fetched" in done.stdout
    )
    assert not (tmp_path / "bench" / "history").exists()  # nothing to upload: the last kept history stays


# ----------------------------------------------------------------------------------------- the comment


def test_the_comment_is_posted_for_a_failed_gate_too() -> None:
    job = load("benchmark-comment")["jobs"]["comment"]
    condition = " ".join(job["if"].split())
    assert "github.event.workflow_run.event == 'pull_request'" in condition
    assert "conclusion == 'success' || github.event.workflow_run.conclusion == 'failure'" in condition
    post = step_named(load("benchmark-comment"), "comment", "post or update the comment")
    assert post["env"]["RUN_URL"] == "${{ github.event.workflow_run.html_url }}"
    assert '--link "$RUN_URL"' in post["run"] and "head -c 60000" not in post["run"]  # no byte cut


def run_comment_step(tmp_path: Path, report: str | None, existing: str = "") -> tuple[Any, Path]:
    state, env = fake_gh(tmp_path)
    bench = tmp_path / "temp" / "bench"
    bench.mkdir(parents=True)
    if report is not None:
        (bench / "report.md").write_text(report, encoding="utf-8")
        (bench / "pr-number.txt").write_text("7\n", encoding="utf-8")
    if existing:
        (state / "existing").write_text(existing, encoding="utf-8")
    env |= {"RUNNER_TEMP": str(tmp_path / "temp"), "HEAD_SHA": SHA, "PR_HEAD": SHA, "RUN_URL": RUN_URL}
    script = step_named(load("benchmark-comment"), "comment", "post or update the comment")["run"]
    # run_step runs .venv/bin/python as this interpreter
    return run_step(script.replace("python3 ", ".venv/bin/python "), tmp_path, env), state


@pytest.mark.parametrize(("existing", "method"), [("", "POST"), ("8123\n", "PATCH")], ids=["new", "update"])
def test_a_200kb_report_is_posted_under_the_limit_ending_with_the_run_link(
    tmp_path: Path, existing: str, method: str
) -> None:
    line = "| `sweep.engine_bar_combos_per_s` | 3.95e+07 | 3.97e+07 | 1.01× |\n"
    report = "# Benchmarks\n\n" + line * (200_000 // len(line))
    done, state = run_comment_step(tmp_path, report, existing)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert (state / "method").read_text() == f"{method}\n"
    body = (state / "posted.md").read_text(encoding="utf-8")
    assert len(body) < 65_536 and body.startswith("<!-- makenaide-benchmark -->\n# Benchmarks\n")
    assert body.splitlines()[-1].endswith(f"artifact of [the run]({RUN_URL})._")
    assert body.splitlines()[-3] == line.rstrip("\n")  # whole lines, then a blank line, then the link


def test_a_run_that_failed_before_its_report_gets_no_comment(tmp_path: Path) -> None:
    done, state = run_comment_step(tmp_path, None)
    assert done.returncode == 0 and "not commenting" in done.stdout
    assert calls(state) == []
