"""`config/stack.yaml` as a typed object, built once; the defaults of every optional setting live here.

`StackConfig.handler_env` is the one constructor of the handlers' environment from the stack (used by the
deploy, the local runtime, the chaos suite and the tests), so the embedded default and AWS cannot drift.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import boto3
import yaml

from backtesting_modules.errors import did_you_mean
from backtesting_modules.jobs.messages import DEFAULT_INLINE_LIMIT
from backtesting_modules.names import METRIC_NAMESPACE, StackNames
from backtesting_modules.pipeline.env import HandlerEnv

from .errors import StackConfigError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STACK = ROOT / "config" / "stack.yaml"
# Without a maximum concurrency on its event source mapping, a function scales to the account's limit
# (1,000 concurrent executions by default): what the driver and the projection assume then.
ACCOUNT_CONCURRENCY = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class QueueSettings:
    visibility_timeout_s: int
    retention_s: int
    max_receive_count: int
    receive_wait_s: int
    dlq_retention_s: int


# AWS's documented bounds (Lambda API reference: ScalingConfig, ProvisionedPollerConfig, for SQS sources).
MAXIMUM_CONCURRENCY_RANGE = (2, 1000)
MINIMUM_POLLERS_RANGE = (2, 200)
MAXIMUM_POLLERS_RANGE = (2, 10_000)


@dataclass(frozen=True)
class ProvisionedPollers:
    """Provisioned mode of a function's SQS event source mappings: dedicated event pollers, per mapping."""

    minimum: int
    maximum: int

    @classmethod
    def from_setting(cls, value: Any) -> ProvisionedPollers:
        """`{minimum: N, maximum: M}` from the stack file (bounds are checked with the other settings)."""
        if not isinstance(value, Mapping) or set(value) != {"minimum", "maximum"}:
            raise ValueError(value)
        return cls(minimum=_convert(value["minimum"], "int"), maximum=_convert(value["maximum"], "int"))


@dataclass(frozen=True)
class FunctionSettings:
    """One Lambda function (`worker`, `collector`) and its event source mapping."""

    memory_mb: int
    timeout_s: int
    batch_size: int = 1
    batching_window_s: int = 0
    maximum_concurrency: int | None = None  # per event source mapping (2-1000); None: not set
    reserved_concurrency: int | None = None  # None: no reservation
    # The worker's NORMAL-queue mapping only (issue 19, priority): at most this many concurrent invocations,
    # so capacity is left for the priority queue's mapping. None: the same as `maximum_concurrency`.
    normal_maximum_concurrency: int | None = None
    # Provisioned mode of each of the function's mappings (AWS: exclusive with the maximum concurrencies).
    # None: standard mode.
    provisioned_pollers: ProvisionedPollers | None = None

    @property
    def concurrency(self) -> int:
        """How many copies can run at once: the mapping's maximum, else the account's default limit."""
        return self.maximum_concurrency or ACCOUNT_CONCURRENCY

    def problems(self, name: str) -> list[str]:
        """What AWS would refuse, or what would break the priority headroom, in section `name`."""
        out = []
        for field_name, value in (
            ("maximum_concurrency", self.maximum_concurrency),
            ("normal_maximum_concurrency", self.normal_maximum_concurrency),
        ):
            low, high = MAXIMUM_CONCURRENCY_RANGE
            if value is not None and not low <= value <= high:
                out.append(f"{name}.{field_name}={value}: AWS accepts {low}-{high} (ScalingConfig).")
        normal = self.normal_maximum_concurrency
        if normal is not None:
            if name != "worker":
                out.append(f"{name}.normal_maximum_concurrency: only the worker reads a priority queue.")
            if self.maximum_concurrency is not None and normal > self.maximum_concurrency:
                out.append(
                    f"{name}.normal_maximum_concurrency={normal} must be at most maximum_concurrency "
                    f"({self.maximum_concurrency}), the priority queue's mapping."
                )
            if self.reserved_concurrency is not None and normal >= self.reserved_concurrency:
                out.append(
                    f"{name}.normal_maximum_concurrency={normal} must be below reserved_concurrency "
                    f"({self.reserved_concurrency}) to leave capacity for priority jobs."
                )
        return out + self._poller_problems(name)

    def _poller_problems(self, name: str) -> list[str]:
        pollers = self.provisioned_pollers
        if pollers is None:
            return []
        out = []
        for field_name, value, (low, high) in (
            ("minimum", pollers.minimum, MINIMUM_POLLERS_RANGE),
            ("maximum", pollers.maximum, MAXIMUM_POLLERS_RANGE),
        ):
            if not low <= value <= high:
                out.append(f"{name}.provisioned_pollers.{field_name}={value}: AWS accepts {low}-{high}.")
        if pollers.minimum > pollers.maximum:
            out.append(
                f"{name}.provisioned_pollers: minimum ({pollers.minimum}) must not exceed maximum "
                f"({pollers.maximum})."
            )
        exclusive = [
            f for f in ("maximum_concurrency", "normal_maximum_concurrency") if getattr(self, f) is not None
        ]
        if exclusive:
            out.append(
                f"{name}.provisioned_pollers cannot be combined with {' and '.join(exclusive)}: AWS's "
                "provisioned mode and maximum concurrency are mutually exclusive (docs/deploy.md)."
            )
        return out


