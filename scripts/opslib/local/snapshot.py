"""The embedded default's saved state: the emulator's tables and buckets as files under `.local-aws/`
(`EmulatorState`), written atomically at the end of a run and restored at the start of the next.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
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
PREVIOUS = ".prev"  # the snapshot that was current before the last save: the fallback for a corrupt one
OBJECTS = "objects"  # content-addressed object files shared by every snapshot: objects/<sha256[:2]>/<sha256>
LOAD_PATH, DUMP_PATH = "/_makenaide/load", "/_makenaide/dump"  # emulator_server.py's routes


@dataclass(frozen=True)
class EmulatorState:
    """The emulator's tables and buckets as files: `<dir>/CURRENT` names the complete snapshot
    (`snapshot-<time>-<pid>/`: `manifest.json`, `dynamodb/<table>.jsonl` with one typed item per line; the
    objects' keys, ETags, sizes, content types and encodings in the manifest, their bytes in
    `<dir>/objects/<sha256[:2]>/<sha256>`, written once and shared by every snapshot that holds them).

    A save writes a new snapshot next to the current one (files fsynced), then replaces CURRENT (an atomic
    rename) and keeps the snapshot it replaced as `<dir>/.prev`, so a crash mid-save leaves the previous
    state and a snapshot that cannot be read falls back to the one before it. Objects the current snapshot
    already has (same key and ETag) are referenced, not read again. Saves hold an exclusive lock on
    `<dir>/lock`, restores a shared one; a save merges what another run saved since this one's restore (its
    own items win). A restore loads the items into the emulator and leaves the objects' bytes in their files
    until read (`emulator_server.load_state`)."""

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
        """Load the current snapshot (or, when it cannot be read, the previous one, with a warning) into an
        empty emulator; (its name, counts of what was restored)."""
        if not self.root.exists():  # nothing saved yet: a reader leaves no folder behind
            return None, {}
        with self.locked(shared=True):
            source, manifest = self.readable()
            if source is None or manifest is None:
                return None, {}
            for table in manifest["tables"]:
                _create_table(clients, table)
            for bucket in manifest["buckets"]:
                _create_bucket(clients, bucket)
            request = self._load_request(source, manifest, clients.region or manifest["region"])
            moved: dict[str, float] = _ask(clients, LOAD_PATH, request)
        return source.name, moved

    def readable(
        self, items: dict[str, list[Any]] | None = None
    ) -> tuple[Path | None, dict[str, Any] | None]:
        """The current snapshot and its manifest, checked; the previous one when the current cannot be read
        (a warning names both); the current one's error when neither can. `items` gets the parsed items of
        each table of the snapshot returned."""
        current = self.current_dir()
        if current is None:
            return None, None
        try:
            return current, _checked_manifest(self.root, current, items)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            fallback = self.root / PREVIOUS
            try:
                if items is not None:
                    items.clear()
                manifest = _checked_manifest(self.root, fallback, items)
            except (OSError, ValueError, KeyError, TypeError):
                raise exc from None
            print(
                f"warning: the local AWS state {current} cannot be read ({type(exc).__name__}: {exc}); "
                f"using the previous one ({fallback}, saved {manifest.get('saved_at')}): the last "
                "run's batches are missing. The next save replaces the unreadable snapshot.",
                file=sys.stderr,
            )
            return fallback, manifest

    def object_file(self, snapshot: Path, entry: Mapping[str, Any]) -> Path:
        """Where the bytes of an object of `snapshot`'s manifest are."""
        return _object_path(self.root, snapshot, entry)

    def _load_request(self, source: Path, manifest: Mapping[str, Any], region: str) -> dict[str, Any]:
        return {
            "region": region,
            "tables": [{"name": t["name"], "path": str(source / t["items"])} for t in manifest["tables"]],
            "buckets": [
                {
                    "name": b["name"],
                    "objects": [
                        {**o, "path": str(_object_path(self.root, source, o)), "eager": "blob" not in o}
                        for o in b["objects"]
                    ],
                }
                for b in manifest["buckets"]
            ],
        }

    def save(self, clients: ClientFactory, *, merge: bool, restored: str | None) -> dict[str, float]:
        """Write the emulator's tables and buckets as the new current snapshot; counts of what was saved."""
        with self.locked(shared=False):
            latest = self.current_dir()
            previous = _readable_manifest(self.root, latest)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            name = f"snapshot-{stamp}-{os.getpid()}"
            work = self.root / f".tmp-{name}"
            work.mkdir(parents=True)
            try:
                (work / "dynamodb").mkdir()
                dumped = _ask(clients, DUMP_PATH, {"region": clients.region, "dir": str(work / "dynamodb")})
                tables = _dump_tables(clients, work, dumped["tables"])
                buckets, read = _dump_buckets(clients, self.root, latest, previous, dumped["buckets"])
                if merge and previous is not None and latest is not None and latest.name != restored:
                    _merge_snapshot(self.root, work, tables, buckets, latest, previous)
                manifest = {
                    "version": SNAPSHOT_VERSION,
                    "saved_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "region": clients.region,
                    "tables": tables,
                    "buckets": buckets,
                }
                _write_synced(work / "manifest.json", json.dumps(manifest, indent=1).encode())
                work.rename(self.root / name)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            pointer = self.root / f".CURRENT-{os.getpid()}"
            _write_synced(pointer, (name + "\n").encode())
            pointer.replace(self.root / "CURRENT")
            self._keep_previous(latest if previous is not None else None, name)
        return {
            "saved_items": sum(t["count"] for t in tables),
            "saved_objects": sum(len(b["objects"]) for b in buckets),
            "read_objects": read,
        }

    def _keep_previous(self, replaced: Path | None, current: str) -> None:
        """Keep the snapshot a save replaced as `.prev` (an unreadable one is dropped, the older `.prev`
        kept), remove every other snapshot, then the object files no kept snapshot references."""
        if replaced is not None:
            shutil.rmtree(self.root / PREVIOUS, ignore_errors=True)
            replaced.rename(self.root / PREVIOUS)
        for stale in self.root.glob("*snapshot-*"):
            if stale.name != current:
                shutil.rmtree(stale, ignore_errors=True)
        kept: set[str] = set()
        for snapshot in (self.root / current, self.root / PREVIOUS):
            try:
                manifest = _read_manifest(snapshot) if snapshot.exists() or snapshot.name == current else {}
            except (OSError, ValueError):
                return  # never remove objects on the word of an unreadable manifest
            for bucket in manifest.get("buckets", []):
                kept.update(o["blob"] for o in bucket["objects"] if "blob" in o)
        for path in (self.root / OBJECTS).glob("*/*"):
            if path.name not in kept and not path.name.startswith("."):
                path.unlink(missing_ok=True)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _object_path(root: Path, snapshot: Path, entry: Mapping[str, Any]) -> Path:
    """An object's file: shared under objects/ (`blob`), or inside its snapshot (`file`, version 1's)."""
    if "blob" in entry:
        blob = str(entry["blob"])
        return root / OBJECTS / blob[:2] / blob
    return snapshot / entry["file"]


