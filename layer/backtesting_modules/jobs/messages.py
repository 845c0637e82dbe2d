"""Wire messages: versioned JSON for jobs, results and failures (see docs/messages.md).

Owns the message shapes (`TypedDict`s and the JSON schemas `JOB_SCHEMA`, `RESULT_SCHEMA`, `FAILURE_SCHEMA`),
their encoding and their strict decoding: a malformed body raises `MessageError` naming the field. Pure: a
result too big to travel inline is returned as a stored body (`jobs.results`, columnar JSON) for the
caller to write under `result_key`; this module never writes it. Bars never travel in messages, only their
storage keys. Jobs and failures are version 1; results are version 2 (rows as columns).
"""

from __future__ import annotations

import json
from typing import Any, Literal, NotRequired, TypedDict

from .planner import Job, result_key
from .results import ResultColumns, count_rows, encode_result_body
from .runner import JobResult, JobStatus, is_retryable
from .spec import JobError, JobType, Priority

MESSAGE_VERSION = 1
SUPPORTED_VERSIONS = (1,)
RESULT_VERSION = 2  # v2: rows travel as columns (v1 carried a list of row objects)
DEFAULT_INLINE_LIMIT = 200_000  # bytes; SQS allows 256 KB per message, the rest is headroom for attributes


class MessageError(JobError, ValueError):
    """A message body this worker cannot read: bad JSON, a missing or mistyped field, an unknown version."""


class GridAxisWire(TypedDict):
    name: str
    values: list[int | float]


class JobMessage(TypedDict):
    version: int
    kind: Literal["job"]
    job_id: str
    batch_id: str
    job_type: str
    strategy: str
    symbols: list[str]
    timeframe: str
    data_keys: list[str]
    grid: list[GridAxisWire]
    fixed: dict[str, Any]
    start: int
    stop: int
    config: dict[str, Any]
    ranking_metric: str
    priority: str
    attempt: int
    # Only in jobs of a validated sweep (docs/validation.md): [start, stop) UTC ISO times, and the returns'
    # period. Optional, so version 1 stays: a job without them is read as before.
    window: NotRequired[list[str]]
    period_returns: NotRequired[str]
    min_trades: NotRequired[int]  # the batch's ranking.min_trades (the job's best row needs that many)
    sets: NotRequired[list[dict[str, int | float]]]  # a search's trials: explicit parameter sets


_OPTIONAL_JOB_FIELDS = ("window", "period_returns", "min_trades", "sets")


class RowWire(TypedDict):
    strategy: str
    symbol: str
    params: dict[str, Any]
    metrics: dict[str, float | None]
    extras: dict[str, Any]


class ErrorInfo(TypedDict):
    type: str
    message: str
    retryable: bool


class ResultMessage(TypedDict):
    version: int
    kind: Literal["result"]
    job_id: str
    batch_id: str
    status: str
    backtests: int
    engine_seconds: float
    ranking_metric: str
    best: RowWire | None
    columns: ResultColumns | None
    result_key: str | None
    # Per symbol, what the worker measured of bars it read in place (an S3 source): sha256, bars, gaps.
    bars: NotRequired[dict[str, dict[str, Any]] | None]


class FailureMessage(TypedDict):
    version: int
    kind: Literal["failure"]
    job_id: str
    batch_id: str
    status: str
    attempt: int
    error: ErrorInfo


# ------------------------------------------------------------------------------------------- schemas

_STR: dict[str, Any] = {"type": "string", "minLength": 1}
_INT0: dict[str, Any] = {"type": "integer", "minimum": 0}
_ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["strategy", "symbol", "params", "metrics", "extras"],
    "properties": {
        "strategy": _STR,
        "symbol": _STR,
        "params": {"type": "object"},
        "metrics": {"type": "object"},
        "extras": {"type": "object"},
    },
}
_COLUMNS_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "required": ["strategy", "symbol", "params", "metrics", "extras"],
    "properties": {
        "strategy": {"type": "array", "items": _STR},
        "symbol": {"type": "array", "items": _STR},
        "params": {"type": "object"},
        "metrics": {"type": "object"},
        "extras": {"type": ["array", "null"], "items": {"type": "object"}},
    },
}
_HEADER: dict[str, Any] = {
    "version": {"type": "integer", "enum": list(SUPPORTED_VERSIONS)},
    "job_id": _STR,
    "batch_id": _STR,
}

