"""Data-generating processes, study configuration and the Monte Carlo runner."""
from __future__ import annotations

from sims.dgp.base import DGP, InvalidParameter
from estimators.presets import ConfigError, available


def build(name: str, **params) -> DGP:
    """The DGP ``conf/dgp/<name>.yaml`` with some parameters replaced, e.g.
    ``sims.build("clustered", n_subjects=48)``."""
    from estimators.presets import build as build_preset

    return build_preset("dgp", name, **params)


__all__ = ["DGP", "ConfigError", "InvalidParameter", "available", "build"]
