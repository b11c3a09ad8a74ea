"""Generalised linear mixed models (binomial, Poisson) in lme4's formula syntax, fitted by
maximum likelihood with the Laplace approximation or adaptive Gauss-Hermite quadrature, as
lme4's ``glmer`` (Bates, Mächler, Bolker & Walker 2015, JSS 67(1), section 5).

- :mod:`.family`      families and links: means, IRLS weights, -2 log-likelihoods
- :mod:`.design`      the design, with the response (0/1, counts, cbind(successes, failures)) of
                      :mod:`estimators.response`
- :mod:`.pirls`       conditional modes by PIRLS and the Laplace deviance, batched
- :mod:`.quadrature`  adaptive Gauss-Hermite quadrature for one scalar term
- :mod:`.fit`         joint optimisation of (theta, beta), covariance, flags
- :mod:`.estimator`   :class:`GLMM`, the clustersim estimator

The formula parser and the design of random terms are the LMM engine's (:mod:`estimators.lmm`).
See docs/glmm.md.
"""
from estimators.glmm.estimator import GLMM
from estimators.glmm.fit import GLMMFit, GLMMModel

__all__ = ["GLMM", "GLMMFit", "GLMMModel"]
