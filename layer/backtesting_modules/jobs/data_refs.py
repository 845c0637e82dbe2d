"""Where a job's bars are, and which bars they are: one `DataRef` per symbol, carried by the job as a string.

- Uploaded bars (files, synthetic, exchange downloads): the driver loads them, cuts the window, applies the
  gap policy, validates them and uploads them under their content hash, `bars/<sha256>.npz` in the stack's
  bucket. The reference is that key: it names the bars themselves.
- An S3 source (`data.source: s3`): the workers read the object where it is. The reference is the object's
  URI and its ETag as the driver saw it, plus the window and gap policy the worker applies after reading:
  ``s3://bucket/key?etag=...&since=...&until=...&gaps=fill``. A worker reads the object only if its ETag is
  still that one (S3 `IfMatch`), so a batch never mixes old and new bars.

Job ids hash the references, so changing one bar (a new hash or ETag) gives new jobs and a new batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..names import bars_key
from .spec_model import SpecError

_QUERY_KEYS = ("etag", "since", "until", "gaps", "timeframe")


@dataclass(frozen=True)
class DataRef:
    """Uploaded bars (`key` in the stack's bucket) or an S3 object read in place (`bucket`, `key`, ETag)."""

    key: str
    bucket: str | None = None  # None: the stack's own bucket (uploaded bars)
    etag: str | None = None
    since: str | None = None
    until: str | None = None
    gaps: str = "keep"
    timeframe: str | None = None  # the bar interval the gap policy measures (S3 sources)

    @classmethod
    def uploaded(cls, sha256: str) -> DataRef:
        return cls(bars_key(sha256))

    @property
    def in_place(self) -> bool:
        """An object the worker reads where it is (an S3 source), not bars the driver uploaded."""
        return self.bucket is not None

    def __str__(self) -> str:
        if not self.in_place:
            return self.key
        query = {k: getattr(self, k) for k in _QUERY_KEYS if getattr(self, k) not in (None, "")}
        return f"s3://{self.bucket}/{self.key}?{urlencode(query)}"

    @classmethod
    def parse(cls, text: str) -> DataRef:
        """The reference a job carries, back as a `DataRef` (a bars key, or an s3:// URI with its query)."""
        if not text.startswith("s3://"):
            if not text.startswith("bars/"):
                raise SpecError(f"data reference {text!r} is neither bars/<sha256>.npz nor s3://bucket/key")
            return cls(text)
        parts = urlsplit(text)
        query = dict(parse_qsl(parts.query))
        unknown = sorted(set(query) - set(_QUERY_KEYS))
        if not parts.netloc or not parts.path.strip("/") or unknown:
            raise SpecError(f"data reference {text!r} is not s3://bucket/key?etag=...: check the job message")
        return cls(
            parts.path.lstrip("/"),
            bucket=parts.netloc,
            etag=query.get("etag"),
            since=query.get("since"),
            until=query.get("until"),
            gaps=query.get("gaps", "keep"),
            timeframe=query.get("timeframe"),
        )
