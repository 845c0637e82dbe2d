"""Build the Lambda layer zip: the engine package `backtesting_modules` plus the pinned runtime dependencies
of layer/requirements.txt, installed for the Lambda runtime, stripped, and zipped deterministically. See
docs/layer.md.

This module owns the layer ARTIFACT only (build/layer.zip, its sizes and sha256); publishing it is
deploy_layer.py's job.

python scripts/build_layer.py                          # x86_64, python3.12 → build/layer.zip
python scripts/build_layer.py --arch arm64 --json      # Graviton; one JSON object printed last
python scripts/build_layer.py --local --out /tmp/l.zip # for THIS interpreter and machine (importable here)

Exit status: 0 built; 1 the layer is too large for Lambda (no zip is left behind) or cannot be built;
2 usage error; 3 pip could not install the dependencies (index unreachable or no matching wheel).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opslib.cli import EXIT_FAILED, EXIT_USAGE, UsageError

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "layer" / "requirements.txt"
ENGINE_DIR = ROOT / "layer" / "backtesting_modules"
LAMBDAS_DIR = ROOT / "lambdas"
DEFAULT_OUT = ROOT / "build" / "layer.zip"

# AWS: a function's code plus all its layers, unzipped, may not exceed 250 MB (262,144,000 bytes).
EXIT_PIP_FAILED = 3  # pip could not install the dependencies (this script's own status, beside opslib.cli's)
UNZIPPED_LIMIT = 262_144_000
# AWS: a zip uploaded inline is limited to 50 MB; above that the upload must go through S3.
DIRECT_UPLOAD_LIMIT = 52_428_800
MB = 1024 * 1024

ARCH_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
# The python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): any manylinux_2_17..2_34 wheel loads there.
# pip does not expand a `manylinux_2_NN` platform to older ones, and numpy>=2.3 / pandas 3 publish only
# manylinux_2_27/2_28 wheels, so `manylinux2014` alone finds no numpy at all: list every glibc up to 2.34.
RUNTIME_GLIBC_MINOR = 34
OLDEST_GLIBC_MINOR = 17
# Provided by the Lambda runtime; shipping our own copy would shadow the runtime's and waste space.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "urllib3")
# Directory names removed when they sit inside a package (not at the top of python/).
STRIP_DIRS = {"tests": "tests", "test": "tests", "doc": "docs", "docs": "docs"}
STRIP_SUFFIXES = {".pyc": "caches", ".pyo": "caches", ".pyi": "stubs"}
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
# pip output meaning "could not reach or find the packages" rather than "the build is broken".
PIP_UNAVAILABLE_MARKERS = (
    "No matching distribution",
    "Could not find a version",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Max retries exceeded",
    "Connection refused",
    "ConnectTimeoutError",
)


class BuildError(Exception):
    """The build cannot produce a correct layer; main() turns it into exit status 1."""


class PipFailed(Exception):
    """pip could not install layer/requirements.txt; main() turns it into exit status 3."""


@dataclass(frozen=True)
class Target:
    """What the layer is built for: a Lambda runtime (arch, python) or this machine (local=True)."""

    arch: str
    python: str
    local: bool = False


@dataclass
class LimitCheck:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ pip


def platform_tags(arch: str) -> list[str]:
    machine = ARCH_MACHINE[arch]
    newer = [f"manylinux_2_{minor}_{machine}" for minor in range(RUNTIME_GLIBC_MINOR, OLDEST_GLIBC_MINOR, -1)]
    # manylinux2014 is manylinux_2_17; pip expands it to manylinux2010/manylinux1 as well.
    return [*newer, f"manylinux2014_{machine}"]


def plan_pip_command(
    arch: str, python: str, target: Path, *, local: bool = False, requirements: Path = REQUIREMENTS
) -> list[str]:
    """The pip command installing the requirements into `target`: cross-platform wheels for the Lambda
    runtime, or (local=True) whatever fits the running interpreter."""
    if arch not in ARCH_MACHINE:
        raise UsageError(f"unknown architecture {arch!r}; use one of {', '.join(ARCH_MACHINE)}")
    # --no-compile: .pyc written by this interpreter are stripped anyway (and useless for another version).
    command = [sys.executable, "-m", "pip", "install", "--no-compile", "--disable-pip-version-check"]
    if not local:
        for tag in platform_tags(arch):
            command += ["--platform", tag]
        command += ["--implementation", "cp", "--python-version", python, "--only-binary=:all:"]
    return [*command, "--target", str(target), "-r", str(requirements)]


def run_pip(command: list[str], log_path: Path) -> None:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    log_path.write_text(result.stdout)
    for line in result.stdout.splitlines():
        if "incompatible" in line:  # resolver conflicts with THIS venv: worth seeing, not fatal
            print(f"pip: {line.strip()}", file=sys.stderr)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-8:])
        raise PipFailed(
            f"pip install exited {result.returncode} (full log: {log_path}):\n{tail}\n"
            "fix: check that the package index is reachable and that every pin in "
            f"{REQUIREMENTS.relative_to(ROOT)} has a wheel for this platform and Python"
        )


# ------------------------------------------------------------------------------------- the tree


def tree_size(root: Path) -> int:
    """Sum of the sizes of the regular files under root (what Lambda counts as unzipped size)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(python_dir: Path) -> dict[str, tuple[str, Path]]:
    """Installed distributions: normalised name → (name==version, dist-info dir)."""
    found: dict[str, tuple[str, Path]] = {}
    for info in sorted(python_dir.glob("*.dist-info")):
        meta = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
        name = re.search(r"^Name: (.+)$", meta, re.MULTILINE)
        version = re.search(r"^Version: (.+)$", meta, re.MULTILINE)
        if name and version:
            found[_normalise(name[1].strip())] = (f"{name[1].strip()}=={version[1].strip()}", info)
    return found


