"""The parametric bootstrap likelihood-ratio test of fixed effects, as pbkrtest's ``PBmodcomp``
(Halekoh & Hojsgaard 2014, J. Stat. Softw. 59(9), section 4).

For a replicate with observed LR = d_ML(reduced) - d_ML(full) (both models fitted by ML):

1. simulate B outcomes from the reduced model's ML fit (lme4's ``simulate``),
       y*_b = X_0 beta_0 + sigma_0 (Z Lambda_0 u_b + e_b),   u_b ~ N(0, I_q), e_b ~ N(0, I_n);
2. refit both models by ML to each y*_b: LR*_b = max(d_ML(reduced; y*_b) - d_ML(full; y*_b), 0);
3. p = (1 + #{b : LR*_b > LR}) / (1 + #{b : LR*_b > 0})   (pbkrtest's ``.finalizePB``: the
   samples with LR* = 0 are left out).

The B samples of a replicate share its design, so they are fitted as one batch (the same-design
path of the engine); a sample's fit does not depend on the batch it is in, so the p-value is the
one a loop over the samples gives. The normal draws come from the replicate's own generator,
hypothesis by hypothesis, as one (B, q + n) array each.
"""
from __future__ import annotations

import numpy as np

from estimators.lmm.crossprod import random_block_matrix
from estimators.lmm.design import MixedDesign
from estimators.lmm.fit import MixedFit, MixedModel
from estimators.lmm.theta import ThetaLayout


def simulate(design: MixedDesign, fit: MixedFit, rng: np.random.Generator, n_samples: int) -> np.ndarray:
    """n x B outcomes y* = X beta + sigma (Z Lambda u + e) from the fit of ``design``."""
    layout = ThetaLayout(tuple(b.k for b in design.blocks))
    q = sum(block.size for block in design.blocks)
    draws = rng.standard_normal((n_samples, q + design.n))
    U, E = draws[:, :q].T, draws[:, q:].T
    noise = E.copy()
    offset = 0
    for block, T in zip(design.blocks, layout.factors(fit.theta)):
        u = U[offset:offset + block.size].reshape(block.k, block.n_levels, n_samples)
        b = np.einsum("ca,ajs->cjs", T, u).reshape(block.size, n_samples)  # Lambda_t u, component-major
        noise += random_block_matrix(block) @ b
        offset += block.size
    return (design.X @ fit.beta)[:, None] + fit.sigma * noise


def bootstrap_p_value(observed: float, reference: np.ndarray) -> float:
    """(1 + #{LR* > LR}) / (1 + #{LR* > 0}) over the finite LR* (pbkrtest's ``.finalizePB``)."""
    positive = reference[np.isfinite(reference) & (reference > 0)]
    return float((1 + np.sum(positive > observed)) / (1 + positive.size))


def reference_distribution(full: MixedModel, reduced: MixedModel, reduced_fit: MixedFit,
                           rng: np.random.Generator, n_samples: int) -> np.ndarray:
    """LR*_b (B,) for samples simulated from ``reduced_fit``; ``full``, ``reduced``: ML models."""
    Y = simulate(reduced.design, reduced_fit, rng, n_samples)
    d_full = np.array([f.criterion for f in full.fit(full.outcomes(Y))])
    d_reduced = np.array([f.criterion for f in reduced.fit(reduced.outcomes(Y))])
    return np.maximum(d_reduced - d_full, 0.0)


def bootstrap_tests(design: MixedDesign, Y: np.ndarray, reduced_designs: list[MixedDesign],
                    full_deviance: np.ndarray, converged_full: np.ndarray, rngs, n_samples: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed LR (R, H), bootstrap p-values (R, H) and a mask of the tests whose observed ML
    fits converged, for each reduced design (H hypotheses) and each column of Y (R replicates,
    ``rngs`` their generators; ``full_deviance`` the full model's ML deviances)."""
    full = MixedModel.from_design(design, reml=False)
    R, H = Y.shape[1], len(reduced_designs)
    statistic, p_value = np.full((R, H), np.nan), np.full((R, H), np.nan)
    converged = np.zeros((R, H), dtype=bool)
    for h, reduced_design in enumerate(reduced_designs):
        reduced = MixedModel.from_design(reduced_design, reml=False)
        fits = reduced.fit(reduced.outcomes(Y))
        statistic[:, h] = np.maximum(np.array([f.criterion for f in fits]) - full_deviance, 0.0)
        converged[:, h] = converged_full & np.array([f.converged for f in fits])
        for r in range(R):
            if np.isfinite(statistic[r, h]):
                reference = reference_distribution(full, reduced, fits[r], rngs[r], n_samples)
                p_value[r, h] = bootstrap_p_value(statistic[r, h], reference)
    return statistic, p_value, converged