JOB_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "JobMessage",
    "type": "object",
    "additionalProperties": False,
    "required": [k for k in JobMessage.__annotations__ if k not in _OPTIONAL_JOB_FIELDS],
    "properties": {
        **_HEADER,
        "kind": {"type": "string", "enum": ["job"]},
        "window": {"type": "array", "items": _STR, "minItems": 2, "maxItems": 2},
        "period_returns": _STR,
        "min_trades": _INT0,
        "sets": {"type": "array", "items": {"type": "object"}, "minItems": 1},
        "job_type": {"type": "string", "enum": [t.value for t in JobType]},
        "strategy": _STR,
        "symbols": {"type": "array", "items": _STR, "minItems": 1},
        "timeframe": _STR,
        "data_keys": {"type": "array", "items": _STR, "minItems": 1},
        "grid": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "values"],
                "properties": {
                    "name": _STR,
                    "values": {"type": "array", "items": {"type": "number"}, "minItems": 1},
                },
            },
        },
        "fixed": {"type": "object"},
        "start": _INT0,
        "stop": _INT0,
        "config": {"type": "object"},
        "ranking_metric": _STR,
        "priority": {"type": "string", "enum": [p.value for p in Priority]},
        "attempt": _INT0,
    },
}

RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ResultMessage",
    "type": "object",
    "additionalProperties": False,
    # `bars` is optional (NotRequired, which postponed annotations hide from __required_keys__).
    "required": [k for k in ResultMessage.__annotations__ if k != "bars"],
    "properties": {
        **_HEADER,
        "version": {"type": "integer", "enum": [RESULT_VERSION]},
        "kind": {"type": "string", "enum": ["result"]},
        "status": {"type": "string", "enum": [JobStatus.SUCCEEDED.value]},
        "backtests": _INT0,
        "engine_seconds": {"type": "number", "minimum": 0},
        "ranking_metric": _STR,
        "best": {"type": ["object", "null"], **{k: v for k, v in _ROW_SCHEMA.items() if k != "type"}},
        "columns": _COLUMNS_SCHEMA,
        "result_key": {"type": ["string", "null"]},
        "bars": {"type": ["object", "null"]},
    },
}

FAILURE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "FailureMessage",
    "type": "object",
    "additionalProperties": False,
    "required": list(FailureMessage.__annotations__),
    "properties": {
        **_HEADER,
        "kind": {"type": "string", "enum": ["failure"]},
        "status": {"type": "string", "enum": [JobStatus.FAILED.value]},
        "attempt": _INT0,
        "error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "message", "retryable"],
            "properties": {"type": _STR, "message": {"type": "string"}, "retryable": {"type": "boolean"}},
        },
    },
}


# -------------------------------------------------------------------------------------------- jobs


def job_message(job: Job) -> JobMessage:
    message: JobMessage = {
        "version": MESSAGE_VERSION,
        "kind": "job",
        "job_id": job.job_id,
        "batch_id": job.batch_id,
        "job_type": job.job_type.value,
        "strategy": job.strategy,
        "symbols": list(job.symbols),
        "timeframe": job.timeframe,
        "data_keys": list(job.data_keys),
        "grid": [{"name": name, "values": list(values)} for name, values in job.grid],
        "fixed": dict(job.fixed),
        "start": job.start,
        "stop": job.stop,
        "config": dict(job.config),
        "ranking_metric": job.ranking_metric,
        "priority": job.priority.value,
        "attempt": job.attempt,
    }
    if job.window is not None:
        message["window"] = list(job.window)
    if job.period_returns is not None:
        message["period_returns"] = job.period_returns
    if job.min_trades:
        message["min_trades"] = job.min_trades
    if job.sets is not None:
        message["sets"] = [dict(s) for s in job.sets]
    return message


def encode_job(job: Job) -> str:
    return _dumps(job_message(job))