def _store_blob(root: Path, data: bytes) -> str:
    """The object file for `data` (its SHA-256), written once: through a temporary name, fsynced."""
    blob = hashlib.sha256(data).hexdigest()
    path = root / OBJECTS / blob[:2] / blob
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{blob}-{os.getpid()}")
        _write_synced(partial, data)
        partial.replace(path)
    return blob


def _checked_manifest(
    root: Path, snapshot: Path, items: dict[str, list[Any]] | None = None
) -> dict[str, Any]:
    """A snapshot's manifest once every item line parses (kept in `items` when given) and every object file
    is there."""
    manifest = _read_manifest(snapshot)
    for table in manifest["tables"]:
        with (snapshot / table["items"]).open(encoding="utf-8") as handle:
            parsed = [json.loads(line) for line in handle]
        if items is not None:
            items[table["name"]] = parsed
    shared, own = f"{root / OBJECTS}{os.sep}", f"{snapshot}{os.sep}"
    for bucket in manifest["buckets"]:
        for obj in bucket["objects"]:
            blob = obj.get("blob")  # os.path on strings: a few microseconds an object, not pathlib's tens
            path = f"{shared}{blob[:2]}{os.sep}{blob}" if blob else own + str(obj["file"])
            if not os.path.isfile(path):
                raise ValueError(f"object {bucket['name']}/{obj['key']}: its file is missing")
    return manifest


def _read_manifest(snapshot: Path) -> dict[str, Any]:
    manifest: Any = json.loads((snapshot / "manifest.json").read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or manifest.get("version") != SNAPSHOT_VERSION:
        found = manifest.get("version") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"snapshot version {found!r} is not {SNAPSHOT_VERSION}")
    return manifest


def _readable_manifest(root: Path, snapshot: Path | None) -> dict[str, Any] | None:
    """The manifest of the snapshot a save references and merges, or None when there is none or it cannot
    be read (a corrupt state that `--fresh` replaces must not stop the save)."""
    if snapshot is None:
        return None
    try:
        return _checked_manifest(root, snapshot)
    except (OSError, ValueError, KeyError, TypeError):
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


