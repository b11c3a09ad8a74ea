"""Quasi-Newton minimisation of many smooth functions at once, one per batch row.

Each row runs its own BFGS iteration with an Armijo backtracking line search (Nocedal & Wright
2006, algorithms 6.1 and 3.1); the rows advance in lockstep so that every round evaluates all
pending trial points in one vectorised call. That is what makes a chunk of Monte Carlo
replicates cheap: the per-call overhead of numpy is paid once per round, not once per
replicate and evaluation.

Unconstrained on purpose: the profiled criterion is smooth in theta everywhere and even in the
sign of each column of the relative factors, so the minimiser needs no bounds (lme4 bounds the
diagonal at 0 and calls BOBYQA; here :meth:`.theta.ThetaLayout.rectify` flips the signs after
the fit).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Objective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

# np.max without its Python-level wrapper (the same reduction, NaN propagating).
_largest = np.maximum.reduce


@dataclass
class BatchMinimum:
    """Per row: minimiser, value, gradient, inverse-Hessian approximation, convergence flag,
    iterations and evaluations."""

    x: np.ndarray
    f: np.ndarray
    g: np.ndarray
    H: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    evaluations: np.ndarray


def minimize_batch(
    objective: Objective,
    x0: np.ndarray,
    H0: np.ndarray | None = None,
    H0_exact: np.ndarray | None = None,
    *,
    gtol: float = 1e-7,
    ftol: float = 1e-13,
    max_iter: int = 200,
    max_step: float = 1.0,
    max_backtracks: int = 12,
    start: tuple[np.ndarray, np.ndarray] | None = None,
    first_step: float | None = None,
) -> BatchMinimum:
    """Minimise ``objective`` row by row from ``x0`` (R, m).

    ``H0`` (m, m) or (R, m, m), if given, starts the inverse-Hessian approximation (e.g. from
    :func:`inverse_hessian_fd`); otherwise it starts at the identity, rescaled after the first
    step. ``H0_exact`` (R,) marks the rows whose H0 needs no such rescaling.

    ``objective(x, rows)`` returns values (b,) and gradients (b, m) at the points ``x`` (b, m)
    of rows ``rows``. A row has converged when its largest gradient component is below
    ``gtol * max(1, |f|) ** 0.5``, when a full BFGS step lowers f by less than
    ``ftol * max(1, |f|)``, or when the next step is predicted to (the Newton decrement
    -g'd / 2 with d = -H g). Trial steps are capped at ``max_step`` in the max norm times
    max(1, |x|), so a poor curvature estimate cannot throw theta far away. A line search that
    fails ``max_backtracks`` times restarts from the gradient once, then stops the row
    (converged if its gradient is within 1000 * gtol: the criterion's rounding floor).
    ``start``, if given, is (values, gradients) at ``x0`` already evaluated (e.g. with the
    finite-difference Hessian, :func:`inverse_hessian_fd` with ``centre``). ``first_step``, if
    given, caps the first trial step instead of ``max_step`` (a gradient step from the identity
    knows nothing of the curvature; a step of the right size saves its backtracking).
    """
    x = np.array(x0, dtype=float, copy=True)
    R, m = x.shape
    f, g = objective(x, np.arange(R)) if start is None else (np.array(start[0], dtype=float), np.array(start[1], dtype=float))
    f = np.where(np.isfinite(f), f, np.inf)
    evaluations = np.ones(R, dtype=int)
    iterations = np.zeros(R, dtype=int)
    H = np.broadcast_to(np.eye(m) if H0 is None else H0, (R, m, m)).copy()
    # H rescaled from the first curvature pair yet (or given as a real curvature)?
    scaled = np.zeros(R, dtype=bool) if H0 is None else np.broadcast_to(True if H0_exact is None else H0_exact, R).copy()
    backtracks = np.zeros(R, dtype=int)
    converged = _gradient_small(g, f, gtol)
    active = ~converged & np.isfinite(f)

    direction = -_matvec(H, g)
    step = _initial_step(direction, x, max_step if first_step is None else first_step)

    while active.any():
        rows = np.flatnonzero(active)
        trial = x[rows] + step[rows, None] * direction[rows]
        f_new, g_new = objective(trial, rows)
        evaluations[rows] += 1
        slope = _dot(g[rows], direction[rows])
        accept = np.isfinite(f_new) & (f_new <= f[rows] + 1e-4 * step[rows] * slope)

        # Rejected: shrink the step (safeguarded quadratic interpolation).
        rejected = rows[~accept]
        if rejected.size:
            t = step[rejected]
            fr = f_new[~accept]
            denominator = 2.0 * (fr - f[rejected] - t * slope[~accept])
            with np.errstate(divide="ignore", invalid="ignore"):
                t_quad = -slope[~accept] * t**2 / denominator
            t_new = np.where(np.isfinite(t_quad), np.clip(t_quad, 0.1 * t, 0.5 * t), 0.5 * t)
            step[rejected] = t_new
            backtracks[rejected] += 1
            tiny = backtracks[rejected] > max_backtracks
            if tiny.any():
                stuck = rejected[tiny]
                # A failed search from a quasi-Newton direction: retry along the gradient once.
                retry = stuck[~np.all(H[stuck] == np.eye(m), axis=(1, 2))]
                H[retry] = np.eye(m)
                scaled[retry] = False
                direction[retry] = -g[retry]
                step[retry] = _initial_step(direction[retry], x[retry], max_step)
                backtracks[retry] = 0
                done = np.setdiff1d(stuck, retry)
                active[done] = False
                converged[done] = _gradient_small(g[done], f[done], 1e3 * gtol)

        # Accepted: BFGS update of the inverse Hessian, test, next direction.
        accepted = rows[accept]
        if accepted.size:
            s = trial[accept] - x[accepted]
            y = g_new[accept] - g[accepted]
            decrease = f[accepted] - f_new[accept]
            x[accepted] = trial[accept]
            f[accepted] = f_new[accept]
            g[accepted] = g_new[accept]
            iterations[accepted] += 1
            backtracks[accepted] = 0
            sy = _dot(s, y)
            update = sy > 1e-12 * np.sqrt(_dot(s, s) * _dot(y, y))
            first = update & ~scaled[accepted]
            if first.any():
                yy = _dot(y[first], y[first])
                H[accepted[first]] = (sy[first] / yy)[:, None, None] * np.eye(m)
                scaled[accepted[first]] = True
            if update.any():
                H[accepted[update]] = _bfgs_update(H[accepted[update]], s[update], y[update], sy[update])
            full_step = step[accepted] == 1.0
            flat = full_step & (decrease <= ftol * np.maximum(1.0, np.abs(f[accepted])))
            small = _gradient_small(g[accepted], f[accepted], gtol)
            done = small | flat
            converged[accepted[done]] = True
            exhausted = iterations[accepted] >= max_iter
            active[accepted[done | exhausted]] = False
            going = accepted[~(done | exhausted)]
            d = -_matvec(H[going], g[going])
            ascent = _dot(d, g[going]) >= 0
            if ascent.any():  # lost positive definiteness: restart from the gradient
                H[going[ascent]] = np.eye(m)
                scaled[going[ascent]] = False
                d[ascent] = -g[going[ascent]]
            # Newton decrement: the quadratic model predicts a decrease below f's resolution.
            predicted = -0.5 * _dot(d, g[going])
            resolved = ~ascent & (predicted <= ftol * np.maximum(1.0, np.abs(f[going])))
            converged[going[resolved]] = True
            active[going[resolved]] = False
            direction[going] = d
            step[going] = _initial_step(d, x[going], max_step)
    return BatchMinimum(x, f, g, H, converged, iterations, evaluations)


# lme4's post-fit gradient check (``lmerControl(check.conv.grad = .makeCC("warning", tol = 2e-3))``).
LME4_GRADIENT_TOLERANCE = 2e-3


def passes_lme4_gradient_check(g: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    """Per row, lme4's gradient verdict (``checkConv``, check.conv.grad): with the gradient g of
    the deviance and its (symmetric) Hessian H = U'U (Cholesky, U upper triangular), the scaled gradient is
    U^{-1} g (lme4's ``solve(chol(Hessian), gradient)``), and the fit passes when
    max_i min(|(U^{-1} g)_i|, |g_i|) < 0.002. A Hessian that is not positive definite fails (lme4:
    "unable to evaluate scaled gradient"). Where the criterion is flat in theta (a large variance
    ratio) a tiny gradient passes although the optimiser stopped on its iteration limit."""
    values = np.linalg.eigvalsh(hessian)
    positive = np.all(np.isfinite(values), axis=-1) & (values[..., 0] > 0)
    m = g.shape[-1]
    lower = np.linalg.cholesky(np.where(positive[:, None, None], hessian, np.eye(m)))
    scaled = np.linalg.solve(np.swapaxes(lower, -1, -2), g[..., None])[..., 0]
    return positive & (np.max(np.minimum(np.abs(scaled), np.abs(g)), axis=-1) < LME4_GRADIENT_TOLERANCE)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products, summed in a fixed order (so a row's result is the same in any batch)."""
    out = a[:, 0] * b[:, 0]
    for i in range(1, a.shape[1]):
        out = out + a[:, i] * b[:, i]
    return out


def _matvec(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Row-wise H g for H (b, m, m), g (b, m), in a fixed order."""
    out = H[:, :, 0] * g[:, 0:1]
    for j in range(1, g.shape[1]):
        out = out + H[:, :, j] * g[:, j:j + 1]
    return out


def _gradient_small(g: np.ndarray, f: np.ndarray, gtol: float) -> np.ndarray:
    return _largest(np.abs(g), axis=-1) <= gtol * np.sqrt(np.maximum(1.0, np.abs(f)))


def _initial_step(direction: np.ndarray, x: np.ndarray, max_step: float) -> np.ndarray:
    """1, or less so that no component of the step exceeds max_step * max(1, |x|_max)."""
    size = _largest(np.abs(direction), axis=-1)
    cap = max_step * np.maximum(1.0, _largest(np.abs(x), axis=-1))
    with np.errstate(divide="ignore"):
        return np.where(size > cap, cap / size, 1.0)


def _bfgs_update(H: np.ndarray, s: np.ndarray, y: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """H+ = (I - rho s y') H (I - rho y s') + rho s s', rho = 1 / (y's) (Nocedal & Wright eq. 6.17)."""
    rho = 1.0 / sy
    m = H.shape[-1]
    V = np.eye(m) - rho[:, None, None] * s[:, :, None] * y[:, None, :]
    return V @ H @ V.swapaxes(-1, -2) + rho[:, None, None] * s[:, :, None] * s[:, None, :]


def hessian_fd(objective: Objective, x: np.ndarray, rows: np.ndarray | None = None, step: float = 1e-4,
               centre: bool = False, central: bool = True):
    """Hessians (R, m, m) at the rows ``rows`` (default: all) of the objective, at the points
    ``x`` (R, m), from central differences of the gradient (forward differences from x with
    ``central=False``, which evaluates x itself), all perturbed points of all rows in one call,
    symmetrised. With ``centre`` (implied by forward differences), the call also evaluates
    ``x`` itself, and (hessians, (values, gradients) at x) is returned."""
    R, m = x.shape
    rows = np.arange(R) if rows is None else rows
    centre = centre or not central
    offsets = step * np.eye(m)
    points = [x] if centre else []
    points += [x + offsets[i] for i in range(m)]
    if central:
        points += [x - offsets[i] for i in range(m)]
    f, g = objective(np.concatenate(points), np.tile(rows, len(points)))
    at_x = (f[:R], g[:R]) if centre else None
    g = g[R * centre:].reshape(-1, m, R, m)
    lower = g[1] if central else at_x[1][None]
    hessian = np.swapaxes(g[0] - lower, 0, 1) / ((2.0 if central else 1.0) * step)  # (R, i, j)
    hessian = 0.5 * (hessian + np.swapaxes(hessian, -1, -2))
    return (hessian, at_x) if centre else hessian


def inverse_hessian_fd(objective: Objective, x: np.ndarray, step: float = 1e-4, centre: bool = False):
    """Inverse Hessians (R, m, m) at the rows of ``x`` (:func:`hessian_fd`), and a mask of the
    rows where the Hessian is positive definite (elsewhere the identity is returned); with
    ``centre`` also the values and gradients at ``x``, from the same call."""
    m = x.shape[1]
    hessian = hessian_fd(objective, x, step=step, centre=centre)
    if centre:
        hessian, at_x = hessian
    values, vectors = np.linalg.eigh(hessian)
    positive = np.all(np.isfinite(values), axis=1) & (values[:, 0] > 1e-10 * np.abs(values[:, -1]))
    safe = np.where(positive[:, None], values, 1.0)
    inverse = (vectors / safe[:, None, :]) @ np.swapaxes(vectors, -1, -2)
    inverse = np.where(positive[:, None, None], inverse, np.eye(m))
    return (inverse, positive, at_x) if centre else (inverse, positive)