def decode_job(body: str | bytes) -> Job:
    """Parse and check a job message body; MessageError names the offending field."""
    raw = _loads(body, JOB_SCHEMA)
    if raw["stop"] <= raw["start"]:
        raise MessageError(
            f"stop={raw['stop']} is not above start={raw['start']}: the job range is empty; "
            "send stop > start (plan_jobs always does)."
        )
    if len(raw["data_keys"]) != len(raw["symbols"]):
        raise MessageError("data_keys: expected one key per symbol; the planner writes them in symbol order.")
    return Job(
        job_id=raw["job_id"],
        batch_id=raw["batch_id"],
        job_type=JobType(raw["job_type"]),
        strategy=raw["strategy"],
        symbols=tuple(raw["symbols"]),
        timeframe=raw["timeframe"],
        data_keys=tuple(raw["data_keys"]),
        grid=tuple((axis["name"], tuple(axis["values"])) for axis in raw["grid"]),
        fixed=tuple(raw["fixed"].items()),
        start=raw["start"],
        stop=raw["stop"],
        config=tuple(sorted(raw["config"].items())),
        ranking_metric=raw["ranking_metric"],
        priority=Priority(raw["priority"]),
        attempt=raw["attempt"],
        window=(raw["window"][0], raw["window"][1]) if "window" in raw else None,
        period_returns=raw.get("period_returns"),
        min_trades=raw.get("min_trades", 0),
        sets=tuple(tuple(s.items()) for s in raw["sets"]) if "sets" in raw else None,
    )


# ----------------------------------------------------------------------------------------- results


def result_message(result: JobResult) -> ResultMessage:
    return {
        "version": RESULT_VERSION,
        "kind": "result",
        "job_id": result.job_id,
        "batch_id": result.batch_id,
        "status": result.status.value,
        "backtests": result.backtests,
        "engine_seconds": result.engine_seconds,
        "ranking_metric": result.ranking_metric,
        "best": result.best,  # type: ignore[typeddict-item]
        "columns": result.columns,
        "result_key": None,
    }


def encode_result(
    result: JobResult, *, inline_limit: int = DEFAULT_INLINE_LIMIT
) -> tuple[ResultMessage, bytes | None]:
    """The result message, and — when the message would exceed `inline_limit` bytes — the stored body to
    write at `result_key` (then the message keeps `best` but its `columns` are None)."""
    message = result_message(result)
    columns = result.columns
    cells = count_rows(columns) * (2 + len(columns["params"]) + len(columns["metrics"]))
    # Under ~25 bytes per cell: measure exactly (cheap for a small result); a big one is never serialised.
    # Per-period returns always go to S3 (a claim check): they are read by the validation, not the summary.
    small = cells * 25 <= inline_limit and len(_dumps(columns)) + 2_000 <= inline_limit
    if small and result.period_returns is None:
        return message, None  # 2 kB: room for the header and the best row
    pointer: ResultMessage = {
        **message,
        "columns": None,
        "result_key": result_key(result.job_id),
    }
    return pointer, encode_result_body(result.job_id, columns, result.period_returns)


def decode_result(body: str | bytes) -> ResultMessage:
    """Parse and check a result message; inline columns must all have one entry per row."""
    raw = _loads(body, RESULT_SCHEMA, versions=(RESULT_VERSION,))
    columns = raw["columns"]
    if columns is None and raw["result_key"] is None:
        raise MessageError(
            "columns: null without a result_key; a result carries its rows or the key of their body."
        )
    if columns is not None:
        n = count_rows(columns)
        named = [("symbol", columns["symbol"])]
        named += [(f"params.{k}", v) for k, v in columns["params"].items()]
        named += [(f"metrics.{k}", v) for k, v in columns["metrics"].items()]
        if columns["extras"] is not None:
            named.append(("extras", columns["extras"]))
        for name, values in named:
            if not isinstance(values, list) or len(values) != n:
                raise MessageError(
                    f"columns.{name}: expected a list of {n} values (one per row, like columns.strategy)."
                )
    return raw  # type: ignore[return-value]


