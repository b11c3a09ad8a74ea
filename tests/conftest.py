"""Shared helpers: small studies run through the same composition path as the CLI."""
from __future__ import annotations

import pytest

from estimators.presets import USER_DIRS_ENV

from sims.api import compose
from sims.run.study import validate


@pytest.fixture
def small_study():
    """``small_study(*overrides)`` -> a validated Study of the default config with overrides."""

    def make(*overrides: str):
        return validate(compose(list(overrides)))

    return make


@pytest.fixture(autouse=True)
def no_user_config_dirs(monkeypatch):
    """The user's config folders that a composition found (``./conf``, ``hydra.searchpath``)
    are kept in the environment; each test starts without any, and leaves none behind."""
    monkeypatch.setenv(USER_DIRS_ENV, "")