@dataclass(frozen=True)
class StorageSettings:
    point_in_time_recovery: bool = False
    summaries_to_ia_days: int = 30


@dataclass(frozen=True)
class AlarmSettings:
    worker_errors: float = 1.0  # errors in 5 minutes
    oldest_message_age_s: float = 900.0


@dataclass(frozen=True)
class LayerSettings:
    architecture: str = "x86_64"
    keep_versions: int = 3


@dataclass(frozen=True)
class StackConfig:
    prefix: str
    region: str
    queues: QueueSettings
    worker: FunctionSettings
    collector: FunctionSettings
    storage: StorageSettings = field(default_factory=StorageSettings)
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    layer: LayerSettings = field(default_factory=LayerSettings)
    inline_limit_bytes: int = DEFAULT_INLINE_LIMIT
    metric_namespace: str = METRIC_NAMESPACE
    # S3 locations ("s3://bucket/prefix/") a batch may read bars from in place (data.source: s3): the
    # worker and the batch submitter may read objects there and nowhere else outside the stack's bucket.
    data_read_locations: tuple[str, ...] = ()

    def names(self, account_id: str | None = None) -> StackNames:
        return StackNames(prefix=self.prefix, account_id=account_id)

    def function(self, key: str) -> FunctionSettings:
        """The settings of function `key` ("worker" or "collector")."""
        return {"worker": self.worker, "collector": self.collector}[key]

    def handler_env(self, names: StackNames, queue_urls: Mapping[str, str]) -> HandlerEnv:
        """What both handlers read from their environment, for this stack; `queue_urls` maps queue names to
        URLs (the result queue and the dead-letter queue are needed)."""
        return HandlerEnv(
            table=names.table,
            bucket=names.bucket,
            result_queue_url=queue_urls[names.result_queue],
            dead_letter_queue_url=queue_urls[names.dead_letter_queue],
            max_receive_count=self.queues.max_receive_count,
            metric_namespace=self.metric_namespace,
            inline_result_limit=self.inline_limit_bytes,
        )


def load_stack(path: Path = DEFAULT_STACK, environment: str | None = None) -> StackConfig:
    """Read the stack file, merge an environment's overrides, and check the settings that must hold."""
    try:
        raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise StackConfigError(
            f"cannot read stack configuration {path}: {exc}; check the --config path "
            f"(the default is {DEFAULT_STACK.relative_to(ROOT)})."
        ) from exc
    except yaml.YAMLError as exc:
        raise StackConfigError(
            f"{path} is not valid YAML ({exc}); fix the syntax at the position shown."
        ) from exc
    if not isinstance(raw, dict):
        raise StackConfigError(f"{path}: expected a mapping of settings; see {DEFAULT_STACK.name}.")
    environments = raw.pop("environments", {}) or {}
    if environment is not None:
        if environment not in environments:
            raise StackConfigError(
                f"environment {environment!r} is not in {path}; defined: {', '.join(environments) or 'none'}."
                f"{did_you_mean(environment, environments)} Pass one of them, or add it under environments."
            )
        raw = _merge(raw, environments[environment] or {})
    config = _build(raw, path)
    check_region(config.region, f"{path}: region")
    problems = config.worker.problems("worker") + config.collector.problems("collector")
    if problems:
        raise StackConfigError(f"{path}: {' '.join(problems)}")
    if config.queues.visibility_timeout_s < 6 * config.worker.timeout_s:
        raise StackConfigError(
            f"queues.visibility_timeout_s={config.queues.visibility_timeout_s} must be at least 6x "
            f"worker.timeout_s ({6 * config.worker.timeout_s}) so a running job is not redelivered."
        )
    return config


