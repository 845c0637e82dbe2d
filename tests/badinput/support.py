"""Helpers of the bad-input suite: the emulated stack's contents, and small input builders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from backtesting_modules.names import StackNames
from backtesting_modules.pipeline.clients import ClientFactory

ACCOUNT = "123456789012"  # moto's account id


@dataclass
class DeployedStack:
    """The stack `run_batch.py --target aws` looks for, deployed in moto from the deploy definitions."""

    clients: ClientFactory
    names: StackNames
    urls: dict[str, str]

    def messages(self) -> dict[str, int]:
        """Messages waiting or in flight, per queue."""
        sqs = self.clients.client("sqs")
        counts = {}
        for name, url in self.urls.items():
            attrs = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            counts[name] = sum(int(v) for v in attrs.values())
        return counts

    def table_items(self) -> int:
        return int(self.clients.client("dynamodb").scan(TableName=self.names.table, Select="COUNT")["Count"])

    def objects(self, prefix: str = "") -> list[str]:
        listing = self.clients.client("s3").list_objects_v2(Bucket=self.names.bucket, Prefix=prefix)
        return [o["Key"] for o in listing.get("Contents", [])]

    def assert_nothing_submitted(self, *, bars_allowed: bool = False) -> None:
        """No job, result or dead letter; no batch or job record; no object (bars, when allowed, are
        uploads a rerun rewrites byte for byte)."""
        assert set(self.messages().values()) == {0}, self.messages()
        assert self.table_items() == 0
        others = [k for k in self.objects() if not (bars_allowed and k.startswith("bars/"))]
        assert others == []


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def spec_text(**change: Any) -> str:
    """A small valid batch spec as YAML, with top-level keys replaced (None removes one)."""
    spec: dict[str, Any] = {
        "name": "bad",
        "job_type": "PARAMETER_OPTIMIZATION",
        "symbols": ["KRW-BTC", "KRW-ETH"],
        "data": {"source": "synthetic", "seed": 1, "periods": 500, "freq": "1h"},
        "strategies": [{"name": "SMA_Crossover", "grid": {"fast": "5:15:5", "slow": [20, 30]}}],
        "ranking": {"metric": "sharpe", "top": 5},
    }
    for key, value in change.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return yaml.safe_dump(spec, sort_keys=False)
