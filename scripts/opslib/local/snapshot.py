"""The embedded default's saved state: the emulator's tables and buckets as files under `.local-aws/`
(`EmulatorState`), written atomically at the end of a run and restored at the start of the next.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backtesting_modules.pipeline.clients import ClientFactory

SNAPSHOT_VERSION = 1
# Bars are uploaded again by the run that needs them (`Submitter.prepare` uploads what the bucket lacks, and
# every run, a resume included, prepares its bars): keeping them would only make each save and restore slower.
TRANSIENT_PREFIXES = ("bars/",)


@dataclass(frozen=True)
class EmulatorState:
    """The emulator's tables and buckets as files: `<dir>/CURRENT` names the complete snapshot
    (`snapshot-<time>-<pid>/`: `manifest.json`, `dynamodb/<table>.jsonl` with one typed item per line,
    `s3/<bucket>/<n>` with one object per file, its key, content type and encoding in the manifest).

    A save writes a new snapshot next to the current one and then replaces CURRENT (an atomic rename), so
    a crash mid-save leaves the previous state. Objects the current snapshot already has (same key and
    ETag) are hard-linked rather than read again. Saves hold an exclusive lock on `<dir>/lock`, restores
    a shared one; a save merges what another run saved since this one's restore (its own items win)."""

    root: Path

    def current_dir(self) -> Path | None:
        try:
            name = (self.root / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return self.root / name if name else None

    @contextmanager
    def locked(self, *, shared: bool) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "lock").open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def restore(self, clients: ClientFactory) -> tuple[str | None, dict[str, float]]:
        """Load the current snapshot into an empty emulator; (its name, counts of what was restored)."""
        if not self.root.exists():  # nothing saved yet: a reader leaves no folder behind
            return None, {}
        with self.locked(shared=True):
            source = self.current_dir()
            if source is None:
                return None, {}
            manifest = _read_manifest(source)
            items = sum(_restore_table(clients, source, t) for t in manifest["tables"])
            objects = sum(_restore_bucket(clients, source, b) for b in manifest["buckets"])
        return source.name, {"restored_items": items, "restored_objects": objects}

    def save(self, clients: ClientFactory, *, merge: bool, restored: str | None) -> dict[str, float]:
        """Write the emulator's tables and buckets as the new current snapshot; counts of what was saved."""
        with self.locked(shared=False):
            latest = self.current_dir()
            previous = _readable_manifest(latest)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            name = f"snapshot-{stamp}-{os.getpid()}"
            work = self.root / f".tmp-{name}"
            work.mkdir(parents=True)
            try:
                tables = _dump_tables(clients, work)
                buckets, read = _dump_buckets(clients, work, latest, previous)
                if merge and previous is not None and latest is not None and latest.name != restored:
                    _merge_snapshot(work, tables, buckets, latest, previous)
                manifest = {
                    "version": SNAPSHOT_VERSION,
                    "saved_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "region": clients.region,
                    "tables": tables,
                    "buckets": buckets,
                }
                (work / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
                work.rename(self.root / name)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            pointer = self.root / f".CURRENT-{os.getpid()}"
            pointer.write_text(name + "\n", encoding="utf-8")
            pointer.replace(self.root / "CURRENT")
            for stale in self.root.glob("*snapshot-*"):
                if stale.name != name:
                    shutil.rmtree(stale, ignore_errors=True)
        return {
            "saved_items": sum(t["count"] for t in tables),
            "saved_objects": sum(len(b["objects"]) for b in buckets),
            "read_objects": read,
        }


def _read_manifest(snapshot: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((snapshot / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"snapshot version {manifest.get('version')!r} is not {SNAPSHOT_VERSION}")
    return manifest


def _readable_manifest(snapshot: Path | None) -> dict[str, Any] | None:
    """The manifest of the snapshot a save links from and merges, or None when there is none or it cannot
    be read (a corrupt state that `--fresh` replaces must not stop the save)."""
    if snapshot is None:
        return None
    try:
        return _read_manifest(snapshot)
    except (OSError, ValueError):
        return None


def _table_definition(description: Mapping[str, Any]) -> dict[str, Any]:
    """create_table arguments that rebuild a described table (keys, indexes, billing mode)."""
    billing = description.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    definition: dict[str, Any] = {
        "TableName": description["TableName"],
        "AttributeDefinitions": description["AttributeDefinitions"],
        "KeySchema": description["KeySchema"],
        "BillingMode": billing,
    }
    throughput = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    if billing == "PROVISIONED":
        definition["ProvisionedThroughput"] = throughput
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = [
            {
                "IndexName": index["IndexName"],
                "KeySchema": index["KeySchema"],
                "Projection": index["Projection"],
                **(
                    {"ProvisionedThroughput": throughput}
                    if billing == "PROVISIONED" and kind == "GlobalSecondaryIndexes"
                    else {}
                ),
            }
            for index in description.get(kind, [])
        ]
        if indexes:
            definition[kind] = indexes
    return definition


def _item_key(item: Mapping[str, Any], key_names: list[str]) -> str:
    return json.dumps([item.get(name) for name in key_names], sort_keys=True)


def _dump_tables(clients: ClientFactory, work: Path) -> list[dict[str, Any]]:
    dynamodb = clients.client("dynamodb")
    (work / "dynamodb").mkdir()
    tables = []
    for page in dynamodb.get_paginator("list_tables").paginate():
        for table in page.get("TableNames", []):
            definition = _table_definition(dynamodb.describe_table(TableName=table)["Table"])
            ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
            count = 0
            # A snapshot is the one reader that needs every item: a scan, nowhere else.
            with (work / "dynamodb" / f"{table}.jsonl").open("w", encoding="utf-8") as out:
                for items in dynamodb.get_paginator("scan").paginate(TableName=table):
                    for item in items.get("Items", []):
                        out.write(json.dumps(item, separators=(",", ":")) + "\n")
                        count += 1
            tables.append(
                {
                    "name": table,
                    "definition": definition,
                    "ttl_attribute": ttl.get("AttributeName")
                    if ttl.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}
                    else None,
                    "items": f"dynamodb/{table}.jsonl",
                    "count": count,
                }
            )
    return tables


def _dump_buckets(
    clients: ClientFactory, work: Path, latest: Path | None, previous: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]], int]:
    """Every bucket's objects (but the transient ones) as files; objects the latest snapshot holds with the
    same ETag are hard-linked from it. Returns the buckets and how many objects were read."""
    s3 = clients.client("s3")
    known = {
        (bucket["name"], obj["key"]): obj
        for bucket in (previous or {}).get("buckets", [])
        for obj in bucket["objects"]
    }
    buckets, read = [], 0
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        region = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
        folder = work / "s3" / name
        folder.mkdir(parents=True)
        objects: list[dict[str, Any]] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for listed in page.get("Contents", []):
                key = listed["Key"]
                if key.startswith(TRANSIENT_PREFIXES):
                    continue
                target = folder / str(len(objects))
                old = known.get((name, key))
                if old is not None and latest is not None and old["etag"] == listed["ETag"]:
                    _link(latest / old["file"], target)
                    entry = {**old, "file": str(target.relative_to(work))}
                else:
                    response = s3.get_object(Bucket=name, Key=key)
                    target.write_bytes(response["Body"].read())
                    read += 1
                    entry = {
                        "key": key,
                        "file": str(target.relative_to(work)),
                        "etag": listed["ETag"],
                        "content_type": response.get("ContentType"),
                        "content_encoding": response.get("ContentEncoding"),
                        "metadata": response.get("Metadata") or {},
                    }
                objects.append(entry)
        buckets.append({"name": name, "region": region, "objects": objects})
    return buckets, read


