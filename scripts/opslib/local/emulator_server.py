"""The embedded default's AWS emulator: moto's server, started as `python -m moto.server` starts it, made
cheap enough to share two cores with the engine, and able to load and dump a saved state itself.

Run as a script (`python emulator_server.py --port N`); `opslib.local.Emulator` starts it. Four changes to
how moto serves, none to what it answers (1-3, 5), and one addition (4):

1. no log line per request: werkzeug formats one for every request, and the embedded default discards them;
2. moto's list of its service modules, which its dispatcher rebuilds (a directory listing) on every request,
   is listed once;
3. DynamoDB TransactWriteItems backs up the items the transaction names instead of deep-copying every table
   it touches. moto 5.2.5 copies the whole table for each write in a transaction, so the collector's
   two-item transaction cost grew with every job stored (≈ 26 ms with 1,000 small items, more with job
   records) and dominated the emulator's CPU on large batches. The rollback is the same: every item the
   transaction names is put back as it was, or removed if it did not exist.

4. `POST /_makenaide/load` (JSON: region, tables' item files, buckets' objects) loads a saved state
   (`snapshot.EmulatorState.restore`) into moto's backends in this process: items are put straight into the
   tables, and objects become keys whose bytes stay in their snapshot file until a request reads them
   (`StoredKey`), so a restore costs about the table, whatever the size of the stored results;
   `POST /_makenaide/dump` writes the tables' items to files and lists the buckets' keys and ETags for a
   save (`snapshot.EmulatorState.save`), instead of a scan and listings through the API.
5. A query on a table's own key reads that partition: moto 5.2.5 sorts every item of the table for each
   query page (`Table.all_items`) and then keeps the partition's, so the driver's and the collector's
   queries of a batch's jobs grew with the history kept in the table (≈ 20 ms a page with 5,000 items).

`tests/e2e/test_emulator_server.py` runs the same transactions here and on moto's own in-process backend
and compares responses and table contents.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import moto.backends as moto_backends
from moto.core import DEFAULT_ACCOUNT_ID
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
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.models import FakeKey, s3_backends
from werkzeug.serving import run_simple

try:
    from .lifetime import die_with_parent
except ImportError:  # run as a script (how Emulator starts it): this directory is on sys.path
    from lifetime import die_with_parent  # type: ignore[no-redef]

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


_QUERY = inspect.signature(Table.query)
_all_items = Table.all_items
_query = Table.query
_partition = threading.local()  # the one partition a query on the table's key reads, in this thread


def all_items(self: Table) -> list[Item]:
    """moto's `Table.all_items`, or only the partition a query of this thread is reading."""
    scope = getattr(_partition, "scope", None)
    if scope is not None and scope[0] is self:
        return list(scope[1])
    return _all_items(self)


def query(self: Table, *args: Any, **kwargs: Any) -> Any:
    """moto 5.2.5's `Table.query`; on the table's own key it reads the one partition instead of sorting
    every item of the table (all it keeps of them are the partition's items, sorted again by range key)."""
    arguments = _QUERY.bind(self, *args, **kwargs).arguments
    hash_key = arguments.get("hash_key")
    if arguments.get("index_name") or hash_key is None:
        return _query(self, *args, **kwargs)
    stored = self.items.get(hash_key)
    if stored is None:
        partition: list[Item] = []
    else:
        partition = list(stored.values()) if self.range_key_attr is not None else [stored]  # type: ignore[list-item]
    _partition.scope = (self, partition)
    try:
        return _query(self, *args, **kwargs)
    finally:
        _partition.scope = None


def install() -> None:
    """Apply the changes above to the moto modules imported in this process."""
    modules = frozenset(moto_backends.list_of_moto_modules())
    moto_backends.list_of_moto_modules = lambda: modules
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query  # type: ignore[method-assign]


class StoredKey(FakeKey):
    """An S3 object whose bytes stay in a snapshot file (never rewritten once saved) until a request reads
    them; the ETag and size come from the snapshot's manifest. Overwriting it makes it an ordinary key."""

    __module__ = "moto.s3.stored"  # moto files every model class under its service, the module's 2nd part
    blob: str | None = None

    def __init__(self, blob: str, size: int, **options: Any) -> None:
        super().__init__(value=b"", **options)
        self.blob, self.contentsize = blob, size

    @property
    def value(self) -> bytes:
        if self.blob is not None:
            return Path(self.blob).read_bytes()
        return bytes(FakeKey.value.fget(self))  # type: ignore[attr-defined]

    @value.setter
    def value(self, new_value: bytes) -> None:
        self.blob = None
        FakeKey.value.fset(self, new_value)  # type: ignore[attr-defined]


