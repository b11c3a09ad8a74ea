"""Small binary and count designs for the GLMM presets' conformance cases: logistic and Poisson
outcomes with random intercepts and slopes per subject, and subjects crossed with items. Each
object has what the conformance test asks of a DGP (``generate(rng)``, ``truth()``,
``fixed_design``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special


@dataclass(frozen=True)
class ClusteredOutcome:
    """Subjects x 2 conditions (X 0/1) x trials, eta = b0 + b1 X + u_0s + u_1s X with SDs 0.8 and
    0.5 (correlation 0.3); y ~ Bernoulli(expit(eta)) or Poisson(exp(eta))."""

    n_subjects: int = 12
    n_trials: int = 8
    family: str = "binomial"
    fixed_design = True

    def truth(self) -> dict[str, float]:
        return {"Intercept": 0.3 if self.family == "binomial" else 0.5, "X": 0.6}

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        s, x = np.meshgrid(np.arange(self.n_subjects), np.repeat([0.0, 1.0], self.n_trials), indexing="ij")
        s, x = s.ravel(), x.ravel()
        cov = np.array([[0.64, 0.12], [0.12, 0.25]])
        u = rng.multivariate_normal([0.0, 0.0], cov, self.n_subjects)
        truth = self.truth()
        eta = truth["Intercept"] + truth["X"] * x + u[s, 0] + u[s, 1] * x
        y = rng.binomial(1, special.expit(eta)) if self.family == "binomial" else rng.poisson(np.exp(eta))
        return pd.DataFrame({"y": y.astype(float), "X": x, "subject": [f"s{i:03d}" for i in s]})


@dataclass(frozen=True)
class CrossedBinary:
    """Subjects crossed with items, condition -0.5/+0.5 alternating over items within a subject
    (counterbalanced), by-subject and by-item intercepts (SD 0.8, 0.5) and slopes (SD 0.4, 0.3)."""

    n_subjects: int = 12
    n_items: int = 8
    fixed_design = True

    def truth(self) -> dict[str, float]:
        return {"Intercept": 0.2, "condition": 0.5}

    def generate(self, rng: np.random.Generator) -> pd.DataFrame:
        s, i = np.meshgrid(np.arange(self.n_subjects), np.arange(self.n_items), indexing="ij")
        s, i = s.ravel(), i.ravel()
        c = np.where((s + i) % 2 == 0, -0.5, 0.5)
        us = rng.standard_normal((self.n_subjects, 2)) * [0.8, 0.4]
        ui = rng.standard_normal((self.n_items, 2)) * [0.5, 0.3]
        truth = self.truth()
        eta = truth["Intercept"] + truth["condition"] * c + us[s, 0] + ui[i, 0] + (us[s, 1] + ui[i, 1]) * c
        return pd.DataFrame({"y": rng.binomial(1, special.expit(eta)).astype(float), "condition": c,
                             "subject": [f"s{k:03d}" for k in s], "item": [f"i{k:03d}" for k in i],
                             "list": (i % 2).astype(int)})


# name -> (small design, large design for the consistency check, grouping columns); counts come
# first, since 0/1 outcomes are counts too.
GLMM_DESIGNS = {
    "clustered_counts": (ClusteredOutcome(family="poisson"), ClusteredOutcome(n_subjects=150, n_trials=10, family="poisson"),
                         ("subject",)),
    "clustered_binary": (ClusteredOutcome(), ClusteredOutcome(n_subjects=150, n_trials=10), ("subject",)),
    "crossed_binary": (CrossedBinary(), CrossedBinary(n_subjects=60, n_items=30), ("subject", "item")),
}