def _link(source: Path, target: Path) -> None:
    """A hard link (the file is shared by two snapshots, not copied); a copy where links are refused."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _merge_snapshot(
    work: Path,
    tables: list[dict[str, Any]],
    buckets: list[dict[str, Any]],
    latest: Path,
    previous: Mapping[str, Any],
) -> None:
    """Add what another run saved since this one started (items and objects this run does not have)."""
    ours = {t["name"]: t for t in tables}
    for table in previous["tables"]:
        mine = ours.get(table["name"])
        if mine is None:
            _link(latest / table["items"], work / table["items"])
            tables.append(table)
            continue
        key_names = [k["AttributeName"] for k in mine["definition"]["KeySchema"]]
        path = work / mine["items"]
        with path.open(encoding="utf-8") as handle:
            have = {_item_key(json.loads(line), key_names) for line in handle}
        with (latest / table["items"]).open(encoding="utf-8") as theirs, path.open("a") as out:
            for line in theirs:
                if _item_key(json.loads(line), key_names) not in have:
                    out.write(line)
                    mine["count"] += 1
    by_name = {b["name"]: b for b in buckets}
    for bucket in previous["buckets"]:
        mine = by_name.get(bucket["name"])
        if mine is None:
            mine = {**bucket, "objects": []}
            buckets.append(mine)
            by_name[bucket["name"]] = mine
        folder = work / "s3" / bucket["name"]
        folder.mkdir(parents=True, exist_ok=True)
        have_keys = {o["key"] for o in mine["objects"]}
        for obj in bucket["objects"]:
            if obj["key"] not in have_keys:
                target = folder / f"m{len(mine['objects'])}"
                _link(latest / obj["file"], target)
                mine["objects"].append({**obj, "file": str(target.relative_to(work))})


def _restore_table(clients: ClientFactory, source: Path, table: Mapping[str, Any]) -> int:
    dynamodb = clients.client("dynamodb")
    name = table["name"]
    dynamodb.create_table(**table["definition"])  # moto creates tables ACTIVE at once: nothing to wait for
    if table.get("ttl_attribute"):
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table["ttl_attribute"]},
        )
    count = 0
    with (source / table["items"]).open(encoding="utf-8") as handle:
        chunk: list[dict[str, Any]] = []
        for line in handle:
            chunk.append({"PutRequest": {"Item": json.loads(line)}})
            if len(chunk) == 25:  # BatchWriteItem's limit
                _write_items(dynamodb, name, chunk)
                count, chunk = count + len(chunk), []
        if chunk:
            _write_items(dynamodb, name, chunk)
            count += len(chunk)
    return count


def _write_items(dynamodb: Any, table: str, requests: list[dict[str, Any]]) -> None:
    pending = {table: requests}
    for _ in range(10):
        pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not pending:
            return
    raise ValueError(f"table {table}: items left unprocessed after 10 BatchWriteItem calls")


def _restore_bucket(clients: ClientFactory, source: Path, bucket: Mapping[str, Any]) -> int:
    s3 = clients.client("s3")
    name, region = bucket["name"], bucket["region"]
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=name, **location)

    def put(obj: Mapping[str, Any]) -> None:
        extra = {"ContentType": obj["content_type"]} if obj.get("content_type") else {}
        if obj.get("content_encoding"):
            extra["ContentEncoding"] = obj["content_encoding"]
        s3.put_object(
            Bucket=name,
            Key=obj["key"],
            Body=(source / obj["file"]).read_bytes(),
            Metadata=obj.get("metadata") or {},
            **extra,
        )

    # One request per object is the emulator's cost; a few in flight keep it busy (~20 % faster than one).
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in pool.map(put, bucket["objects"]):
            pass
    return len(bucket["objects"])
