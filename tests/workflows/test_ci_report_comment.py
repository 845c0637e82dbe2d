"""benchmarks/ci_report.py, the parts added for issue 18: the performance gate's verdict and the weekly trend
in bench/report.md, and the sticky comment's body cut under GitHub's 65,536 characters (fit_comment) with a
last line linking the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.test_ci_report import ci_report, write_raw

LINK = "https://github.com/o/r/actions/runs/123"
REGRESSED = (
    "# Performance (quick)\n\ntable\n\n## Against the base run\n\n| run | verdict |\n\n"
    "- **regression**: distributed (2 workers): 1.30× the base wall time (threshold 10% + noise 4%)\n"
)
CLEAN = "# Performance (quick)\n\ntable\n\n## Against the base run\n\n| run | verdict |\n\nNo regression.\n"


def big_report(size: int = 200_000) -> str:
    """A report of `size` characters with a table, mermaid charts and non-ASCII text, as performance.py's."""
    block = (
        "| metric | base | head | head / base |\n|---|---:|---:|---:|\n"
        + "".join(f"| `m{i}.wall_s` | 1.5 | 1.4 | 0.93× — ok |\n" for i in range(40))
        + '\n```mermaid\nxychart-beta\n    title "Throughput (backtests/s)"\n'
        + '    x-axis ["10/1", "1,000/1"]\n    line [1, 2]\n```\n\n'
    )
    text = "# Benchmarks\n\n"
    while len(text) < size:
        text += block
    return text


# ---------------------------------------------------------------------------------------------- the gate


@pytest.mark.parametrize(
    ("status", "perf", "verdict"),
    [
        ("", REGRESSED, ""),  # not given: no verdict (as before)
        ("0", "# Performance\n\nfull mode\n", ""),  # a scheduled run: no base, no gate
        ("0", CLEAN, "**Performance gate: passed**: no regression beyond the noise band."),
        (
            "1",
            REGRESSED,
            "**Performance gate: failed**: a regression beyond the threshold plus the noise band",
        ),
        ("1", CLEAN, "**Performance gate: error**: performance.py exited with status 1; see the run's log."),
        ("2", "# Performance\n", "**Performance gate: error**: performance.py exited with status 2"),
    ],
    ids=["none", "schedule", "passed", "regression", "crash-after-report", "bad-arguments"],
)
def test_the_gate_verdict_follows_the_exit_status_and_the_report(
    status: str, perf: str, verdict: str
) -> None:
    gate = ci_report.render_gate(status, perf)
    assert gate.startswith(verdict) and bool(gate) == bool(verdict)


