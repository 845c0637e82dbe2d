"""`config/stack.yaml` as a typed object, built once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import yaml

from backtesting_modules.errors import did_you_mean
from backtesting_modules.pipeline.names import ConfigurationError, StackNames

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STACK = ROOT / "config" / "stack.yaml"


@dataclass(frozen=True)
class QueueSettings:
    visibility_timeout_s: int
    retention_s: int
    max_receive_count: int
    receive_wait_s: int
    dlq_retention_s: int


@dataclass(frozen=True)
class StackConfig:
    prefix: str
    region: str
    queues: QueueSettings
    worker: dict[str, Any]
    collector: dict[str, Any]
    storage: dict[str, Any]
    alarms: dict[str, Any]
    layer: dict[str, Any]
    inline_limit_bytes: int
    metric_namespace: str

    def names(self, account_id: str | None = None) -> StackNames:
        return StackNames(prefix=self.prefix, account_id=account_id)


def load_stack(path: Path = DEFAULT_STACK, environment: str | None = None) -> StackConfig:
    """Read the stack file, merge an environment's overrides, and check the settings that must hold."""
    try:
        raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read stack configuration {path}: {exc}; check the --config path "
            f"(the default is {DEFAULT_STACK.relative_to(ROOT)})."
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            f"{path} is not valid YAML ({exc}); fix the syntax at the position shown."
        ) from exc
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: expected a mapping of settings; see {DEFAULT_STACK.name}.")
    environments = raw.pop("environments", {}) or {}
    if environment is not None:
        if environment not in environments:
            raise ConfigurationError(
                f"environment {environment!r} is not in {path}; defined: {', '.join(environments) or 'none'}."
                f"{did_you_mean(environment, environments)} Pass one of them, or add it under environments."
            )
        raw = _merge(raw, environments[environment] or {})
    try:
        queues = QueueSettings(**raw["queues"])
        config = StackConfig(
            prefix=str(raw["prefix"]),
            region=str(raw["region"]),
            queues=queues,
            worker=dict(raw["worker"]),
            collector=dict(raw["collector"]),
            storage=dict(raw.get("storage") or {}),
            alarms=dict(raw.get("alarms") or {}),
            layer=dict(raw.get("layer") or {}),
            inline_limit_bytes=int(raw["results"]["inline_limit_bytes"]),
            metric_namespace=str(raw["metrics"]["namespace"]),
        )
    except (KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"{path}: missing or malformed setting {exc}; see config/stack.yaml."
        ) from exc
    check_region(config.region, f"{path}: region")
    if queues.visibility_timeout_s < 6 * int(config.worker["timeout_s"]):
        raise ConfigurationError(
            f"queues.visibility_timeout_s={queues.visibility_timeout_s} must be at least 6x worker.timeout_s "
            f"({6 * int(config.worker['timeout_s'])}) so a running job is not redelivered."
        )
    return config


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
        raise ConfigurationError(
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
