"""The embedded default's history read straight from its saved state (`.local-aws/`), without starting the
emulator: `SavedStore` answers the store's read queries from the snapshot's table file and object files.

A snapshot holds the table as one typed item per line and each object as a file (`local.snapshot`), so
the queries `History` makes (a batch by its key, batches newest first from the batches-by-created index, a
batch's jobs by status, an object by its key) are answered from memory as DynamoDB and S3 would answer
them; nothing is written. A snapshot that cannot be read falls back to the previous one, as a restore does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backtesting_modules import names
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.errors import MissingObjectError
from backtesting_modules.pipeline.items import batch_record, job_record
from backtesting_modules.pipeline.records import BatchRecord, BatchStatus, JobRecord, JobStatus
from backtesting_modules.pipeline.store import PAGE_SIZE, Store

from ..local.snapshot import EmulatorState

Item = dict[str, dict[str, Any]]
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there


@dataclass
class SavedStore(Store):
    """The read queries of `Store` over a saved snapshot's table and bucket (see the module)."""

    items: list[Item] = field(default_factory=list, repr=False)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # manifest entries by key
    source: Path | None = None  # the snapshot read
    state: EmulatorState | None = None
    _partitions: dict[str, list[Item]] | None = field(default=None, repr=False)

    @classmethod
    def empty(cls, table: str, bucket: str, region: str) -> SavedStore:
        # Nothing here calls an AWS API: a query this class does not answer fails at once on a closed port.
        return cls(ClientFactory(endpoint_url=CLOSED, region=region), table, bucket)

    @classmethod
    def open(cls, state_dir: Path, table: str, bucket: str, region: str) -> SavedStore:
        """The store of the snapshot current in `state_dir` (empty when nothing was saved there yet)."""
        store = cls.empty(table, bucket, region)
        state = EmulatorState(state_dir)
        if not state_dir.exists():
            return store
        with state.locked(shared=True):
            tables: dict[str, list[Any]] = {}
            source, manifest = state.readable(tables)
            if source is None or manifest is None:
                return store
            store.items = tables.get(table, [])
            for saved in manifest["buckets"]:
                if saved["name"] == bucket:
                    store.objects = {o["key"]: o for o in saved["objects"]}
            store.source, store.state = source, state
        return store

    # --- S3 ---------------------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        entry = self.objects.get(key)
        try:
            if entry is not None and self.state is not None and self.source is not None:
                return self.state.object_file(self.source, entry).read_bytes()
        except FileNotFoundError:
            pass
        raise MissingObjectError(f"s3://{self.bucket}/{key} does not exist (in the saved local state)")

    def has_object(self, key: str) -> bool:
        return key in self.objects

    # --- DynamoDB ---------------------------------------------------------------------------------------

    def get_batch(self, batch_id: str) -> BatchRecord:
        pk = names.batch_pk(batch_id)
        for item in self.items:
            if _text(item, names.TABLE_HASH) == pk and _text(item, names.TABLE_RANGE) == names.BATCH_SK:
                return batch_record(item)
        raise MissingObjectError(f"batch {batch_id} not found in table {self.table}")

    def batches(
        self,
        *,
        since: str | None = None,
        status: BatchStatus | None = None,
        attributes: Sequence[str] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[BatchRecord]:
        indexed = [
            item
            for item in self.items
            if _text(item, names.BATCH_INDEX_HASH) == names.BATCH_INDEX_PK
            and (since is None or str(_text(item, names.BATCH_INDEX_RANGE)) >= since)
        ]
        indexed.sort(key=lambda item: str(_text(item, names.BATCH_INDEX_RANGE)), reverse=True)
        for item in self._paged(indexed, status, page_size):
            yield batch_record(item)

    def jobs(
        self,
        batch_id: str,
        *,
        status: JobStatus | None = None,
        attributes: Sequence[str] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[JobRecord]:
        if self._partitions is None:  # the table's items by partition key, in sort-key order
            self._partitions = {}
            for item in sorted(self.items, key=lambda item: str(_text(item, names.TABLE_RANGE)).encode()):
                self._partitions.setdefault(str(_text(item, names.TABLE_HASH)), []).append(item)
        partition = [
            item
            for item in self._partitions.get(names.batch_pk(batch_id), [])
            if str(_text(item, names.TABLE_RANGE)).startswith(names.JOB_SK_PREFIX)
        ]
        for item in self._paged(partition, status, page_size):
            yield job_record(item)

    def _paged(self, items: list[Item], status: str | None, page_size: int) -> Iterator[Item]:
        """`items` a page at a time (counted as query pages), a status filter applied as DynamoDB applies
        it: after the page is read."""
        for start in range(0, len(items), page_size):
            self.pages_read += 1
            for item in items[start : start + page_size]:
                if status is None or _text(item, "status") == str(status):
                    yield item
        if not items:
            self.pages_read += 1


def _text(item: Mapping[str, Mapping[str, Any]], name: str) -> Any:
    typed = item.get(name)
    return None if typed is None else next(iter(typed.values()))