def remove_distribution(python_dir: Path, info: Path) -> int:
    """Delete every file a distribution's RECORD lists (its dist-info included); returns bytes freed."""
    freed = 0
    for line in (info / "RECORD").read_text(encoding="utf-8").splitlines():
        rel = line.rsplit(",", 2)[0].strip('"')
        path = (python_dir / rel).resolve()
        if rel and path.is_file() and path.is_relative_to(python_dir.resolve()):
            freed += path.stat().st_size
            path.unlink()
    shutil.rmtree(info, ignore_errors=True)
    for directory in sorted((d for d in python_dir.rglob("*") if d.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()
    return freed


def remove_runtime_provided(python_dir: Path) -> dict[str, int]:
    """Remove boto3 & co. if pip pulled them in: the Lambda runtime ships them."""
    installed = distributions(python_dir)
    return {
        installed[name][0]: remove_distribution(python_dir, installed[name][1])
        for name in RUNTIME_PROVIDED
        if name in installed
    }


def copy_engine(python_dir: Path, engine_dir: Path = ENGINE_DIR) -> None:
    dest = python_dir / engine_dir.name
    if dest.exists():
        raise BuildError(f"a requirement installed {dest.name}/ itself; remove it from {REQUIREMENTS.name}")
    shutil.copytree(engine_dir, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def strip_reason(path: Path, root: Path) -> str | None:
    """Why Lambda does not need `path` (None: keep it)."""
    if path.is_dir():
        if path.name == "__pycache__":
            return "caches"
        if path.parent == root:  # a top-level `tests` would be a package someone imports
            return "scripts" if path.name == "bin" else None
        return STRIP_DIRS.get(path.name)
    return STRIP_SUFFIXES.get(path.suffix)


def strip_tree_by_reason(root: Path) -> dict[str, int]:
    """Remove caches, tests, docs, stubs and console scripts under root; bytes freed per reason.

    `numpy/testing` and `pandas/_testing` are kept: the packages import them. Only directories named exactly
    tests/test/doc/docs are removed, and never at the top of root. RECORD files then list what ships."""
    freed: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in list(dirnames):
            reason = strip_reason(here / name, root)
            if reason:
                freed[reason] = freed.get(reason, 0) + tree_size(here / name)
                shutil.rmtree(here / name)
                dirnames.remove(name)  # do not walk into what was just removed
        for name in filenames:
            reason = strip_reason(here / name, root)
            if reason:
                freed[reason] = freed.get(reason, 0) + (here / name).stat().st_size
                (here / name).unlink()
    freed["records"] = prune_records(root)
    return freed


def prune_records(root: Path) -> int:
    """Drop the lines of every dist-info RECORD naming a file that does not ship (stripped tests, console
    scripts); returns the bytes saved. Why: the console scripts' lines carry the hash of a shebang naming the
    build machine's interpreter, which made the zip's sha256 depend on where it was built."""
    saved = 0
    for record in sorted(root.glob("*.dist-info/RECORD")):
        text = record.read_text(encoding="utf-8")
        kept = [
            line
            for line in text.splitlines(keepends=True)
            if (root / line.rsplit(",", 2)[0].strip('"')).is_file()
        ]
        pruned = "".join(kept)
        saved += len(text.encode()) - len(pruned.encode())
        record.write_text(pruned, encoding="utf-8")
    return saved


def strip_tree(root: Path) -> int:
    """Strip root in place (see strip_tree_by_reason); returns the bytes removed."""
    return sum(strip_tree_by_reason(root).values())


def zip_tree(root: Path, out: Path) -> str:
    """Zip every file under root into `out` deterministically; returns the zip's sha256.

    Sorted entries, a fixed 1980-01-01 timestamp, fixed permissions and host system: the same tree always
    gives the same bytes, so deploy_layer.py can compare hashes to decide whether to publish."""
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode bits below are honoured
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, path.read_bytes())
    partial.replace(out)  # a crash never leaves a half-written layer.zip behind
    return file_sha256(out)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(MB), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------- limits


def function_code_size(lambdas_dir: Path = LAMBDAS_DIR) -> int:
    """Bytes of the largest function's own code (lambdas/<name>/handler.py): the limit is per function."""
    return max((p.stat().st_size for p in lambdas_dir.glob("*/handler.py")), default=0)


def check_limits(unzipped_bytes: int, function_bytes: int, zipped_bytes: int) -> LimitCheck:
    """Errors when layer + function exceed Lambda's unzipped limit; a warning when the zip is too large to
    upload inline (the deploy goes through S3 anyway)."""
    check = LimitCheck()
    total = unzipped_bytes + function_bytes
    if total > UNZIPPED_LIMIT:
        check.errors.append(
            f"layer ({unzipped_bytes:,} bytes unzipped) + function code ({function_bytes:,} bytes) = "
            f"{total:,} bytes exceeds the Lambda limit of {UNZIPPED_LIMIT:,} bytes (250 MB) unzipped; "
            "fix: drop or replace a dependency in layer/requirements.txt, "
            "or ship the worker as a container image"
        )
    if zipped_bytes > DIRECT_UPLOAD_LIMIT:
        check.warnings.append(
            f"the zip is {zipped_bytes:,} bytes, above the {DIRECT_UPLOAD_LIMIT:,}-byte (50 MB) "
            "direct upload limit: publish it through S3 (deploy_layer.py does)"
        )
    return check


# --------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCH_MACHINE), help="Lambda architecture (default x86_64)")
    parser.add_argument("--python", help="Lambda Python version, e.g. 3.12 (the default)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="zip path (default build/layer.zip)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last (text to stderr)")
    parser.add_argument(
        "--local", action="store_true", help="build for this interpreter and machine (importable here)"
    )
    return parser


def local_arch() -> str:
    machine = platform.machine().lower()
    return "arm64" if machine in ("aarch64", "arm64") else machine


def resolve_target(args: argparse.Namespace) -> Target:
    if args.local:
        here = Target(local_arch(), f"{sys.version_info.major}.{sys.version_info.minor}", local=True)
        if args.arch not in (None, here.arch) or args.python not in (None, here.python):
            raise UsageError(
                f"--local builds for this interpreter (python {here.python}, {here.arch}); "
                "drop --arch/--python, or drop --local to cross-build for Lambda"
            )
        return here
    python = args.python or "3.12"
    if not re.fullmatch(r"3\.\d{1,2}", python):
        raise UsageError(f"--python {python!r} is not a Python version; use MAJOR.MINOR, e.g. 3.12")
    return Target(args.arch or "x86_64", python)


def build(target: Target, out: Path, log: Any) -> dict[str, Any]:
    """Install, strip and zip in a staging directory next to `out`; returns the report (limits unchecked)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="layer-staging-", dir=out.parent) as tmp:
        staging = Path(tmp)
        python_dir = staging / "python"
        command = plan_pip_command(target.arch, target.python, python_dir, local=target.local)
        print(f"installing {REQUIREMENTS.relative_to(ROOT)} for {describe(target)}", file=log)
        run_pip(command, out.with_name(out.stem + ".pip.log"))
        removed = remove_runtime_provided(python_dir)
        packages = [spec for spec, _ in distributions(python_dir).values()]
        copy_engine(python_dir)
        stripped = strip_tree_by_reason(python_dir)
        unzipped = tree_size(staging)
        sha = zip_tree(staging, out)
    return {
        "zip_path": str(out),
        "zipped_bytes": out.stat().st_size,
        "unzipped_bytes": unzipped,
        "sha256": sha,
        "arch": target.arch,
        "python": target.python,
        "local": target.local,
        "packages": sorted(packages, key=str.lower),
        "stripped_bytes": stripped,
        "runtime_provided_removed": removed,
    }


def describe(target: Target) -> str:
    where = "this machine" if target.local else f"Lambda {ARCH_MACHINE[target.arch]} manylinux"
    return f"python {target.python} on {where}"


def print_report(report: dict[str, Any], function_bytes: int, log: Any) -> None:
    stripped = ", ".join(f"{k} {v / MB:.1f} MB" for k, v in sorted(report["stripped_bytes"].items()))
    print(f"packages: {' '.join(report['packages'])}", file=log)
    if report["runtime_provided_removed"]:
        print(f"removed (the runtime provides them): {report['runtime_provided_removed']}", file=log)
    print(f"stripped: {stripped or 'nothing'}", file=log)
    zipped, unzipped = report["zipped_bytes"], report["unzipped_bytes"]
    print(
        f"{report['zip_path']}: zipped {zipped:,} bytes ({zipped / MB:.1f} MB), "
        f"unzipped {unzipped:,} bytes ({unzipped / MB:.1f} MB); "
        f"+ function code {function_bytes:,} bytes, limit {UNZIPPED_LIMIT:,}",
        file=log,
    )
    print(f"sha256 {report['sha256']}", file=log)


def run(args: argparse.Namespace) -> int:
    target = resolve_target(args)
    log = sys.stderr if args.json else sys.stdout
    report = build(target, args.out.resolve(), log)
    function_bytes = function_code_size()
    print_report(report, function_bytes, log)
    limits = check_limits(report["unzipped_bytes"], function_bytes, report["zipped_bytes"])
    for warning in limits.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for error in limits.errors:
        print(f"error: {error}", file=sys.stderr)
    if limits.errors:
        Path(report["zip_path"]).unlink()  # no oversized artifact for a deploy to pick up
    if args.json:
        print(json.dumps({**report, "function_bytes": function_bytes, "ok": not limits.errors}))
    return 1 if limits.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except PipFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PIP_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