def _build(raw: Mapping[str, Any], path: Path) -> StackConfig:
    try:
        return StackConfig(
            prefix=str(raw["prefix"]),
            region=str(raw["region"]),
            queues=_section(QueueSettings, raw["queues"], "queues", path),
            worker=_section(FunctionSettings, raw["worker"], "worker", path),
            collector=_section(FunctionSettings, raw["collector"], "collector", path),
            storage=_section(StorageSettings, raw.get("storage") or {}, "storage", path),
            alarms=_section(AlarmSettings, raw.get("alarms") or {}, "alarms", path),
            layer=_section(LayerSettings, raw.get("layer") or {}, "layer", path),
            inline_limit_bytes=int(
                (raw.get("results") or {}).get("inline_limit_bytes", DEFAULT_INLINE_LIMIT)
            ),
            metric_namespace=str((raw.get("metrics") or {}).get("namespace", METRIC_NAMESPACE)),
            data_read_locations=read_locations((raw.get("data") or {}), path),
        )
    except KeyError as exc:
        raise StackConfigError(f"{path}: missing setting {exc}; see config/stack.yaml.") from exc
    except (TypeError, ValueError) as exc:
        raise StackConfigError(f"{path}: malformed setting ({exc}); see config/stack.yaml.") from exc


def read_locations(data: Any, path: Path | str) -> tuple[str, ...]:
    """`data.read_locations`: S3 URIs of a bucket and a prefix ending in "/" (or the whole bucket)."""
    if not isinstance(data, Mapping) or set(data) - {"read_locations"}:
        unknown = sorted(set(data) - {"read_locations"}) if isinstance(data, Mapping) else data
        raise StackConfigError(
            f"{path}: data: unknown setting(s) {unknown}; the one setting is read_locations."
        )
    values = data.get("read_locations") or []
    if not isinstance(values, list):
        raise StackConfigError(f"{path}: data.read_locations must be a list of s3://bucket/prefix/ URIs.")
    out = []
    for value in values:
        uri = str(value)
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not uri.startswith("s3://") or not bucket or (prefix and not prefix.endswith("/")) or "*" in uri:
            raise StackConfigError(
                f"{path}: data.read_locations: {uri!r} is not an S3 location; write s3://bucket/prefix/ "
                "(the prefix ends with '/'; no wildcards) or s3://bucket/ for the whole bucket."
            )
        out.append(f"s3://{bucket}/{prefix}")
    return tuple(out)


def _section(kind: type[T], values: Any, name: str, path: Path) -> T:
    """A settings dataclass from one section: unknown keys are refused (a typo must not be ignored), and
    each value is converted to its field's type."""
    if not isinstance(values, Mapping):
        raise StackConfigError(f"{path}: {name} must be a mapping of settings; see config/stack.yaml.")
    fields = {f.name: f for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise StackConfigError(
            f"{path}: {name}.{unknown[0]} is not a setting.{did_you_mean(str(unknown[0]), fields)} "
            f"{name} takes: {', '.join(fields)}."
        )
    converted = {}
    for key, value in values.items():
        kind_name = str(fields[key].type)
        try:
            converted[key] = _convert(value, kind_name)
        except (TypeError, ValueError) as exc:
            raise StackConfigError(f"{path}: {name}.{key}={value!r}: expected {kind_name}.") from exc
    return kind(**converted)


def _convert(value: Any, kind: str) -> Any:
    if value is None and "None" in kind:
        return None
    if kind.startswith("ProvisionedPollers"):
        return ProvisionedPollers.from_setting(value)
    if kind.startswith("int"):
        if isinstance(value, bool) or float(value) != int(value):
            raise ValueError(value)
        return int(value)
    if kind.startswith("float"):
        return float(value)
    if kind.startswith("bool"):
        if not isinstance(value, bool):
            raise TypeError(value)
        return value
    return str(value)


@cache
def aws_regions() -> frozenset[str]:
    """Every region the installed botocore knows, in every partition (aws, aws-cn, aws-us-gov, ...)."""
    session = boto3.session.Session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("sqs", partition_name=partition)
    )


def check_region(region: str, what: str) -> None:
    """A region name must be one AWS has: a typo would otherwise surface as a connection error."""
    known = aws_regions()
    if region not in known:
        raise StackConfigError(
            f"{what} {region!r} is not an AWS region.{did_you_mean(region, known)} Use e.g. ap-northeast-2 "
            "or us-east-1 (a region newer than the installed boto3 needs `pip install -U boto3`)."
        )


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out