def _dump_tables(clients: ClientFactory, work: Path, dumped: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tables' definitions and TTL (their items are already in `work/dynamodb/`, written by the
    emulator: `dumped` names and counts them)."""
    dynamodb = clients.client("dynamodb")
    tables = []
    for table in dumped:
        name = table["name"]
        definition = _table_definition(dynamodb.describe_table(TableName=name)["Table"])
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        enabled = ttl.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}
        tables.append(
            {
                "name": name,
                "definition": definition,
                "ttl_attribute": ttl.get("AttributeName") if enabled else None,
                "items": f"dynamodb/{name}.jsonl",
                "count": table["count"],
            }
        )
    return tables


def _dump_buckets(
    clients: ClientFactory,
    root: Path,
    latest: Path | None,
    previous: Mapping[str, Any] | None,
    listed: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], int]:
    """Every bucket's objects (but the transient ones; `listed`: the emulator's keys and ETags): those the
    latest snapshot holds with the same ETag keep its entry (its object file), the others are read (a few at
    once) and stored. Returns the buckets and how many objects were read."""
    s3 = clients.client("s3")
    known = {
        (bucket["name"], obj["key"]): obj
        for bucket in (previous or {}).get("buckets", [])
        for obj in bucket["objects"]
    }
    buckets, unread = [], []
    for bucket in listed:
        name = bucket["name"]
        objects: list[dict[str, Any]] = []
        for obj in sorted(bucket["objects"], key=lambda o: str(o["key"])):
            if obj["key"].startswith(TRANSIENT_PREFIXES):
                continue
            old = known.get((name, obj["key"]))
            if old is not None and latest is not None and old["etag"] == obj["etag"]:
                objects.append(_shared(root, latest, old))
            else:
                objects.append({"key": obj["key"], "etag": obj["etag"]})
                unread.append((name, objects[-1]))
        buckets.append({"name": name, "region": bucket["region"], "objects": objects})

    def read(job: tuple[str, dict[str, Any]]) -> None:
        bucket, entry = job
        response = s3.get_object(Bucket=bucket, Key=entry["key"])
        data = response["Body"].read()
        entry.update(blob=_store_blob(root, data), size=len(data), metadata=response.get("Metadata") or {})
        entry.update(
            content_type=response.get("ContentType"), content_encoding=response.get("ContentEncoding")
        )

    with ThreadPoolExecutor(max_workers=4) as pool:  # botocore clients are thread-safe
        for _ in pool.map(read, unread):  # re-raises the first failure
            pass
    return buckets, len(unread)


def _shared(root: Path, snapshot: Path, entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry of an earlier snapshot for the new one: as it is, or (a version-1 file inside that
    snapshot) moved to the shared object files."""
    if "blob" in entry:
        return dict(entry)
    data = (snapshot / entry["file"]).read_bytes()
    moved = {k: v for k, v in entry.items() if k != "file"}
    return {**moved, "blob": _store_blob(root, data), "size": len(data)}


def _merge_snapshot(
    root: Path,
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
            shutil.copyfile(latest / table["items"], work / table["items"])
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
        have_keys = {o["key"] for o in mine["objects"]}
        for obj in bucket["objects"]:
            if obj["key"] not in have_keys:
                mine["objects"].append(_shared(root, latest, obj))


def _create_table(clients: ClientFactory, table: Mapping[str, Any]) -> None:
    dynamodb = clients.client("dynamodb")
    dynamodb.create_table(**table["definition"])  # moto creates tables ACTIVE at once: nothing to wait for
    if table.get("ttl_attribute"):
        dynamodb.update_time_to_live(
            TableName=table["name"],
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table["ttl_attribute"]},
        )


def _create_bucket(clients: ClientFactory, bucket: Mapping[str, Any]) -> None:
    name, region = bucket["name"], bucket["region"]
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    clients.client("s3").create_bucket(Bucket=name, **location)


def _ask(clients: ClientFactory, path: str, request: Mapping[str, Any]) -> Any:
    """Ask the emulator to load or dump the state itself (`emulator_server.load_state`, `dump_state`): one
    request, not one per item or object."""
    endpoint = clients.endpoint_url
    if endpoint is None:
        raise ValueError("a restore or save needs the emulator's endpoint")
    call = urllib.request.Request(
        endpoint.rstrip("/") + path,
        data=json.dumps(request).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(call, timeout=600) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ValueError(f"the emulator answered {path}: {exc.read().decode(errors='replace')}") from exc