def test_the_report_opens_with_the_gate_and_the_trend(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, {"head-1": {"wall_s": 1.0}, "base-1": {"wall_s": 1.0}})
    perf = tmp_path / "perf.md"
    perf.write_text(REGRESSED, encoding="utf-8")
    trend = tmp_path / "trend.md"
    trend.write_text(
        "## Trend (last 2 scheduled runs)\n\n```mermaid\nxychart-beta\n```\n\n", encoding="utf-8"
    )
    out = tmp_path / "report.md"
    args = ["--raw", str(raw), "--perf", str(perf), "--out", str(out), "--pr", "5", "--perf-status", "1"]
    assert ci_report.main([*args, "--trend", str(trend)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith(
        "# Benchmarks\n\nPull request #5: head against base in the same job.\n\n**Performance gate: failed**"
    )
    assert "This check fails until it is fixed.\n\n## Trend (last 2 scheduled runs)\n\n```mermaid\n" in text
    assert text.index("## Trend") < text.index("## Engine") < text.index("## Performance")
    with pytest.raises(SystemExit) as exc:
        ci_report.main([*args, "--trend", str(tmp_path / "missing.md")])
    assert exc.value.code == 2


# ---------------------------------------------------------------------------------------- the comment


def test_a_200kb_report_is_cut_at_a_line_boundary_under_the_limit_with_the_link_last() -> None:
    report = big_report()
    body = ci_report.render_comment(report, LINK, "f" * 40)
    assert len(report) >= 200_000
    assert len(body) < 65_536 and ci_report.comment_size(body) < 65_536
    assert len(body) > 60_000  # it uses the room it has
    assert body.startswith("<!-- makenaide-benchmark -->\n# Benchmarks\n")
    lines = body.splitlines()
    assert lines[-1] == (
        "_Cut here to fit a GitHub comment: the whole report is in the `benchmarks` artifact of "
        f"[the run]({LINK})._"
    )
    assert body.endswith(f"({LINK})._\n")
    kept = body[: body.rindex("\n\n_Cut here")]
    kept = kept.removesuffix("\n```")  # the fence closed by the cut, if it fell inside a chart
    assert ("<!-- makenaide-benchmark -->\n" + report).startswith(kept + "\n")  # whole lines of the report
    assert body.count("```") % 2 == 0  # every code block closed: the last line is not swallowed by one


@pytest.mark.parametrize("limit", range(300, 900, 7))
def test_a_cut_inside_a_code_block_closes_it(limit: int) -> None:
    body = ci_report.fit_comment(big_report(2_000), limit=limit, link=LINK)
    assert len(body) < limit and body.endswith(f"[the run]({LINK})._\n")
    fences = [line for line in body.splitlines() if line.lstrip().startswith("```")]
    assert len(fences) % 2 == 0


def test_a_short_report_is_posted_whole() -> None:
    body = ci_report.render_comment("# Benchmarks\n\nsmall\n\n", LINK, "abc123")
    assert body == (
        "<!-- makenaide-benchmark -->\n# Benchmarks\n\nsmall\n\n"
        f"_Benchmarks of abc123: the raw numbers are in the `benchmarks` artifact of [the run]({LINK})._\n"
    )
    assert ci_report.fit_comment("x\n" * 10, limit=21) == "x\n" * 10  # 20 characters: under 21


def test_fit_comment_counts_characters_as_github_does_and_drops_an_overlong_line() -> None:
    emoji = "🚀" * 100 + "\n"  # 100 characters to Python, 200 UTF-16 units
    text = "ok\n" + emoji + "more\n"
    assert len(text) < 150 <= ci_report.comment_size(text)
    body = ci_report.fit_comment(text, limit=150)
    assert body.startswith("ok\n\n_Cut here") and "🚀" not in body
    assert ci_report.comment_size(body) < 150
    no_link = ci_report.fit_comment("a\n" * 200, limit=120)
    assert no_link.endswith("artifact of the run._\n") and len(no_link) < 120
    with pytest.raises(ValueError, match="no room for the final line"):
        ci_report.fit_comment("a\n" * 200, limit=50, link=LINK)


def test_the_comment_command_reads_at_most_four_times_the_limit(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    report.write_text(big_report(2_000_000), encoding="utf-8")
    out = tmp_path / "body.md"
    args = ["comment", "--report", str(report), "--link", LINK, "--head", "f" * 40, "--out", str(out)]
    assert ci_report.main(args) == 0
    body = out.read_text(encoding="utf-8")
    assert len(body) < 65_536 and body.endswith(f"[the run]({LINK})._\n")
    report.write_bytes(b"# Benchmarks\n\n\xff\xfe broken bytes\n")  # untrusted: read as text, never fails
    assert ci_report.main(args) == 0
    assert "broken bytes" in out.read_text(encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        ci_report.main(["comment", "--report", str(tmp_path / "none.md"), "--out", str(out)])
    assert exc.value.code == 2


def test_only_newlines_end_lines_and_a_tilde_block_is_closed_with_its_own_marker() -> None:
    text = "~~~text\n" + "``` is text here\u2028not a separator\n" * 20 + "~~~\nafter\n"
    body = ci_report.fit_comment(text, limit=300)
    lines = body.split("\n")
    assert lines[0] == "~~~text" and lines[1] == "``` is text here\u2028not a separator"
    assert lines[-4:] == ["~~~", "", lines[-2], ""] and lines[-2].startswith("_Cut here")
    assert len(body) < 300
