"""Publishing the engine layer: through S3 (a layer zip is far above the 50 MB direct-upload limit), only when
its content hash changed, and pruning old versions."""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

from ..errors import DeployError
from .functions import RUNTIME
from .plan import Call, Change, DeployContext, Plan
from .state import read

DESCRIPTION_PREFIX = "sha256:"


def layer_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plan_layer(ctx: DeployContext, zip_path: Path) -> Plan:
    if not zip_path.exists():
        raise DeployError(f"{zip_path} not found: build the layer first with scripts/build_layer.py.")
    sha = layer_sha256(zip_path)
    client = ctx.clients.client("lambda")
    versions = read(
        partial(client.list_layer_versions, LayerName=ctx.names.layer),
        "lambda:ListLayerVersions",
        ctx.layer_arn(ctx.names.layer),
    ).get("LayerVersions", [])
    versions.sort(key=lambda v: int(v["Version"]), reverse=True)  # newest first
    if versions and versions[0].get("Description", "").startswith(f"{DESCRIPTION_PREFIX}{sha}"):
        return Plan("layer")
    key = f"layers/{ctx.names.layer}/{sha}.zip"
    architecture = ctx.config.layer.architecture
    calls = [
        Call("s3", "put_object", {"Bucket": ctx.names.bucket, "Key": key, "Body": zip_path.read_bytes()}),
        Call(
            "lambda",
            "publish_layer_version",
            {
                "LayerName": ctx.names.layer,
                "Description": f"{DESCRIPTION_PREFIX}{sha}",
                "Content": {"S3Bucket": ctx.names.bucket, "S3Key": key},
                "CompatibleRuntimes": [RUNTIME],
                "CompatibleArchitectures": [architecture],
            },
        ),
    ]
    keep = ctx.config.layer.keep_versions
    stale = versions[max(0, keep - 1) :]  # the new version counts toward `keep`
    calls += [
        Call("lambda", "delete_layer_version", {"LayerName": ctx.names.layer, "VersionNumber": v["Version"]})
        for v in stale
    ]
    current = versions[0]["Description"] if versions else None
    summary = f"publish {sha[:12]} ({zip_path.stat().st_size / 1e6:.1f} MB) via S3" + (
        f"; delete {len(stale)} old version(s)" if stale else ""
    )
    return Plan(
        "layer",
        (
            Change(
                "create",
                f"layer {ctx.names.layer}",
                summary,
                tuple(calls),
                {"content": (current, f"{DESCRIPTION_PREFIX}{sha}")},
            ),
        ),
    )
