"""Shared helpers: small studies run through the same composition path as the CLI."""
from __future__ import annotations

import pytest

from sims.api import compose
from sims.run.study import validate


@pytest.fixture
def small_study():
    """``small_study(*overrides)`` -> a validated Study of the default config with overrides."""

    def make(*overrides: str):
        return validate(compose(list(overrides)))

    return make
