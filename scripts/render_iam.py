"""Render the stack's IAM policy documents as JSON (placeholders where no account or repository is given).

    python scripts/render_iam.py                                   # placeholder versions into docs/iam/
    python scripts/render_iam.py --account-id 123456789012 --repo me/ops --out /tmp/iam
    python scripts/render_iam.py --stdout --only github-oidc-trust.json

Files (see docs/deploy.md):
- github-oidc-trust.json, github-deploy-policy.json: ONE deploy role for every environment;
- github-oidc-trust-<env>.json, github-deploy-policy-<env>.json: a deploy role per environment (stricter);
- github-batch-policy-<env>.json: the role that submits batches (AWS_BATCH_ROLE_ARN in the workflows);
- lambda-trust.json, <env>-worker-policy.json, <env>-collector-policy.json, <env>-bucket-policy.json: what
  deploy_roles.py / deploy_storage.py apply, for review.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from opslib.cli import EXIT_FAILED
from opslib.deploy.iam import (
    ACCOUNT_PLACEHOLDER,
    REPO_PLACEHOLDER,
    batch_submitter_policy,
    bucket_policy_tls_only,
    collector_policy,
    github_oidc_trust_policy,
    lambda_trust_policy,
    worker_policy,
)
from opslib.deploy.iam_deploy import github_deploy_policy
from opslib.deploy.policy_check import validate_policy
from opslib.stack import DEFAULT_STACK, ROOT, load_stack

DEFAULT_OUT = ROOT / "docs" / "iam"


def environments_of(stack: Path) -> list[str]:
    raw = yaml.safe_load(stack.read_text(encoding="utf-8")) or {}
    return list(raw.get("environments") or {})


def render(
    account_id: str | None, repo: str | None, environments: Sequence[str], stack: Path = DEFAULT_STACK
) -> dict[str, dict[str, Any]]:
    """File name → policy document, for every environment of the stack file."""
    if not environments:
        raise SystemExit(f"no environments: define them in {stack} or pass --environment")
    configs = {env: load_stack(stack, env) for env in environments}
    regions = {c.region for c in configs.values()}
    docs: dict[str, dict[str, Any]] = {}
    if len(regions) == 1:
        (region,) = regions
        docs["github-oidc-trust.json"] = github_oidc_trust_policy(account_id, repo, list(environments))
        docs["github-deploy-policy.json"] = github_deploy_policy(
            [c.names(account_id or ACCOUNT_PLACEHOLDER) for c in configs.values()], region, account_id
        )
    docs["lambda-trust.json"] = lambda_trust_policy(account_id or ACCOUNT_PLACEHOLDER)
    for env, config in configs.items():
        names = config.names(account_id or ACCOUNT_PLACEHOLDER)
        docs[f"github-oidc-trust-{env}.json"] = github_oidc_trust_policy(account_id, repo, [env])
        docs[f"github-deploy-policy-{env}.json"] = github_deploy_policy(names, config.region, account_id)
        docs[f"{env}-worker-policy.json"] = worker_policy(
            names, config.region, account_id, config.metric_namespace, config.data_read_locations
        )
        docs[f"{env}-collector-policy.json"] = collector_policy(
            names, config.region, account_id, config.metric_namespace
        )
        docs[f"{env}-bucket-policy.json"] = bucket_policy_tls_only(names.bucket)
        docs[f"github-batch-policy-{env}.json"] = batch_submitter_policy(
            names, config.region, account_id, config.data_read_locations
        )
    return docs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--account-id", help=f"12-digit AWS account id (default: {ACCOUNT_PLACEHOLDER})")
    parser.add_argument("--repo", help=f"GitHub repository OWNER/REPO (default: {REPO_PLACEHOLDER})")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="directory to write (default: docs/iam)"
    )
    parser.add_argument("--stack", type=Path, default=DEFAULT_STACK, help="stack configuration file")
    parser.add_argument(
        "--environment",
        action="append",
        dest="environments",
        help="GitHub/stack environment allowed to deploy (repeatable; default: every one in the stack file)",
    )
    parser.add_argument(
        "--stdout", action="store_true", help="print the document(s) as JSON instead of writing files"
    )
    parser.add_argument("--only", action="append", help="render only this file name (repeatable)")
    args = parser.parse_args(argv)

    if args.account_id is not None and not re.fullmatch(r"\d{12}", args.account_id):
        parser.error(f"--account-id must be 12 digits, got {args.account_id!r}")
    if args.repo is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", args.repo):
        parser.error(f"--repo must be OWNER/REPO, got {args.repo!r}")
    environments = args.environments or environments_of(args.stack)
    docs = render(args.account_id, args.repo, environments, args.stack)
    if args.only:
        unknown = sorted(set(args.only) - set(docs))
        if unknown:
            parser.error(f"unknown document(s) {', '.join(unknown)}; available: {', '.join(sorted(docs))}")
        docs = {name: doc for name, doc in docs.items() if name in args.only}

    failed = False
    for name, doc in docs.items():
        for finding in validate_policy(doc):
            failed = True
            print(f"{name}: {finding}", file=sys.stderr)
    if failed:
        return EXIT_FAILED
    if args.stdout:
        # One document: the document itself (ready for `aws iam ... file://`); several: name → document.
        single = next(iter(docs.values())) if len(docs) == 1 else docs
        print(json.dumps(single, indent=2))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, doc in docs.items():
        (args.out / name).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
