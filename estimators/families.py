"""Exponential families and link functions of generalised linear models (McCullagh & Nelder
1989, ch. 2 and 4), shared by the GLM and GEE estimators and by the DGPs that simulate from them.

A link g maps the mean to the linear predictor, eta = g(mu); each link here gives its inverse
mu = g^{-1}(eta) and d mu / d eta:

- ``logit``:  mu = 1 / (1 + exp(-eta)),   d mu/d eta = mu (1 - mu);
- ``probit``: mu = Phi(eta),              d mu/d eta = phi(eta) (standard normal cdf and density);
- ``log``:    mu = exp(eta),              d mu/d eta = mu.

A family gives the variance function V(mu) (Var y = phi V(mu)) and the responses it accepts:

- ``binomial``: V = mu (1 - mu), y in {0, 1}; links logit (canonical) and probit;
- ``poisson``:  V = mu, y a count 0, 1, 2, ...; link log (canonical).
"""
from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from scipy import special

from estimators.params import require, require_one_of

FamilyName = Literal["binomial", "poisson"]
FAMILIES = get_args(FamilyName)
LinkName = Literal["logit", "probit", "log"]
LINKS = get_args(LinkName)
LINKS_OF_FAMILY = {"binomial": ("logit", "probit"), "poisson": ("log",)}  # the first is the canonical link
# Means are kept this far inside (0, 1) or above 0 so that V(mu) and the weights stay finite.
MEAN_EPSILON = 1e-10


def require_family_and_link(family: str, link: str, family_key: str = "family", link_key: str = "link") -> None:
    """``family`` is known and ``link`` is one of its links (InvalidParameter naming the key)."""
    require_one_of(family, family_key, FAMILIES)
    require(link in LINKS_OF_FAMILY[family], link_key,
            f"must be one of {', '.join(LINKS_OF_FAMILY[family])} for family {family!r}, got {link!r}")


def link_or_canonical(family: str, link: str | None) -> str:
    """``link``, or the family's canonical link when it is None."""
    return LINKS_OF_FAMILY[family][0] if link is None else link


def inverse_link(link: str, eta: np.ndarray) -> np.ndarray:
    """mu = g^{-1}(eta)."""
    if link == "logit":
        return special.expit(eta)
    if link == "probit":
        return special.ndtr(eta)
    return np.exp(eta)


def mean_derivative(link: str, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """d mu / d eta at eta (mu = g^{-1}(eta))."""
    if link == "logit":
        return mu * (1.0 - mu)
    if link == "probit":
        return np.exp(-0.5 * eta**2) / np.sqrt(2.0 * np.pi)
    return mu


def link_function(link: str, mu: np.ndarray) -> np.ndarray:
    """eta = g(mu)."""
    if link == "logit":
        return special.logit(mu)
    if link == "probit":
        return special.ndtri(mu)
    return np.log(mu)


def variance_function(family: str, mu: np.ndarray) -> np.ndarray:
    """V(mu): mu (1 - mu) for binomial, mu for poisson."""
    return mu * (1.0 - mu) if family == "binomial" else mu


def clip_mean(family: str, mu: np.ndarray) -> np.ndarray:
    """mu kept MEAN_EPSILON inside the family's range (fitted probabilities of 0 or 1)."""
    upper = 1.0 - MEAN_EPSILON if family == "binomial" else np.inf
    return np.clip(mu, MEAN_EPSILON, upper)


def starting_mean(family: str, Y: np.ndarray, M: np.ndarray | float = 1.0) -> np.ndarray:
    """R's ``family()$initialize``: mu = (m y + 0.5) / (m + 1) for a binomial proportion y of m
    trials ((y + 0.5) / 2 for a binary y), y + 0.1 for a count."""
    return (M * Y + 0.5) / (M + 1.0) if family == "binomial" else Y + 0.1


def response_problem(family: str, Y: np.ndarray) -> str | None:
    """Why ``Y`` is not a response of ``family`` (binomial: other values than 0 and 1; poisson:
    negative or non-integer values), or None when it is."""
    if family == "binomial":
        bad = (Y != 0.0) & (Y != 1.0)
        return (f"has values other than 0 and 1 (e.g. {Y[bad][0]:g}), not a binary response for family 'binomial' "
                "(k of n trials: cbind(successes, failures) ~ ...)") if bad.any() else None
    bad = (Y < 0.0) | (Y != np.floor(Y))
    return f"has negative or non-integer values (e.g. {Y[bad][0]:g}), not counts for family 'poisson'" \
        if bad.any() else None
