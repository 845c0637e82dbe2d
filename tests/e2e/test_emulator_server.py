"""The embedded default's emulator (scripts/opslib/emulator_server.py) answers as moto does.

Its TransactWriteItems backs up only the items a transaction names instead of copying whole tables; the same
transactions run on it and on moto's own in-process backend must give the same answers and leave the same
items, including every rollback path (a failed condition, a key named twice, a missing table).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from backtesting_modules.pipeline.clients import ClientFactory
from opslib.local.emulator import Emulator
from tests.conftest import FAKE_CREDENTIALS

RANGE = "jobs"  # a table keyed like ours: PK + SK
HASH = "plain"  # a hash-key-only table
REGION = "ap-northeast-2"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"PK": _s(pk), "SK": _s(sk)}


def _update(key: dict[str, Any], expression: str, values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": RANGE,
            "Key": key,
            "UpdateExpression": expression,
            "ExpressionAttributeValues": values,
            **extra,
        }
    }


def _counted(sk: str) -> dict[str, Any]:
    """The collector's shape: a job moves to SUCCEEDED unless already terminal."""
    return _update(
        _key("B#1", sk),
        "SET #s = :ok",
        {":ok": _s("SUCCEEDED")},
        ConditionExpression="attribute_exists(SK) AND #s <> :ok",
        ExpressionAttributeNames={"#s": "status"},
    )


_ADD_ONE = _update(_key("B#1", "META"), "ADD succeeded :one", {":one": {"N": "1"}})

TRANSACTIONS: list[tuple[str, list[dict[str, Any]]]] = [
    ("count a job", [_counted("J#1"), _ADD_ONE]),
    ("count it again: cancelled, the counter is not added", [_counted("J#1"), _ADD_ONE]),
    (
        "a new item and an update, then a failed condition: both rolled back",
        [
            {"Put": {"TableName": RANGE, "Item": {**_key("B#1", "J#9"), "status": _s("PENDING")}}},
            _update(_key("B#1", "J#2"), "SET note = :n", {":n": _s("touched")}),
            {
                "ConditionCheck": {
                    "TableName": RANGE,
                    "Key": _key("B#1", "META"),
                    "ConditionExpression": "succeeded > :many",
                    "ExpressionAttributeValues": {":many": {"N": "100"}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ],
    ),
    (
        "an update that creates an item, then a failure: the item is gone again",
        [
            _update(_key("B#2", "J#1"), "SET note = :n", {":n": _s("new")}),
            _update(
                _key("B#1", "J#3"),
                "SET note = :n",
                {":n": _s("x")},
                ConditionExpression="attribute_not_exists(SK)",
            ),
        ],
    ),
    ("the same key twice: rejected before anything is written", [_counted("J#2"), _counted("J#2")]),
    (
        "a delete and a put on a hash-only table, all succeed",
        [
            {"Delete": {"TableName": HASH, "Key": {"id": _s("a")}}},
            {"Put": {"TableName": HASH, "Item": {"id": _s("c"), "v": {"N": "3"}}}},
        ],
    ),
    (
        "a delete on a hash-only table, then a failed condition: the item is back",
        [
            {"Delete": {"TableName": HASH, "Key": {"id": _s("b")}}},
            {
                "Put": {
                    "TableName": HASH,
                    "Item": {"id": _s("c"), "v": {"N": "4"}},
                    "ConditionExpression": "attribute_not_exists(id)",
                }
            },
        ],
    ),
    ("a missing table", [{"Put": {"TableName": "missing", "Item": {"id": _s("z")}}}, _ADD_ONE]),
]


def _seed(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=RANGE,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.create_table(
        TableName=HASH,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=RANGE, Item={**_key("B#1", "META"), "succeeded": {"N": "0"}})
    for sk in ("J#1", "J#2", "J#3"):
        dynamodb.put_item(TableName=RANGE, Item={**_key("B#1", sk), "status": _s("PENDING")})
    for name in ("a", "b"):
        dynamodb.put_item(TableName=HASH, Item={"id": _s(name), "v": {"N": "1"}})


def _outcome(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        call()
    except ClientError as exc:
        error = exc.response["Error"]
        reasons = exc.response.get("CancellationReasons", [])
        return {"error": error.get("Code"), "message": error.get("Message"), "reasons": reasons}
    return {"error": None}


def _items(dynamodb: Any) -> dict[str, list[dict[str, Any]]]:
    tables = {}
    for table in (RANGE, HASH):
        items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
        tables[table] = sorted(items, key=repr)
    return tables


def _run_all(dynamodb: Any) -> list[tuple[str, dict[str, Any], dict[str, list[dict[str, Any]]]]]:
    _seed(dynamodb)
    observed = []
    for name, transaction in TRANSACTIONS:
        outcome = _outcome(lambda t=transaction: dynamodb.transact_write_items(TransactItems=t))
        observed.append((name, outcome, _items(dynamodb)))
    return observed


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    yield


def test_transactions_answer_and_roll_back_as_moto_does(aws_env: None) -> None:
    server = Emulator().start()
    try:
        os.environ.update(server.environ())
        ours = _run_all(ClientFactory(endpoint_url=server.endpoint_url, region=REGION).client("dynamodb"))
    finally:
        server.stop()
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        moto = _run_all(ClientFactory(region=REGION).client("dynamodb"))

    assert [name for name, _, _ in ours] == [name for name, _, _ in moto]
    for (name, our_outcome, our_items), (_, moto_outcome, moto_items) in zip(ours, moto, strict=True):
        assert our_outcome == moto_outcome, name
        assert our_items == moto_items, name
    # The scenarios do cover what they claim: a success, cancellations with reasons, and a validation error.
    outcomes = {name: outcome for name, outcome, _ in ours}
    assert outcomes["count a job"]["error"] is None
    cancelled = outcomes["a new item and an update, then a failed condition: both rolled back"]
    assert cancelled["error"] == "TransactionCanceledException"
    assert cancelled["reasons"][2]["Code"] == "ConditionalCheckFailed"
    assert "Item" in cancelled["reasons"][2]  # ALL_OLD returned the item
    twice = outcomes["the same key twice: rejected before anything is written"]
    assert twice["error"] == "ValidationException"
