"""deploy_all.py and teardown.py against moto: the whole stack from nothing, no change the second time,
teardown removes what it created and keeps the data unless asked."""

from __future__ import annotations

import pytest

from tests.script_loader import load_script, run_main

deploy_all = load_script("deploy_all")
teardown = load_script("teardown")
# Hermetic: never pick up a build/layer.zip left in the checkout (layer publishing has its own test).
NO_LAYER = ("--layer-zip", "/nonexistent/layer.zip")


@pytest.fixture
def aws(mocked_aws: None) -> None:
    return None


def test_dry_run_on_an_empty_account_plans_and_creates_nothing(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(deploy_all, capsys, "--dry-run", *NO_LAYER)
    assert code == 0
    assert "queues: 4 change(s)" in out and "storage: 2 change(s)" in out
    assert "worker: planned once the units before it are applied" in out
    code, out, _ = run_main(deploy_all, capsys, "--dry-run", *NO_LAYER)
    assert "queues: 4 change(s)" in out  # still nothing created


def test_deploy_all_then_no_change_then_teardown(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(deploy_all, capsys, "--yes", *NO_LAYER)
    assert code == 0, out
    for unit in ("queues", "storage", "roles", "worker", "collector", "monitoring"):
        assert f"{unit}:" in out
    code, out, _ = run_main(deploy_all, capsys, "--yes", *NO_LAYER)
    assert code == 0 and out.count("no changes") == 7  # six units and the stack summary
    code, out, _ = run_main(teardown, capsys, "--yes")
    assert code == 0 and "delete" in out
    import boto3

    assert boto3.client("sqs").list_queues().get("QueueUrls", []) == []
    assert boto3.client("lambda").list_functions()["Functions"] == []
    assert boto3.client("dynamodb").list_tables()["TableNames"] == []
    assert boto3.client("iam").list_roles()["Roles"] == []
    buckets = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    assert len(buckets) == 1  # the data stays without --delete-data
    code, out, _ = run_main(teardown, capsys, "--yes", "--delete-data")
    assert boto3.client("s3").list_buckets()["Buckets"] == []
