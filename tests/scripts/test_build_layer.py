"""scripts/build_layer.py: the pip command, stripping, deterministic zipping, the size limits, and one real
build (slow) whose zip imports and runs the engine in an isolated interpreter with only the layer on
sys.path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.script_loader import load_script, run_main

bl = load_script("build_layer")

GLIBC_TAGS = [f"manylinux_2_{minor}" for minor in range(34, 17, -1)] + ["manylinux2014"]


def platform_flags(machine: str) -> list[str]:
    return [flag for tag in GLIBC_TAGS for flag in ("--platform", f"{tag}_{machine}")]


# ---------------------------------------------------------------------------------------- pip


@pytest.mark.parametrize(("arch", "machine"), [("x86_64", "x86_64"), ("arm64", "aarch64")])
def test_plan_pip_command_cross_builds_for_lambda(arch: str, machine: str, tmp_path: Path) -> None:
    command = bl.plan_pip_command(arch, "3.12", tmp_path / "python")
    assert command == [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-compile",
        "--disable-pip-version-check",
        *platform_flags(machine),
        "--implementation",
        "cp",
        "--python-version",
        "3.12",
        "--only-binary=:all:",
        "--target",
        str(tmp_path / "python"),
        "-r",
        str(bl.REQUIREMENTS),
    ]


def test_plan_pip_command_local_has_no_platform_flags(tmp_path: Path) -> None:
    command = bl.plan_pip_command("x86_64", "3.11", tmp_path, local=True)
    assert not {"--platform", "--implementation", "--python-version", "--only-binary=:all:"} & set(command)
    assert command[-4:] == ["--target", str(tmp_path), "-r", str(bl.REQUIREMENTS)]


def test_plan_pip_command_rejects_an_unknown_architecture(tmp_path: Path) -> None:
    with pytest.raises(bl.UsageError, match="x86_64, arm64"):
        bl.plan_pip_command("mips", "3.12", tmp_path)


# --------------------------------------------------------------------------------------- tree


def make_tree(root: Path) -> None:
    files = {
        "python/pkg/__init__.py": "from . import mod\n",
        "python/pkg/mod.py": "X = 1\n",
        "python/pkg/mod.pyi": "X: int\n",
        "python/pkg/__pycache__/mod.cpython-311.pyc": "cache",
        "python/pkg/stray.pyc": "cache",
        "python/pkg/tests/test_mod.py": "def test(): pass\n",
        "python/pkg/sub/test/__init__.py": "",
        "python/pkg/testing/__init__.py": "KEEP = True\n",
        "python/pkg/_testing/__init__.py": "KEEP = True\n",
        "python/pkg/doc/notes.py": "docs\n",
        "python/bin/f2py": "#!/usr/bin/python\n",
        "python/tests/__init__.py": "",  # a top-level package named tests is something importable: kept
        "python/pkg-1.0.dist-info/RECORD": "pkg/mod.py,,\npkg/tests/test_mod.py,,\n../../bin/f2py,,\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_strip_tree_removes_caches_tests_docs_stubs_but_keeps_modules(tmp_path: Path) -> None:
    make_tree(tmp_path)
    before = bl.tree_size(tmp_path)
    python_dir = tmp_path / "python"
    removed = bl.strip_tree(python_dir)
    remaining = {p.relative_to(python_dir).as_posix() for p in python_dir.rglob("*") if p.is_file()}
    assert remaining == {
        "pkg/__init__.py",
        "pkg/mod.py",
        "pkg/testing/__init__.py",
        "pkg/_testing/__init__.py",
        "tests/__init__.py",
        "pkg-1.0.dist-info/RECORD",
    }
    assert removed == before - bl.tree_size(tmp_path) > 0
    # RECORD lists what ships: the console script's line (its hash names the build interpreter) is gone
    assert (python_dir / "pkg-1.0.dist-info" / "RECORD").read_text() == "pkg/mod.py,,\n"


def test_strip_tree_by_reason_accounts_every_byte(tmp_path: Path) -> None:
    make_tree(tmp_path)
    freed = bl.strip_tree_by_reason(tmp_path / "python")
    assert set(freed) == {"caches", "tests", "docs", "stubs", "scripts", "records"}
    assert freed["stubs"] == len("X: int\n")
    assert freed["caches"] == 2 * len("cache")


def test_tree_size_sums_file_sizes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"12345")
    (tmp_path / "y").write_bytes(b"123")
    assert bl.tree_size(tmp_path) == 8


def test_zip_tree_is_deterministic_and_sorted(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root)
    first = bl.zip_tree(root, tmp_path / "one.zip")
    for path in root.rglob("*"):  # different mtimes must not change a byte
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = bl.zip_tree(root, tmp_path / "out" / "two.zip")
    assert first == second
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "out" / "two.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.zip") as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert "python/pkg/mod.py" in names
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.compress_type for info in infos} == {zipfile.ZIP_DEFLATED}
    assert not list(tmp_path.glob("*.partial"))


def test_zip_tree_changes_hash_when_content_changes(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root)
    first = bl.zip_tree(root, tmp_path / "a.zip")
    (root / "python" / "pkg" / "mod.py").write_text("X = 2\n")
    assert bl.zip_tree(root, tmp_path / "b.zip") != first


def test_remove_runtime_provided_deletes_boto3_by_its_record(tmp_path: Path) -> None:
    python_dir = tmp_path / "python"
    (python_dir / "boto3").mkdir(parents=True)
    (python_dir / "boto3" / "__init__.py").write_text("x" * 100)
    info = python_dir / "boto3-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: boto3\nVersion: 1.0\n")
    (info / "RECORD").write_text("boto3/__init__.py,sha256=x,100\nboto3-1.0.dist-info/METADATA,,\n")
    (python_dir / "keep.py").write_text("")
    removed = bl.remove_runtime_provided(python_dir)
    assert removed == {"boto3==1.0": 100 + len("Metadata-Version: 2.1\nName: boto3\nVersion: 1.0\n")}
    assert sorted(p.name for p in python_dir.iterdir()) == ["keep.py"]


# ------------------------------------------------------------------------------------- limits


def test_check_limits_fails_above_250_mb_naming_both_sizes_and_the_limit() -> None:
    check = bl.check_limits(262_000_000, 200_000, 40_000_000)
    assert len(check.errors) == 1
    message = check.errors[0]
    assert "262,000,000" in message
    assert "200,000" in message
    assert "262,144,000" in message
    assert "fix:" in message
    assert check.warnings == []


def test_check_limits_passes_at_the_limit_and_warns_above_50_mb_zipped() -> None:
    check = bl.check_limits(262_144_000 - 1_000, 1_000, 60_000_000)
    assert check.errors == []
    assert len(check.warnings) == 1
    assert "S3" in check.warnings[0]


# --------------------------------------------------------------------------------------- main


def fake_pip(command: list[str], log_path: Path) -> None:
    """Stands in for pip: one small distribution in --target."""
    target = Path(command[command.index("--target") + 1])
    (target / "tiny").mkdir(parents=True)
    (target / "tiny" / "__init__.py").write_text("VALUE = 1\n")
    (target / "tiny" / "tests").mkdir()
    (target / "tiny" / "tests" / "test_tiny.py").write_text("def test(): pass\n")
    info = target / "tiny-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny\nVersion: 0.1\n")
    (info / "RECORD").write_text("tiny/__init__.py,,\n")


def test_main_json_reports_sizes_hash_and_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bl, "run_pip", fake_pip)
    out = tmp_path / "build" / "layer.zip"
    code, stdout, _ = run_main(bl, capsys, "--arch", "arm64", "--out", str(out), "--json")
    assert code == 0
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["zip_path"] == str(out)
    assert report["zipped_bytes"] == out.stat().st_size
    assert report["sha256"] == bl.file_sha256(out)
    assert (report["arch"], report["python"], report["packages"]) == ("arm64", "3.12", ["tiny==0.1"])
    assert report["stripped_bytes"]["tests"] > 0
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
    assert "python/tiny/__init__.py" in names
    assert "python/backtesting_modules/__init__.py" in names
    assert not [n for n in names if "__pycache__" in n or "/tests/" in n]
    assert report["unzipped_bytes"] == sum(info.file_size for info in zipfile.ZipFile(out).infolist())


def test_main_fails_above_the_limit_and_leaves_no_zip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bl, "run_pip", fake_pip)
    monkeypatch.setattr(bl, "UNZIPPED_LIMIT", 1_000)
    out = tmp_path / "layer.zip"
    code, _, stderr = run_main(bl, capsys, "--out", str(out))
    assert code == 1
    assert "exceeds the Lambda limit of 1,000 bytes" in stderr
    assert not out.exists()


def test_main_pip_failure_exits_3_with_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing_run(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], 1, stdout="ERROR: No matching distribution found for numpy\n")

    monkeypatch.setattr(bl.subprocess, "run", failing_run)
    code, _, stderr = run_main(bl, capsys, "--out", str(tmp_path / "layer.zip"))
    assert code == 3
    assert "No matching distribution" in stderr
    assert "fix:" in stderr
    assert (tmp_path / "layer.pip.log").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--local", "--python", "3.1"], "--local builds for this interpreter"),
        (["--python", "twelve"], "not a Python version"),
    ],
)
def test_main_usage_errors_exit_2(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = run_main(bl, capsys, *args, "--out", str(tmp_path / "layer.zip"))
    assert code == 2
    assert expected in stderr


def test_main_rejects_an_unknown_arch_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = run_main(bl, capsys, "--arch", "mips")
    assert code == 2
    assert "invalid choice" in stderr


# ------------------------------------------------------------------------------ the real build

SMOKE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import backtesting_modules as bm
    assert bm.__file__.startswith(sys.argv[1]), bm.__file__
    bars = bm.synthetic_bars("KRW-BTC", periods=500, seed=1)
    result = bm.run_backtest(bars, "SMA_Crossover", None, bm.StrategyConfig(filters=None))
    import numpy, pandas
    assert numpy.__file__.startswith(sys.argv[1]) and pandas.__file__.startswith(sys.argv[1])
    print("LAYER-OK", type(result).__name__)
    """
)


@pytest.mark.slow
def test_local_build_imports_and_runs_the_engine_in_an_isolated_interpreter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "layer.zip"
    code, stdout, stderr = run_main(bl, capsys, "--local", "--out", str(out), "--json")
    if code == 3 and any(marker in stderr for marker in bl.PIP_UNAVAILABLE_MARKERS):
        pytest.skip(f"pip could not download the layer's dependencies (no network/index?): {stderr[-500:]}")
    assert code == 0, stderr
    report = json.loads(stdout.strip().splitlines()[-1])
    zipped, unzipped = report["zipped_bytes"], report["unzipped_bytes"]
    with capsys.disabled():  # the measured sizes belong in the test log (docs/layer.md quotes them)
        print(
            f"\nlocal layer: zipped {zipped:,} bytes ({zipped / bl.MB:.1f} MB), "
            f"unzipped {unzipped:,} bytes ({unzipped / bl.MB:.1f} MB)"
        )
    layer = tmp_path / "layer"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(layer)
    # -I: ignore PYTHON* variables and the user site; -S: no site-packages, so only the layer provides them.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", SMOKE, str(layer / "python")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "LAYER-OK BacktestResult" in result.stdout
