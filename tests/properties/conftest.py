"""Hypothesis profiles of the property tests.

`ci` (the default) runs a modest number of examples so the folder stays well under 30 s; `long` runs
10,000 examples per property (`HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/properties`).
No deadline: an example's time depends on the machine, not on correctness.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
