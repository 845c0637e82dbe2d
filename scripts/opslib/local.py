"""The embedded default: an AWS emulator (moto server on 127.0.0.1) and local processes that poll SQS and
call the real Lambda handlers with real SQS event shapes.

What Lambda's SQS event source mapping does, the poller does too: it receives up to `batch_size` messages
(priority queue first), calls the handler, deletes the records that succeeded and leaves the ones listed in
`batchItemFailures`, which return after the visibility timeout; the queue's redrive policy moves a message
to the DLQ after `maxReceiveCount` receives. A killed poller loses nothing: its messages return the same way.

The emulator can keep its tables and buckets between runs (`Emulator(state_dir=...)`, `EmulatorState`).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.names import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
STATE_ENV = "MAKENAIDE_LOCAL_STATE"  # where the embedded default keeps its state (default .local-aws/)
EMULATOR_SERVER = Path(__file__).with_name("emulator_server.py")  # moto's server, made cheaper: see there


def local_state_dir() -> Path:
    """The embedded default's state folder: $MAKENAIDE_LOCAL_STATE, else .local-aws/ in the repository."""
    return Path(os.environ.get(STATE_ENV) or ROOT / ".local-aws")


LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "ap-northeast-2",
    "AWS_REGION": "ap-northeast-2",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Emulator:
    """A moto server in its own process (its own GIL), on a free loopback port.

    With `state_dir` its tables and buckets outlive it (moto itself keeps nothing): `start` restores the
    snapshot saved there, unless `fresh`; `stop` saves a new one before ending the server, unless
    `read_only`. Queues are not kept: a batch stopped midway is finished by `run_batch.py --resume`.
    Without `state_dir` (the tests) everything is gone at `stop`.
    """

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    state_dir: Path | None = None
    fresh: bool = False
    read_only: bool = False
    region: str = LOCAL_CREDENTIALS["AWS_REGION"]
    timings: dict[str, float] = field(default_factory=dict)  # restore_s, save_s and what they moved
    stock: bool = False  # `python -m moto.server` as shipped instead of emulator_server.py (benchmarks)
    restored: str | None = field(default=None, init=False)  # the snapshot restored at start
    saving: bool = field(default=False, init=False)  # only a complete start may save over the snapshot

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> Emulator:
        server = ["-m", "moto.server"] if self.stock else [str(EMULATOR_SERVER)]
        command = [sys.executable, *server, "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not self._listening():
            if self.process.poll() is not None:
                raise ConfigurationError(
                    f"the AWS emulator exited at start (code {self.process.returncode}): is moto[server] "
                    "installed? `make setup` installs it."
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError(
                    f"the AWS emulator did not listen on 127.0.0.1:{self.port} in {timeout_s:.0f} s"
                )
            time.sleep(0.05)  # a subprocess offers no waiter; poll the port until it listens
        self._restore()
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.saving and self.process is not None and self.process.poll() is not None:
            print(
                f"warning: the AWS emulator exited (code {self.process.returncode}) before its state could "
                f"be saved; {self.state_dir} keeps the state of the previous run.",
                file=sys.stderr,
            )
        if self.process is not None and self.process.poll() is None:
            if self.saving:
                self._save()
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.saving = False

    def environ(self) -> dict[str, str]:
        return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url}

    def _clients(self) -> ClientFactory:
        # boto3 reads credentials from the environment, which the caller may not have pointed here yet;
        # the emulator accepts any. Fault injection is for the pipeline's calls, never for saving state.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"])
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        return ClientFactory(endpoint_url=self.endpoint_url, region=self.region, faults=None)

    def _restore(self) -> None:
        if self.state_dir is None:
            return
        state = EmulatorState(self.state_dir)
        if not self.fresh:
            started = time.monotonic()
            try:
                self.restored, moved = state.restore(self._clients())
            except (OSError, ValueError, KeyError, TypeError, ClientError, BotoCoreError) as exc:
                self.stop()
                raise ConfigurationError(
                    f"cannot restore the local AWS state from {state.current_dir() or self.state_dir} "
                    f"({type(exc).__name__}: {exc}); start empty with --fresh (the state is then replaced "
                    f"when the run ends), or move {self.state_dir} away."
                ) from exc
            self.timings.update(moved, restore_s=time.monotonic() - started)
        self.saving = not self.read_only

    def _save(self) -> None:
        if self.state_dir is None:
            return
        started = time.monotonic()
        try:
            moved = EmulatorState(self.state_dir).save(
                self._clients(), merge=not self.fresh, restored=self.restored
            )
        except (OSError, ValueError, ClientError, BotoCoreError) as exc:
            # stop() runs on the way out of errors too: report, never raise over the original error.
            print(
                f"warning: the local AWS state was not saved ({type(exc).__name__}: {exc}); "
                f"{self.state_dir} keeps the state of the previous run.",
                file=sys.stderr,
            )
            return
        self.timings.update(moved, save_s=time.monotonic() - started)


SNAPSHOT_VERSION = 1
# Bars are content-addressed and uploaded again by every run (`Submitter.upload_bars`): keeping them would
# only make each save and restore slower.
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


def load_handler(function: str) -> ModuleType:
    """Import `lambdas/<function>/handler.py` the way Lambda does: by file, as module `handler`."""
    path = ROOT / "lambdas" / function / "handler.py"
    spec = importlib.util.spec_from_file_location(f"lambda_{function}_handler", path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"no handler at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A message as Lambda's SQS event source delivers it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class LambdaContext:
    """The parts of Lambda's context object the handlers read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1769
    invoked_function_arn: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@dataclass(frozen=True)
class PollerSpec:
    """One poller process: its function, its queues (the first has priority), the handler's environment."""

    function: str
    queue_urls: tuple[str, ...]
    environ: Mapping[str, str]
    batch_size: int = 1
    wait_s: int = 1


def _queue_arns(clients: ClientFactory, urls: tuple[str, ...]) -> dict[str, str]:
    sqs = clients.client("sqs")
    return {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for url in urls
    }


def _receive(sqs: Any, spec: PollerSpec) -> tuple[str, list[dict[str, Any]]] | None:
    """Priority queue first (no wait), then the others with a short long-poll on the last."""
    for i, url in enumerate(spec.queue_urls):
        last = i == len(spec.queue_urls) - 1
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=spec.batch_size,
            WaitTimeSeconds=spec.wait_s if last else 0,
            AttributeNames=["All"],
        ).get("Messages", [])
        if messages:
            return url, messages
    return None


def poll_forever(spec: PollerSpec) -> None:
    """Entry point of a poller process: receive, invoke the handler, delete what succeeded."""
    os.environ.update(spec.environ)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    clients = ClientFactory.from_environ()
    handler = load_handler(spec.function)
    arns = _queue_arns(clients, spec.queue_urls)
    sqs = clients.client("sqs")
    region = clients.region or LOCAL_CREDENTIALS["AWS_REGION"]
    # Deletes go out from a thread while the next receive is already on its way, as the event source
    # mapping's pollers delete apart from the function; a delete lost to a crash only means a redelivery.
    deleter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delete")
    while True:
        received = _receive(sqs, spec)
        if received is None:
            continue
        url, messages = received
        event = {"Records": [sqs_record(m, arns[url], region) for m in messages]}
        try:
            response = handler.handler(event, LambdaContext(spec.function)) or {}
        except Exception:
            response = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        done = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if m["MessageId"] not in failed
        ]
        if done:
            deleter.submit(sqs.delete_message_batch, QueueUrl=url, Entries=done).add_done_callback(
                _report_delete_failure
            )


def _report_delete_failure(future: Future[Any]) -> None:
    if future.exception() is not None:
        print(
            f"deleting processed messages failed (they will be redelivered): {future.exception()}",
            file=sys.stderr,
        )


@dataclass
class ProcessGroup:
    """Poller processes started together and stopped together (also on Ctrl-C)."""

    processes: list[mp.process.BaseProcess] = field(default_factory=list)

    def start(self, spec: PollerSpec, count: int = 1) -> list[mp.process.BaseProcess]:
        context = mp.get_context("spawn")
        started: list[mp.process.BaseProcess] = []
        for _ in range(count):
            process = context.Process(target=poll_forever, args=(spec,), daemon=True)
            process.start()
            started.append(process)
        self.processes += started
        return started

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        self.processes.clear()

    def dead(self) -> list[mp.process.BaseProcess]:
        return [p for p in self.processes if not p.is_alive()]


def wait_until(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.2) -> bool:
    """Poll `condition` until it holds or time runs out (for progress on emulated resources, which
    offer no waiters)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return condition()
