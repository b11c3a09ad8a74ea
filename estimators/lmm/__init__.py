"""Linear mixed models in lme4's formula syntax, fitted by profiled REML or ML.

The algorithm is lme4's (Bates, Mächler, Bolker & Walker 2015, "Fitting Linear Mixed-Effects
Models Using lme4", JSS 67(1)): a blocked Cholesky factor of the cross-products of [Z X y]
gives the profiled criterion as a function of the relative covariance factor theta alone.
Modules, in the order the computation runs:

- :mod:`.formula`      lme4 formula syntax -> fixed part and random terms
- :mod:`.design`       model matrices, random terms sorted by number of levels
- :mod:`.crossprod`    Z'Z, Z'X, X'X once per design; Z'y, X'y, y'y per replicate
- :mod:`.theta`        theta <-> relative factors; rectification, singularity, VarCorr, PCA
- :mod:`.levelwise`    small per-level matrices, vectorised over levels and replicates
- :mod:`.cholesky`     the blocked Cholesky factor and the gradient of its pieces
- :mod:`.sparse`       the same with W'Z_1 held sparse, for large crossed designs
- :mod:`.criterion`    REML and ML criteria and their gradients
- :mod:`.start`        a moment estimate of theta per replicate
- :mod:`.optimize`     BFGS for many replicates at once
- :mod:`.fit`          :class:`MixedModel` and :class:`MixedFit`
- :mod:`.cache`        prepared models kept per design (patsy and Z'Z cost more than a fit)
- :mod:`.satterthwaite`, :mod:`.kenward_roger`, :mod:`.lrt`, :mod:`.bootstrap`   inference for fixed effects
- :mod:`.hypotheses`, :mod:`.ftest`   type III hypotheses, F tests, anova tables, contrasts
- :mod:`.estimator`    :class:`LMM`, the clustersim estimator
- :mod:`.structures`   random-effects structures: formulas, candidates, slope variances
- :mod:`.selection`    random-effects model selection estimators

See docs/lmm.md.
"""
from estimators.lmm.estimator import LMM
from estimators.lmm.fit import MixedFit, MixedModel

__all__ = ["LMM", "MixedFit", "MixedModel"]
