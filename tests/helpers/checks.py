"""Running one check of a conformance suite (estimators.checks, sims.dgp.checks) as a test."""
from __future__ import annotations

import unittest
from typing import Callable

import pytest


def run_check(check: Callable[[object], None], subject: object) -> None:
    """``check(subject)``; a check that does not apply (it raises ``unittest.SkipTest``) makes the
    test skipped with the check's reason, reported at the calling test."""
    try:
        check(subject)
    except unittest.SkipTest as skip:
        pytest.skip(f"{check.__name__}: {skip}")
