"""No credentials and no real AWS account id in the tree: every file git tracks (or would add: untracked
files that are not ignored) is scanned for access key ids, secret-looking assignments, private keys, GitHub
tokens and account ids. The one account id allowed is the documented placeholder 123456789012 (moto's
account, used by tests and by the examples in docs/deploy.md); committed IAM documents use <ACCOUNT_ID>.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER_ACCOUNTS = frozenset({"123456789012"})

FINDERS: dict[str, re.Pattern[str]] = {
    "AWS access key id": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    "secret-looking assignment": re.compile(
        r"(?i)[\w-]*(?:secret|passw(?:or)?d|token|api[_-]?key|access[_-]?key)[\w-]*[\"']?\s*[:=]\s*[\"']?"
        r"(?P<value>[A-Za-z0-9/+=_-]{16,})"
    ),
    "private key block": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
}
ACCOUNT_FINDERS = (
    re.compile(r"arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:(?P<account>\d{12}):"),
    re.compile(r"(?i)account[_ -]?id\W{0,4}(?P<account>\d{12})(?!\d)"),
)


def tree_files() -> list[Path]:
    """Tracked files, plus untracked ones that are not ignored (what the next commit could add)."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")
    return [ROOT / name for name in listing.split("\0") if name and (ROOT / name).is_file()]


def scan(text: str) -> list[str]:
    """What looks like a secret or a real account id in `text` (kind: match)."""
    found = [f"{kind}: {m.group(0)}" for kind, finder in FINDERS.items() for m in finder.finditer(text)]
    for finder in ACCOUNT_FINDERS:
        found += [
            f"account id: {m.group(0)}"
            for m in finder.finditer(text)
            if m["account"] not in PLACEHOLDER_ACCOUNTS
        ]
    return found


def test_the_scanner_finds_each_kind_and_spares_the_placeholders() -> None:
    # Built at run time, so this file holds no string the scan itself would flag.
    key_id = "AKIA" + "Q3EXAMPLE7ZZQX5A"
    samples = {
        "AWS access key id": f"aws_access_key_id={key_id}",
        "secret-looking assignment": "AWS_SECRET_ACCESS_KEY = "
        + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY"
        + "EXAMPLEKEY",
        "private key block": "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIE...",
        "GitHub token": "token: " + "ghp_" + "a1B2" * 9,
        "account id": "arn:aws:iam::" + "210987654321" + ":role/deploy",
    }
    for kind, text in samples.items():
        assert any(f.startswith(kind) for f in scan(text)), (kind, scan(text))
    spared = [
        'FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}',
        "arn:aws:sqs:ap-northeast-2:123456789012:makenaide-distributed-backtest-job-queue",
        "render_iam.py --account-id 123456789012 --repo me/ops",
        "arn:aws:iam::<ACCOUNT_ID>:role/makenaide-github-deploy",
        "permissions:\n  id-token: write",
        "token: ${{ secrets.GITHUB_TOKEN }}",
    ]
    assert [scan(text) for text in spared] == [[] for _ in spared]


def test_the_tree_holds_no_secret_and_no_real_account_id() -> None:
    files = tree_files()
    assert len(files) > 100  # the listing really ran
    findings = []
    for path in files:
        raw = path.read_bytes()
        if b"\0" in raw:
            continue  # binary (zips, images)
        for finding in scan(raw.decode("utf-8", errors="replace")):
            findings.append(f"{path.relative_to(ROOT)}: {finding}")
    assert findings == [], "\n".join(findings)


@pytest.mark.parametrize("path", sorted((ROOT / "docs" / "iam").glob("*.json")), ids=lambda p: p.name)
def test_committed_iam_documents_use_the_account_placeholder(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", text)
    accounts = set(re.findall(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:([^:\"]+):", text))
    assert accounts <= {"<ACCOUNT_ID>"}, accounts
