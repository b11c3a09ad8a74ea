"""Clustered data whose residual variance differs between observations (the lecture's
"differences in variability between observations").

    y_ij = b0 + b1 * x_ij + u_i + e_ij,          i = 1..n_clusters, j = 1..cluster_size,
    x_ij = sqrt(x_icc) * a_i + sqrt(1 - x_icc) * w_ij,   a_i, w_ij ~ N(0, 1),
    u_i  ~ N(0, var_cluster),
    e_ij ~ N(0, var_residual * exp(strength * z_ij - strength^2 / 2)),

with z_ij, a standard normal variable chosen by ``depends_on``:

- ``predictor``: z_ij = x_ij, the variance grows with the predictor;
- ``cluster``: z_ij = c_i, c_i ~ N(0, 1) per cluster, each cluster has its own variance;
- ``both``: z_ij = (x_ij + c_i) / sqrt(2).

This is Harvey's (1976, Econometrica 44:461) multiplicative heteroskedasticity. Because z is
standard normal, E[exp(strength * z - strength^2 / 2)] = 1: the average residual variance is
var_residual whatever the strength, and ``strength`` = 0 is homoskedastic. Between z = -1 and
z = +1 the residual variance changes by a factor exp(2 strength). The predictor x is standard
normal with intraclass correlation ``x_icc``.

What it teaches (defaults): iid OLS standard errors are wrong twice (heteroskedasticity and
clustering), HC ones fix the first only, cluster-robust ones fix both, and a random-intercept
model fixes the clustering but assumes one residual variance. With ``depends_on=predictor``
the variance of the OLS slope is about (1 + strength^2) times what the iid formula assumes
(from E[x^2 exp(s x - s^2/2)] = 1 + s^2).

Everything, the predictor included, is drawn in every replicate (``fixed_design`` is False).
Columns: ``y`` (float), ``x`` (float), ``cluster`` (int, 1..n_clusters).
Truth: ``Intercept`` = b0, ``x`` = b1.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal, get_args

import numpy as np
import pandas as pd

from sims.dgp.base import DGP, require, require_nonnegative, require_positive_int

VarianceDriver = Literal["predictor", "cluster", "both"]


@dataclasses.dataclass(frozen=True)
class HeteroskedasticDGP(DGP):
    n_clusters: int = 30
    cluster_size: int = 20
    intercept: float = 0.0
    slope: float = 0.5
    var_cluster: float = 0.5
    var_residual: float = 1.0
    x_icc: float = 0.5
    strength: float = 1.0
    depends_on: VarianceDriver = "predictor"

    fixed_design: ClassVar[bool] = False
    columns: ClassVar[dict[str, str]] = {"y": "f", "x": "f", "cluster": "i"}

    def __post_init__(self):
        require_positive_int(self.n_clusters, "n_clusters")
        require_positive_int(self.cluster_size, "cluster_size")
        for name in ("intercept", "slope", "strength"):
            require(np.isfinite(getattr(self, name)), name, f"must be a finite number, got {getattr(self, name)!r}")
        for name in ("var_cluster", "var_residual"):
            require_nonnegative(getattr(self, name), name)
        require(np.isfinite(self.x_icc) and 0.0 <= self.x_icc <= 1.0, "x_icc", f"must be in [0, 1], got {self.x_icc!r}")
        require(self.depends_on in get_args(VarianceDriver), "depends_on",
                f"must be one of {', '.join(get_args(VarianceDriver))}, got {self.depends_on!r}")

    def variance_driver(self, x: np.ndarray, cluster_normal: np.ndarray) -> np.ndarray:
        """The standard normal z_ij that sets each residual's log variance."""
        if self.depends_on == "predictor":
            return x
        if self.depends_on == "cluster":
            return cluster_normal
        return (x + cluster_normal) / np.sqrt(2.0)

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        shape = (self.n_clusters, self.cluster_size)
        between = rng.normal(size=(self.n_clusters, 1))
        x = np.sqrt(self.x_icc) * between + np.sqrt(1.0 - self.x_icc) * rng.normal(size=shape)
        u = rng.normal(0.0, np.sqrt(self.var_cluster), size=(self.n_clusters, 1))
        # Drawn whatever depends_on is, so that cells of a grid over depends_on or strength
        # share their draws and differ only in the residual variances.
        cluster_normal = np.broadcast_to(rng.normal(size=(self.n_clusters, 1)), shape)
        z = self.variance_driver(x, cluster_normal)
        sd = np.sqrt(self.var_residual * np.exp(self.strength * z - self.strength**2 / 2))
        y = self.intercept + self.slope * x + u + sd * rng.normal(size=shape)
        return pd.DataFrame({
            "y": y.ravel(),
            "x": x.ravel(),
            "cluster": np.repeat(np.arange(1, self.n_clusters + 1), self.cluster_size),
        })

    def truth(self) -> dict[str, float]:
        return {"Intercept": self.intercept, "x": self.slope}
