"""What a test does when a real dependency it needs (a program, a browser) is missing.

Locally it is skipped, with the command that installs what is missing. Under CI (``CI=true``)
every real dependency must be there, so it fails instead: a green CI never hides a test that
did not run.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(reason: str, ci_must: str) -> NoReturn:
    """Skip with ``reason`` (what is missing and how to install it); fail under CI, saying
    what CI must do (``ci_must``: "run the broker tests")."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must {ci_must}, but {reason}")
    pytest.skip(reason)
