"""The embedded default's AWS emulator: moto's server, started as `python -m moto.server` starts it, made
cheap enough to share two cores with the engine.

Run as a script (`python emulator_server.py --port N`); `opslib.local.Emulator` starts it. Three changes to
how moto serves, none to what it answers:

1. no log line per request: werkzeug formats one for every request, and the embedded default discards them;
2. moto's list of its service modules, which its dispatcher rebuilds (a directory listing) on every request,
   is listed once;
3. DynamoDB TransactWriteItems backs up the items the transaction names instead of deep-copying every table
   it touches. moto 5.2.5 copies the whole table for each write in a transaction, so the collector's
   two-item transaction cost grew with every job stored (≈ 26 ms with 1,000 small items, more with job
   records) and dominated the emulator's CPU on large batches. The rollback is the same: every item the
   transaction names is put back as it was, or removed if it did not exist.

`tests/e2e/test_emulator_server.py` runs the same transactions here and on moto's own in-process backend
and compares responses and table contents.
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import sys
from typing import Any

import moto.backends as moto_backends
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

Backup = tuple[Table, DynamoType, DynamoType | None, Item | None]


class QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without the access log line (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def _backup(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[Backup]:
    """A copy of every item the transaction names (None where it does not exist yet)."""
    backups: list[Backup] = []
    for entry in transact_items:
        if len(entry) != 1:
            continue  # rejected below before anything is written
        op_type, op = next(iter(entry.items()))
        table = backend.tables.get(str(op.get("TableName"))) if isinstance(op, dict) else None
        if table is None:
            continue
        attrs = op.get("Item") if op_type == "Put" else op.get("Key")
        if not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
            continue  # a validation error: nothing of this entry is written
        hash_value = DynamoType(attrs[table.hash_key_attr])
        range_value = None
        if table.range_key_attr is not None:
            if table.range_key_attr not in attrs:
                continue
            range_value = DynamoType(attrs[table.range_key_attr])
        current = _stored(table, hash_value, range_value)
        backups.append((table, hash_value, range_value, copy.deepcopy(current)))
    return backups


def _stored(table: Table, hash_value: DynamoType, range_value: DynamoType | None) -> Item | None:
    items: dict[Any, Any] = table.items  # {hash: Item}, or {hash: {range: Item}} with a range key
    if range_value is not None:
        return items.get(hash_value, {}).get(range_value)
    return items.get(hash_value)


def _restore(backups: list[Backup]) -> None:
    """Put every named item back as it was; reversed, so an item named twice ends as it was first."""
    for table, hash_value, range_value, item in reversed(backups):
        items: dict[Any, Any] = table.items
        if range_value is not None:
            if item is None:
                items.get(hash_value, {}).pop(range_value, None)
            else:
                items.setdefault(hash_value, {})[range_value] = item
        elif item is None:
            items.pop(hash_value, None)
        else:
            items[hash_value] = item


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto 5.2.5's DynamoDBBackend.transact_write_items with item backups instead of table copies."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    backups = _backup(self, transact_items)
    targets: set[tuple[str, str]] = set()
    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for entry in transact_items:
        if len(entry) > 1:
            _restore(backups)
            raise TransactWriteSingleOpException
        try:
            errors.append(_write(self, entry, targets))
        except (MultipleTransactionsException, MockValidationException):
            _restore(backups)
            raise
    if any(code is not None for code, _, _ in errors):
        _restore(backups)
        raise TransactionCanceledException(errors)


def _entry_key(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _write(
    backend: DynamoDBBackend, entry: dict[str, Any], targets: set[tuple[str, str]]
) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """One entry of a transaction, as moto writes it; its cancellation reason, or (None, None, None)."""
    original_item: dict[str, Any] | None = None
    try:
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table_name = op["TableName"]
        condition_expression = op.get("ConditionExpression")
        names = op.get("ExpressionAttributeNames")
        values = op.get("ExpressionAttributeValues")
        key = _entry_key(backend, op_type, op)
        target = (str(table_name), str(dict(sorted(key.items()))))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        current = backend.get_item(table_name, key)
        if condition_expression is not None:
            condition = get_filter_expression(condition_expression, names, values)
            if not condition.expr(current):
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    original_item = current.to_json()["Attributes"]
                raise ConditionalCheckFailed(item=original_item)
        conditions = {
            "condition_expression": condition_expression,
            "expression_attribute_names": names,
            "expression_attribute_values": values,
        }
        if op_type == "Put":
            backend.put_item(table_name, op["Item"], **conditions)
        elif op_type == "Delete":
            backend.delete_item(table_name, key, **conditions)
        elif op_type == "Update":
            backend.update_item(table_name, key, update_expression=op["UpdateExpression"], **conditions)
    except (MultipleTransactionsException, MockValidationException):
        raise
    except ConditionalCheckFailed as exc:
        return ("ConditionalCheckFailed", str(exc.message), original_item)
    except Exception as exc:  # moto reports any other failure as the entry's cancellation reason
        return (type(exc).__name__, str(exc), original_item)
    return (None, None, None)


def install() -> None:
    """Apply the changes above to the moto modules imported in this process."""
    modules = frozenset(moto_backends.list_of_moto_modules())
    moto_backends.list_of_moto_modules = lambda: modules
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto.server does: some answers name the port
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C reaches the whole process group; the driver decides when the emulator stops (SIGTERM, after it
    # has saved the state), so an interrupted batch can be resumed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    install()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, app, threaded=True, request_handler=QuietRequestHandler)


if __name__ == "__main__":
    main()
