"""Results datasets for the analysis tests, built in milliseconds without fitting anything:
synthetic studies that follow the schema with known sampling distributions, and a small
hand-made dataset whose measures the tests compute directly."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import xarray as xr
import yaml
from scipy import stats

from estimators.result import Status
from sims.run.dataset import write_results

# estimator -> (bias, SD of the estimate, model SE / SD, share of failed fits)
DEFAULT_ESTIMATORS = {
    "good": (0.0, 1.0, 1.0, 0.0),
    "narrow": (0.0, 1.0, 0.6, 0.0),
    "flaky": (0.1, 1.2, 1.0, 0.1),
}


def synthetic_dataset(seed: int = 1, n_reps: int = 200, grid: dict | None = None, estimators: dict | None = None,
                      truth: dict | None = None, correlation: float = 0.8, alpha: float = 0.05) -> xr.Dataset:
    """A results dataset whose estimators share a common noise component (correlation
    ``correlation`` between any two estimators' estimates), with normal Wald intervals."""
    grid = dict(grid or {})
    estimators = dict(estimators or DEFAULT_ESTIMATORS)
    truth = dict(truth or {"Intercept": 10.0, "X": 0.0})
    rng = np.random.default_rng(seed)
    grid_shape = [len(v) for v in grid.values()]
    n_cells = int(np.prod(grid_shape)) if grid else 1
    n_est, n_terms = len(estimators), len(truth)
    theta = np.array(list(truth.values()))
    common = rng.standard_normal((n_cells, 1, n_reps, n_terms))
    own = rng.standard_normal((n_cells, n_est, n_reps, n_terms))
    noise = correlation**0.5 * common + (1 - correlation) ** 0.5 * own
    params = np.array(list(estimators.values()))
    bias, sd, se_ratio, fail = (params[:, k][None, :, None, None] for k in range(4))
    estimate = theta + bias + sd * noise
    std_error = sd * se_ratio * np.exp(0.1 * rng.standard_normal(estimate.shape))
    z = stats.norm.ppf(1 - alpha / 2)
    lower, upper = estimate - z * std_error, estimate + z * std_error
    p_value = 2 * stats.norm.sf(np.abs(estimate / std_error))
    status = np.where(rng.uniform(size=(n_cells, n_est, n_reps)) < fail[..., 0], int(Status.failed),
                      int(Status.ok)).astype(np.int8)
    failed = (status != int(Status.ok))[..., None]
    values = {}
    for name, array in (("estimate", estimate), ("std_error", std_error), ("ci_lower", lower), ("ci_upper", upper),
                        ("p_value", p_value)):
        values[name] = np.where(failed, np.nan, array)
    values["df"] = np.where(failed, np.nan, np.full(estimate.shape, np.inf))

    dims = list(grid)
    def shaped(array):
        return array.reshape(grid_shape + list(array.shape[1:]))

    data_vars = {name: (dims + ["estimator", "rep", "term"], shaped(array)) for name, array in values.items()}
    data_vars["status"] = (dims + ["estimator", "rep"], shaped(status))
    data_vars["elapsed_s"] = (dims + ["estimator", "rep"], shaped(np.full(status.shape, 1e-3)))
    data_vars["truth"] = (dims + ["term"], shaped(np.broadcast_to(theta, (n_cells, n_terms)).copy()))
    coords = {dim: np.array(v) for dim, v in grid.items()}
    coords.update(estimator=np.array(list(estimators), dtype=object), rep=np.arange(n_reps),
                  term=np.array(list(truth), dtype=object))
    config = {"n_reps": n_reps, "seed": seed, "alpha": alpha,
              "estimators": {name: {"_target_": "synthetic", "alpha": alpha} for name in estimators}}
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(config=yaml.safe_dump(config), seed=seed, n_reps=n_reps, alpha=alpha,
                    grid_keys=" ".join(f"{d}=dgp.{d}" for d in grid))
    return ds


def write_run(ds: xr.Dataset, run_dir: Path) -> Path:
    """Store ``ds`` as ``run_dir/results.zarr`` with its checksum, as ``clustersim-collect``
    does; returns ``run_dir``."""
    write_results(ds, run_dir)
    return Path(run_dir)


def cells_of(grid: dict) -> list[dict]:
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


TRUTH = 2.0
ALPHA = 0.05


def hand_made() -> tuple[xr.Dataset, dict]:
    """Two estimators x 12 replicates x one term; estimator b fails on two replicates and does
    not converge on one; estimator a has one replicate without a CI."""
    rng = np.random.default_rng(11)
    estimate = TRUTH + rng.normal(0.3, 1.0, size=(2, 12))
    std_error = rng.uniform(0.5, 1.5, size=(2, 12))
    ci_lower, ci_upper = estimate - 1.96 * std_error, estimate + 1.96 * std_error
    p_value = rng.uniform(0, 0.2, size=(2, 12))
    status = np.zeros((2, 12), dtype=np.int8)
    status[1, [2, 7]] = Status.failed
    status[1, 9] = Status.not_converged
    status[1, 4] = Status.singular  # singular fits count as valid
    estimate[1, [2, 7]] = np.nan
    ci_lower[0, 5] = np.nan
    dims = ("estimator", "rep", "term")
    ds = xr.Dataset(
        {
            "estimate": (dims, estimate[..., None]),
            "std_error": (dims, std_error[..., None]),
            "df": (dims, np.full((2, 12, 1), np.inf)),
            "ci_lower": (dims, ci_lower[..., None]),
            "ci_upper": (dims, ci_upper[..., None]),
            "p_value": (dims, p_value[..., None]),
            "status": (("estimator", "rep"), status),
            "elapsed_s": (("estimator", "rep"), np.zeros((2, 12))),
            "truth": (("term",), [TRUTH]),
        },
        coords={"estimator": ["a", "b"], "rep": np.arange(12), "term": ["X"]},
        attrs={"alpha": ALPHA},
    )
    raw = dict(estimate=estimate, std_error=std_error, lo=ci_lower, hi=ci_upper, p=p_value, status=status)
    return ds, raw
