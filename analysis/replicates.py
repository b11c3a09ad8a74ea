"""Which replicates count: the per-replicate quantities of a results dataset, masked for the
measures.

A replicate is *valid* for an estimator and term when its status is ``ok`` or ``singular``
(:data:`VALID_STATUSES`) and its estimate is finite; every other status (``not_converged``,
``failed``, ``not_estimable``, ``timeout``, and any code added later) is a failure. The
measures without a suffix use the valid replicates that have the quantity they need (``n`` is
counted per measure: coverage needs both interval limits, rejection a p-value). The ``_all``
measures count every one of the N replicates and score a failure (or a valid fit with no
interval or p-value) as a non-cover or a non-rejection: the honest error rate of "fit it and
report what comes out". ``failure_rate`` sits beside both. Bias, SEs and the other measures of
a distribution of estimates have no sensible value for a failed fit and exist only over valid
replicates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from estimators.result import Status

VALID_STATUSES = (Status.ok, Status.singular)
VALID_CODES = tuple(int(s) for s in VALID_STATUSES)  # as stored in a dataset's ``status``


def valid_fits(status: xr.DataArray) -> xr.DataArray:
    """Fits whose status counts: ok or singular."""
    return status.isin(VALID_CODES)


def valid_mask(ds: xr.Dataset) -> xr.DataArray:
    """Replicates whose fit counts: status ok or singular, with a finite estimate."""
    return valid_fits(ds["status"]) & np.isfinite(ds["estimate"])


@dataclass(frozen=True)
class Replicates:
    """The per-replicate quantities of a results dataset, masked for the measures.

    Arrays over (grid..., estimator, rep, term) are NaN where the replicate is not valid
    (see the module docstring); the boolean masks say which replicates each kind of measure
    can use. ``reference`` names the estimator ``relprec`` compares with. Building one is lazy:
    nothing is computed until a measure is.
    """

    estimate: xr.DataArray
    std_error: xr.DataArray
    lower: xr.DataArray
    upper: xr.DataArray
    p_value: xr.DataArray
    truth: xr.DataArray
    valid: xr.DataArray  # status ok/singular and a finite estimate
    se_usable: xr.DataArray
    ci_usable: xr.DataArray
    p_usable: xr.DataArray
    reference: str | None = None

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, reference: str | None = None) -> "Replicates":
        valid = valid_mask(ds)
        se_usable = valid & np.isfinite(ds["std_error"])
        ci_usable = valid & np.isfinite(ds["ci_lower"]) & np.isfinite(ds["ci_upper"])
        p_usable = valid & np.isfinite(ds["p_value"])
        return cls(
            estimate=ds["estimate"].where(valid),
            std_error=ds["std_error"].where(se_usable),
            lower=ds["ci_lower"].where(ci_usable),
            upper=ds["ci_upper"].where(ci_usable),
            p_value=ds["p_value"].where(p_usable),
            truth=ds["truth"],
            valid=valid,
            se_usable=se_usable,
            ci_usable=ci_usable,
            p_usable=p_usable,
            reference=reference,
        )

    def reference_name(self) -> str:
        """The reference estimator; ValueError when there is none."""
        if self.reference is None:
            raise ValueError("relprec needs a reference estimator")
        return self.reference


def require_estimator(ds: xr.Dataset, name: str, role: str) -> str:
    """``name`` when the results hold that estimator; else ValueError naming ``role`` (the
    argument it came in) and the estimators there are."""
    names = [str(e) for e in ds["estimator"].values]
    if name not in names:
        raise ValueError(f"{role}: no estimator {name!r} in the results (estimators: {', '.join(names)})")
    return name
