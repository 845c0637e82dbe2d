"""A bad environment: no AWS credentials, a region that is wrong or not a region, a stack that is not
deployed, handler variables missing. Each is refused with the cause and the fix, and nothing is created."""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from backtesting_modules.pipeline.env import HandlerEnv
from backtesting_modules.pipeline.errors import HandlerEnvError
from opslib.errors import StackConfigError
from opslib.local.pollers import load_handler, sqs_record
from opslib.stack import DEFAULT_STACK, load_stack
from tests.badinput.support import DeployedStack, spec_text, write
from tests.script_loader import load_script, run_main

run_batch = load_script("run_batch")
NO_LAYER = ("--layer-zip", "/nonexistent/layer.zip")


def _spec(tmp_path: Path) -> Path:
    return write(tmp_path / "batch.yaml", spec_text())


def test_run_batch_on_aws_without_credentials_exits_2(
    no_credentials: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    code, out, err = run_main(
        run_batch, capsys, str(_spec(tmp_path)), "--target", "aws", "--reports", str(reports)
    )
    assert code == 2, err
    assert "no AWS credentials" in err and "configure them" in err and "--target local" in err
    assert out == "" and not reports.exists()


@pytest.mark.parametrize("script", ["deploy_all", "deploy_queues", "teardown"])
def test_deploy_without_credentials_exits_2(
    no_credentials: None, capsys: pytest.CaptureFixture[str], script: str
) -> None:
    args = ["--dry-run", *NO_LAYER] if script == "deploy_all" else ["--dry-run"]
    code, _, err = run_main(load_script(script), capsys, *args)
    assert code == 2, err
    assert "no AWS credentials" in err and "configure them" in err and "--endpoint-url" in err


def test_run_batch_on_an_account_without_the_stack_exits_2_and_creates_nothing(
    mocked_aws: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    code, _, err = run_main(
        run_batch, capsys, str(_spec(tmp_path)), "--target", "aws", "--reports", str(reports)
    )
    assert code == 2, err
    assert "not found: the stack is not deployed in this account/region" in err
    assert "deploy it with scripts/deploy_all.py" in err
    assert boto3.client("sqs").list_queues().get("QueueUrls", []) == []
    assert boto3.client("dynamodb").list_tables()["TableNames"] == []
    assert boto3.client("s3").list_buckets()["Buckets"] == []
    assert not reports.exists()


def test_run_batch_in_another_region_than_the_stack_exits_2_and_submits_nothing(
    deployed: DeployedStack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The stack is in ap-northeast-2 (config/stack.yaml); the caller's AWS_REGION says us-west-2.
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    code, _, err = run_main(
        run_batch, capsys, str(_spec(tmp_path)), "--target", "aws", "--reports", str(tmp_path)
    )
    assert code == 2, err
    assert "not deployed in this account/region" in err and "deploy_all.py" in err
    deployed.assert_nothing_submitted()


def test_a_stack_configuration_with_a_region_typo_is_refused(
    mocked_aws: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = DEFAULT_STACK.read_text(encoding="utf-8").replace(
        "region: ap-northeast-2", "region: ap-northeast2"
    )
    config = write(tmp_path / "stack.yaml", text)
    code, _, err = run_main(load_script("deploy_queues"), capsys, "--config", str(config), "--dry-run")
    assert code == 2, err
    assert "region 'ap-northeast2' is not an AWS region" in err and "Did you mean 'ap-northeast-2'?" in err
    assert boto3.client("sqs").list_queues().get("QueueUrls", []) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[s3://market-data/upbit]", "'s3://market-data/upbit' is not an S3 location"),
        ("[market-data/upbit/]", "'market-data/upbit/' is not an S3 location"),
        ("[s3://market-data/*/]", "no wildcards"),
        ("s3://market-data/", "must be a list"),
    ],
)
def test_a_data_read_location_that_is_not_an_s3_prefix_is_refused(
    value: str, expected: str, tmp_path: Path
) -> None:
    text = DEFAULT_STACK.read_text(encoding="utf-8").replace("read_locations: []", f"read_locations: {value}")
    with pytest.raises(StackConfigError, match=re.escape(expected)):
        load_stack(write(tmp_path / "stack.yaml", text))


def test_data_read_locations_are_read_from_the_stack(tmp_path: Path) -> None:
    text = DEFAULT_STACK.read_text(encoding="utf-8").replace(
        "read_locations: []", "read_locations: [s3://market-data/upbit/, s3://all-of-it]"
    )
    config = load_stack(write(tmp_path / "stack.yaml", text))
    assert config.data_read_locations == ("s3://market-data/upbit/", "s3://all-of-it/")
    assert load_stack().data_read_locations == ()


HANDLER_ENV = {
    "TABLE_NAME": "t",
    "BUCKET_NAME": "b",
    "RESULT_QUEUE_URL": "https://sqs.ap-northeast-2.amazonaws.com/123456789012/r",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.ap-northeast-2.amazonaws.com/123456789012/d",
}
ENV_CASES = [
    (
        "nothing-set",
        {},
        "TABLE_NAME, BUCKET_NAME, RESULT_QUEUE_URL, DEAD_LETTER_QUEUE_URL not set",
        "the deploy scripts set them",
    ),
    ("dlq-missing", {"DEAD_LETTER_QUEUE_URL": None}, "DEAD_LETTER_QUEUE_URL not set", "the deploy scripts"),
    ("queue-missing", {"RESULT_QUEUE_URL": None}, "RESULT_QUEUE_URL not set", "the deploy scripts set them"),
    ("table-empty", {"TABLE_NAME": ""}, "TABLE_NAME not set", "scripts/run_batch.py sets them"),
    ("count-not-int", {"MAX_RECEIVE_COUNT": "three"}, "MAX_RECEIVE_COUNT", "must be integers"),
    ("limit-not-int", {"INLINE_RESULT_LIMIT": "200kB"}, "INLINE_RESULT_LIMIT", "must be integers"),
]


@pytest.mark.parametrize(
    ("change", "named", "fix"), [c[1:] for c in ENV_CASES], ids=[c[0] for c in ENV_CASES]
)
def test_handler_environment_errors_name_the_variable(
    change: dict[str, str | None], named: str, fix: str
) -> None:
    environ = {**HANDLER_ENV, **change} if change else {}
    environ = {k: v for k, v in environ.items() if v is not None}
    with pytest.raises(HandlerEnvError) as info:
        HandlerEnv.from_environ(environ)
    assert named in str(info.value) and fix in str(info.value)


@pytest.mark.parametrize("function", ["worker", "collector"])
def test_a_handler_without_its_environment_acknowledges_nothing(
    monkeypatch: pytest.MonkeyPatch, function: str
) -> None:
    for key in (*HANDLER_ENV, "MAX_RECEIVE_COUNT", "INLINE_RESULT_LIMIT"):
        monkeypatch.delenv(key, raising=False)
    handler = load_handler(function)
    message = {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": "{}", "Attributes": {}}
    event = {"Records": [sqs_record(message, "arn:aws:sqs:ap-northeast-2:123456789012:q", "ap-northeast-2")]}
    # The whole invocation fails, so the event source mapping deletes nothing and SQS redelivers the record.
    with pytest.raises(BatchProcessingError) as info:
        handler.handler(event, None)
    assert "TABLE_NAME, BUCKET_NAME, RESULT_QUEUE_URL, DEAD_LETTER_QUEUE_URL not set" in str(info.value)