def failure_message(job: Job, exc: BaseException) -> FailureMessage:
    """The failed-result message of `job` for `exc`, with its retry classification."""
    return failure_for(job.batch_id, job.job_id, job.attempt, exc, retryable=is_retryable(exc))


def failure_for(
    batch_id: str, job_id: str, attempt: int, exc: BaseException, *, retryable: bool
) -> FailureMessage:
    """A failed-result message from ids alone (for a job body too malformed to decode)."""
    return {
        "version": MESSAGE_VERSION,
        "kind": "failure",
        "job_id": job_id,
        "batch_id": batch_id,
        "status": JobStatus.FAILED.value,
        "attempt": attempt,
        "error": {"type": type(exc).__name__, "message": str(exc), "retryable": retryable},
    }


def encode_failure(job: Job, exc: BaseException) -> str:
    return _dumps(failure_message(job, exc))


def decode_failure(body: str | bytes) -> FailureMessage:
    return _loads(body, FAILURE_SCHEMA)  # type: ignore[return-value]


def message_kind(body: str | bytes) -> str:
    """'job', 'result' or 'failure': which decoder a body needs (results and failures share a queue)."""
    raw = _json(body)
    kind = raw.get("kind")
    if kind not in ("job", "result", "failure"):
        raise MessageError(f"kind: {kind!r} is not one of 'job', 'result', 'failure'.")
    return str(kind)


# ------------------------------------------------------------------------------------------ helpers


def _dumps(message: Any) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def _json(body: str | bytes) -> dict[str, Any]:
    try:
        raw = json.loads(body)
    except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: nesting too deep to parse
        raise MessageError(
            f"body is not valid JSON ({exc}); the sender must send json.dumps output."
        ) from exc
    if not isinstance(raw, dict):
        raise MessageError(f"body is a JSON {type(raw).__name__}, expected an object.")
    return raw


def _loads(
    body: str | bytes, schema: dict[str, Any], versions: tuple[int, ...] = SUPPORTED_VERSIONS
) -> dict[str, Any]:
    raw = _json(body)
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise MessageError(
            f"version: missing or not an integer ({version!r}); every message carries its version "
            "(jobs and failures 1, results 2)."
        )
    if version not in versions:
        supported = ", ".join(str(v) for v in versions)
        raise MessageError(
            f"message version {version} is not supported by this worker (supports {supported}): "
            "deploy the matching layer."
        )
    check_schema(raw, schema, "")
    return raw


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def check_schema(value: Any, schema: dict[str, Any], path: str) -> None:
    """Check `value` against the subset of JSON Schema our schemas use; MessageError names the field."""
    where = path or "body"
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is_type(value, n) for n in names):
            raise MessageError(
                f"{where}: expected {' or '.join(names)}, got {type(value).__name__} ({value!r:.60})."
            )
    if "enum" in schema and value not in schema["enum"]:
        raise MessageError(f"{where}: {value!r} is not one of {schema['enum']}.")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        raise MessageError(f"{where}: must not be empty.")
    if _is_type(value, "number") and value < schema.get("minimum", value):
        raise MessageError(f"{where}: {value!r} is below the minimum {schema['minimum']}.")
    if isinstance(value, dict):
        _check_object(value, schema, path)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise MessageError(f"{where}: needs at least {schema['minItems']} item(s).")
        if len(value) > schema.get("maxItems", len(value)):
            raise MessageError(f"{where}: has {len(value)} items, at most {schema['maxItems']} allowed.")
        for i, item in enumerate(value):
            check_schema(item, schema.get("items", {}), f"{path}[{i}]")


def _check_object(value: dict[str, Any], schema: dict[str, Any], path: str) -> None:
    prefix = f"{path}." if path else ""
    for key in schema.get("required", []):
        if key not in value:
            raise MessageError(f"{prefix}{key}: missing; the message must carry it (see docs/messages.md).")
    properties = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        extra = sorted(set(value) - set(properties))
        if extra:
            raise MessageError(
                f"{prefix}{extra[0]}: unknown field; this layer reads only the fields of docs/messages.md."
            )
    for key, sub in properties.items():
        if key in value:
            check_schema(value[key], sub, f"{prefix}{key}")


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])
