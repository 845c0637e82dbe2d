"""Reading the live stack: what a planner needs to tell "absent" from the rest.

Planners only read (describe/get/list calls); these helpers keep how they read errors in one place.
"""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import ClientError


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call ("ResourceNotFoundException", "NoSuchEntity", "404", ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def exists(call: Callable[[], object]) -> bool:
    """Whether a describe/get call finds its resource (any client error reads as absent)."""
    try:
        call()
    except ClientError:
        return False
    return True
