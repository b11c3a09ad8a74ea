"""Response families and links of the GLMM: the inverse link, its derivative, the variance
function, the IRLS weights and the -2 log-likelihood per observation.

With linear predictor eta, mean mu = g^-1(eta), prior weight m (binomial trials, 1 otherwise),
the Fisher-scoring (IRLS) weight and the score of eta are (McCullagh & Nelder 1989, section 2.5)

    w = m (d mu / d eta)^2 / V(mu),        s = m (y - mu) (d mu / d eta) / V(mu),

with y the proportion of successes for the binomial (V = mu (1 - mu)) and the count for the
Poisson (V = mu). The -2 log-likelihood includes the constants, as R's ``family()$aic``, which is
what lme4's Laplace objective adds (``glmResp::Laplace`` = ldL2 + ||u||^2 + aic):

    binomial  -2 [log C(m, k) + k log mu + (m - k) log(1 - mu)],   k = m y successes,
    poisson   -2 [y log mu - mu - log y!].

The deviance residual is the same less its value at mu = y (the saturated model), lme4's
``devResid``; adaptive Gauss-Hermite quadrature sums those. The families, links, link functions
and variance functions are :mod:`estimators.families`' (shared with the GLM and GEE); this
module keeps mu within DBL_EPSILON of its range, as lme4's response module does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from estimators import families
# mu is kept this far from 0 and 1 (R's binomial()$linkinv uses DBL_EPSILON the same way).
_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class Family:
    """A family and link: ``name`` binomial or poisson, ``link`` logit, probit or log."""

    name: str
    link: str

    def mean(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """mu = g^-1(eta) and d mu / d eta, both kept at least DBL_EPSILON (mu below 1 - eps too)."""
        mu = families.inverse_link(self.link, eta)
        if self.link == "log":
            mu = np.maximum(mu, _EPS)
            return mu, mu
        return np.clip(mu, _EPS, 1 - _EPS), np.maximum(families.mean_derivative(self.link, eta, mu), _EPS)

    @property
    def is_canonical(self) -> bool:
        """Whether the link is the family's canonical one (logit, log): then d s / d eta = -w."""
        return self.link == families.link_or_canonical(self.name, None)

    def weight_slope(self, m: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """d w / d eta for a canonical link: m mu (1 - mu) (1 - 2 mu) (logit), m mu (log)."""
        if self.name == "binomial":
            return m * mu * (1.0 - mu) * (1.0 - 2.0 * mu)
        return m * mu

    def variance(self, mu: np.ndarray) -> np.ndarray:
        return families.variance_function(self.name, mu)

    def weights_and_score(self, y: np.ndarray, m: np.ndarray, eta: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """mu, the IRLS weights w and the score s of eta (module docstring)."""
        mu, d = self.mean(eta)
        ratio = m * d / self.variance(mu)
        return mu, ratio * d, ratio * (y - mu)

    def minus_two_loglik(self, y: np.ndarray, m: np.ndarray, constant: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """-2 log p(y | mu) per observation; ``constant`` is :meth:`log_constant` of (y, m)."""
        if self.name == "binomial":
            return -2.0 * (constant + m * (special.xlogy(y, mu) + special.xlog1py(1.0 - y, -mu)))
        return -2.0 * (constant + special.xlogy(y, mu) - mu)

    def log_constant(self, y: np.ndarray, m: np.ndarray) -> np.ndarray:
        """log C(m, k) (binomial) or -log y! (Poisson): the part of the log-likelihood free of mu."""
        if self.name == "binomial":
            k = np.rint(m * y)
            return special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
        return -special.gammaln(y + 1)

    def saturated(self, y: np.ndarray, m: np.ndarray, constant: np.ndarray) -> np.ndarray:
        """-2 log p(y | mu = y) per observation: the deviance residual is the -2 log-likelihood less it."""
        if self.name == "binomial":
            return -2.0 * (constant + m * (special.xlogy(y, y) + special.xlog1py(1.0 - y, -y)))
        return -2.0 * (constant + special.xlogy(y, y) - y)

    def start_eta(self, y: np.ndarray, m: np.ndarray) -> np.ndarray:
        """R's ``mustart`` on the link scale: binomial (m y + 1/2) / (m + 1), Poisson y + 1/10."""
        if self.name == "poisson":
            return np.log(y + 0.1)
        return families.link_function(self.link, (m * y + 0.5) / (m + 1.0))