def load_state(request: dict[str, Any]) -> dict[str, int]:
    """Put a saved state into the backends: items into their (already created) tables, objects as
    `StoredKey`s into their (already created) buckets; the counts loaded."""
    region = str(request["region"])
    tables = moto_backends.get_backend("dynamodb")[DEFAULT_ACCOUNT_ID][region]
    items = 0
    for table in request["tables"]:
        target = tables.get_table(table["name"])
        with open(table["path"], encoding="utf-8") as handle:
            for line in handle:
                _put_saved(target, json.loads(line))
                items += 1
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    objects = 0
    for bucket in request["buckets"]:
        keys = backend.get_bucket(bucket["name"]).keys
        for obj in bucket["objects"]:
            keys[obj["key"]] = _stored_key(bucket["name"], obj, region)
            objects += 1
    return {"restored_items": items, "restored_objects": objects}


def _put_saved(table: Table, attrs: dict[str, Any]) -> None:
    """An item as it was saved, without `Table.put_item`'s checks (it passed them when it was written):
    moto's item-size check sums every attribute again for each one added, most of a restore's time."""
    hash_value = DynamoType(attrs[table.hash_key_attr])
    range_value = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr is not None else None
    item = Item(hash_value, range_value, {})
    item.attrs = LimitedSizeDict({name: DynamoType(value) for name, value in attrs.items()})  # dict.update
    _restore([(table, hash_value, range_value, item)])


def _stored_key(bucket: str, obj: dict[str, Any], region: str) -> FakeKey:
    options: dict[str, Any] = {"name": obj["key"], "account_id": DEFAULT_ACCOUNT_ID, "region_name": region}
    options.update(bucket_name=bucket, etag=str(obj["etag"]).strip('"'), version_id="null")
    if obj.get("eager"):  # a file of a snapshot that a later save may remove: read now
        key: FakeKey = FakeKey(value=Path(obj["path"]).read_bytes(), **options)
    else:
        key = StoredKey(obj["path"], int(obj["size"]), **options)
    metadata = {f"x-amz-meta-{name}": value for name, value in (obj.get("metadata") or {}).items()}
    if obj.get("content_type"):
        metadata["Content-Type"] = obj["content_type"]
    if obj.get("content_encoding"):
        metadata["Content-Encoding"] = obj["content_encoding"]
    key.set_metadata(metadata)
    return key


def dump_state(request: dict[str, Any]) -> dict[str, Any]:
    """What a save needs from the backends, without a scan through the API: every table's items written to
    `<dir>/<table>.jsonl` (typed JSON, one a line) with their count, and every bucket's keys and ETags."""
    folder = Path(request["dir"])
    tables = []
    for name, table in moto_backends.get_backend("dynamodb")[DEFAULT_ACCOUNT_ID][
        request["region"]
    ].tables.items():
        count = 0
        with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as out:
            for item in table.all_items():
                out.write(json.dumps(item.to_json()["Attributes"], separators=(",", ":")) + "\n")
                count += 1
        tables.append({"name": name, "count": count})
    buckets = []
    for name, bucket in s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets.items():
        keys = [{"key": k, "etag": v.etag} for k, v in bucket.keys.items() if isinstance(v, FakeKey)]
        buckets.append({"name": name, "region": bucket.region_name, "objects": keys})
    return {"tables": tables, "buckets": buckets}


ROUTES = {"/_makenaide/load": load_state, "/_makenaide/dump": dump_state}
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def with_loader(app: WSGIApp) -> WSGIApp:
    """moto's application, with `POST /_makenaide/load` and `/_makenaide/dump` answered here (200 and the
    answer, or 500 and the error)."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route = ROUTES.get(str(environ.get("PATH_INFO")))
        if route is None or environ.get("REQUEST_METHOD") != "POST":
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            body, status = json.dumps(route(json.loads(environ["wsgi.input"].read(length)))), "200 OK"
        except Exception as exc:  # reported to the driver, which stops this server
            body, status = json.dumps({"error": f"{type(exc).__name__}: {exc}"}), "500 Internal Server Error"
        start_response(status, [("Content-Type", "application/json")])
        return [body.encode()]

    return serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, help="exit with this process (the driver that started it)")
    args = parser.parse_args(argv)
    if args.parent_pid is not None and die_with_parent() and os.getppid() != args.parent_pid:
        sys.exit(0)  # the driver died before the kernel was asked to tell us
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto.server does: some answers name the port
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C reaches the whole process group; the driver decides when the emulator stops (SIGTERM, after it
    # has saved the state), so an interrupted batch can be resumed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    install()
    app = with_loader(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=QuietRequestHandler)


if __name__ == "__main__":
    main()
