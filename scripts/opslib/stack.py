"""`config/stack.yaml` as a typed object, built once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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
        raise ConfigurationError(f"cannot read stack configuration {path}: {exc}") from exc
    environments = raw.pop("environments", {}) or {}
    if environment is not None:
        if environment not in environments:
            raise ConfigurationError(
                f"environment {environment!r} is not in {path}; defined: {', '.join(environments) or 'none'}."
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
    if queues.visibility_timeout_s < 6 * int(config.worker["timeout_s"]):
        raise ConfigurationError(
            f"queues.visibility_timeout_s={queues.visibility_timeout_s} must be at least 6x worker.timeout_s "
            f"({6 * int(config.worker['timeout_s'])}) so a running job is not redelivered."
        )
    return config


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out
