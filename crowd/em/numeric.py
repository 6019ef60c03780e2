"""Numeric answers: each task's value from workers with their own bias and noise, by EM."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln, ndtri

from crowd.em._base import (
    Estimator,
    FloatArray,
    IntArray,
    as_index_array,
    check_iterations,
    count,
    iterate,
    weighted_sum,
)

#: Known values: ``{task_index: value}`` or a pair of equal-length arrays ``(tasks, values)``.
NumericGold = Mapping[int, float] | tuple[ArrayLike, ArrayLike]


class NumericEM(Estimator):
    r"""Task values from numeric answers: per-worker bias and noise, Student-t errors, by EM.

    Model. Task ``j`` has a true value ``mu_j`` (flat prior). Worker ``w`` answers
    ``x = mu_j + b_w + e`` where ``b_w`` is its bias and ``e`` follows a Student-t with ``nu``
    (``dof``) degrees of freedom and scale ``sigma_w``, written as a Gaussian whose precision
    is scaled by a latent ``u ~ Gamma(nu/2, nu/2)``: an answer far off the others gets a small
    ``u`` and little weight, so a few wild answers cannot drag a value (the robustness a
    median gives, without discarding the weights of good workers). Priors:
    ``b_w ~ N(0, tau^2)`` with ``tau^2`` fitted (empirical Bayes, with an inverse-gamma prior
    worth one pseudo-worker whose bias is the pooled residual spread, so that ``tau^2`` cannot
    creep toward 0 over hundreds of iterations on a crowd without bias), which also fixes the
    location (``mu + c``, ``b - c``); ``sigma_w^2`` gets an inverse-gamma prior worth
    ``noise_strength`` pseudo-answers at the pooled residual variance of the task means, so a
    worker with few answers keeps about the crowd's noise.

    EM (expectation-conditional maximisation): the E-step sets
    ``u_i = (nu + 1) / (nu + r_i^2 / sigma_w^2)`` from the residuals ``r_i``; the M-step
    updates, in turn, ``mu_j`` (weighted mean of ``x - b``, weights ``u / sigma_w^2``),
    ``b_w`` (shrunken weighted mean of ``x - mu``), ``tau^2`` (the EM update with the biases
    integrated out) and ``sigma_w^2``. The objective, per answer, is the log-likelihood plus
    the log-priors of the noise levels and of the biases given the current ``tau^2``; EM
    stops when it changes by less than ``tol``. It starts
    from the per-task mean, no bias, and every worker at the pooled variance.

    ``values_`` are the posterior means of ``mu_j`` given the fitted worker parameters and
    ``std_`` their standard deviations (``1 / sqrt(sum_i u_i / sigma_w^2)``); ``interval_``
    is the central ``interval_mass`` credible interval from the Gaussian posterior. Gold
    tasks are held at their value (``std_`` 0) and inform the workers' bias and noise. Tasks
    with neither answers nor gold get ``nan``. With ``bounds``, values and intervals are
    clipped to the scale.

    Model in the spirit of Raykar et al., Learning from crowds, *JMLR* 11:1297-1322, 2010
    (section 3, regression with per-annotator precision), with an additive annotator bias and
    Student-t errors fitted by ECM (C. Liu and D. B. Rubin, *Statistica Sinica* 5:19-39, 1995).

    Parameters:
        dof: Student-t degrees of freedom (> 0); ``None`` for Gaussian errors (no robustness).
        bias: fit a bias per worker; ``False`` holds every bias at 0.
        noise_strength: pseudo-answers of the inverse-gamma prior on each worker's variance.
        interval_mass: probability inside ``interval_`` (0 < mass < 1).
        bounds: ``(low, high)`` of the scale, or ``None``.
        max_iter, tol: EM iteration limit and stopping threshold on the objective change.
        callback: called as ``callback(iteration, objective)`` after every iteration.
    """

    values_: FloatArray
    std_: FloatArray
    interval_: FloatArray
    bias_: FloatArray
    noise_: FloatArray
    bias_scale_: float
    weights_: FloatArray
    n_iter_: int
    converged_: bool
    objective_history_: list[float]

    def __init__(
        self,
        *,
        dof: float | None = 10.0,
        bias: bool = True,
        noise_strength: float = 50.0,
        interval_mass: float = 0.9,
        bounds: tuple[float, float] | None = None,
        max_iter: int = 200,
        tol: float = 1e-6,
        callback: Callable[[int, float], None] | None = None,
    ) -> None:
        self.dof = dof
        self.bias = bias
        self.noise_strength = noise_strength
        self.interval_mass = interval_mass
        self.bounds = bounds
        self.max_iter = max_iter
        self.tol = tol
        self.callback = callback

    def _check_params(self) -> None:
        if self.dof is not None and not self.dof > 0:
            raise ValueError(f"dof must be > 0 or None, got {self.dof!r}")
        if not self.noise_strength >= 0:
            raise ValueError(f"noise_strength must be >= 0, got {self.noise_strength!r}")
        if not 0 < self.interval_mass < 1:
            raise ValueError(f"interval_mass must be in (0, 1), got {self.interval_mass!r}")
        if self.bounds is not None and not self.bounds[0] <= self.bounds[1]:
            raise ValueError(f"bounds must be (low, high) with low <= high, got {self.bounds!r}")
        check_iterations(self.max_iter, self.tol)

    def fit(
        self,
        tasks: ArrayLike,
        workers: ArrayLike,
        values: ArrayLike,
        *,
        n_tasks: int | None = None,
        n_workers: int | None = None,
        gold: NumericGold | None = None,
    ) -> Self:
        """Fit by EM on answers ``(tasks[i], workers[i], values[i])``; returns ``self``.

        Args:
            tasks, workers: ``(n_answers,)`` non-negative int indices.
            values: ``(n_answers,)`` finite numbers.
            n_tasks, n_workers: sizes; default to the largest index plus one.
            gold: ``{task: value}`` or ``(task_indices, values)``; those tasks are held at
                their value.
        """
        self._check_params()
        t = as_index_array(tasks, "tasks")
        w = as_index_array(workers, "workers")
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        if not t.shape == w.shape == x.shape:
            raise ValueError(
                f"tasks, workers and values must have equal length, got {t.size}, {w.size}, "
                f"{x.size}"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError("values must be finite numbers")
        gold_tasks, gold_values = _parse_gold(gold)
        n = count(n_tasks, np.concatenate([t, gold_tasks]), "n_tasks")
        n_w = count(n_workers, w, "n_workers")
        nu = self.dof
        per_answer = 1.0 / max(x.size, 1)
        answers_of_task = np.bincount(t, minlength=n).astype(np.float64)
        answers_of_worker = np.bincount(w, minlength=n_w).astype(np.float64)
        is_gold = np.zeros(n, dtype=bool)
        is_gold[gold_tasks] = True

        def task_means(weights: FloatArray, offset: FloatArray) -> tuple[FloatArray, FloatArray]:
            precision = weighted_sum(t, weights, n)
            total = weighted_sum(t, weights * (x - offset), n)
            with np.errstate(invalid="ignore", divide="ignore"):
                mu = total / precision
            mu[gold_tasks] = gold_values
            return mu, precision

        mu, _ = task_means(np.ones_like(x), np.zeros_like(x))
        residual = x - mu[t]
        pooled = float(np.mean(residual**2)) if x.size else 1.0
        pooled = max(pooled, 1e-12)
        noise = np.full(n_w, pooled)
        bias = np.zeros(n_w)
        tau2 = pooled
        u = np.ones_like(x)

        def objective() -> float:
            r = x - mu[t] - bias[w]
            s2 = noise[w]
            if nu is None:
                log_lik = -0.5 * (np.log(2 * np.pi * s2) + r * r / s2)
            else:
                log_lik = (
                    gammaln((nu + 1) / 2)
                    - gammaln(nu / 2)
                    - 0.5 * np.log(nu * np.pi * s2)
                    - (nu + 1) / 2 * np.log1p(r * r / (nu * s2))
                )
            k = self.noise_strength
            log_prior = -(k / 2 + 1) * np.log(noise).sum() - k * pooled / 2 * (1 / noise).sum()
            if self.bias:
                log_prior -= 0.5 * bias @ bias / tau2
            return float((log_lik.sum() + log_prior) * per_answer)

        def step() -> float:
            nonlocal u, mu, bias, tau2, noise
            # E-step: precision weight of every answer.
            r = x - mu[t] - bias[w]
            if nu is not None:
                u = (nu + 1) / (nu + r * r / noise[w])
            # Conditional M-steps: values, biases (and their scale), noise.
            weights = u / noise[w]
            mu, _ = task_means(weights, bias[w])
            if self.bias and n_w:
                total = weighted_sum(w, weights * (x - mu[t]), n_w)
                precision = weighted_sum(w, weights, n_w)
                bias = total / (precision + 1.0 / tau2)
                spread = float(np.sum(bias**2 + 1.0 / (precision + 1.0 / tau2)))
                tau2 = (spread + pooled) / (n_w + 3)
            r = x - mu[t] - bias[w]
            noise = (weighted_sum(w, u * r * r, n_w) + self.noise_strength * pooled) / (
                answers_of_worker + self.noise_strength + 2
            )
            noise = np.maximum(noise, 1e-12 * pooled)
            return objective()

        history, converged = iterate(
            step,
            name=type(self).__name__,
            max_iter=self.max_iter,
            tol=self.tol,
            callback=self.callback,
        )

        r = x - mu[t] - bias[w]
        if nu is not None:
            u = (nu + 1) / (nu + r * r / noise[w])
        mu, precision = task_means(u / noise[w], bias[w])
        with np.errstate(divide="ignore"):
            std = 1.0 / np.sqrt(precision)
        std[is_gold] = 0.0
        unseen = (answers_of_task == 0) & ~is_gold
        mu[unseen] = np.nan
        std[unseen] = np.nan
        half = ndtri(0.5 + self.interval_mass / 2) * std
        interval = np.stack([mu - half, mu + half], axis=1)
        if self.bounds is not None:
            mu = np.clip(mu, *self.bounds)
            interval = np.clip(interval, *self.bounds)
        self.values_ = mu
        self.std_ = std
        self.interval_ = interval
        self.bias_ = bias
        self.noise_ = np.sqrt(noise)
        self.bias_scale_ = float(np.sqrt(tau2)) if self.bias else 0.0
        self.weights_ = u
        self.n_iter_ = len(history)
        self.converged_ = converged
        self.objective_history_ = history
        return self

    def fit_predict(
        self,
        tasks: ArrayLike,
        workers: ArrayLike,
        values: ArrayLike,
        *,
        n_tasks: int | None = None,
        n_workers: int | None = None,
        gold: NumericGold | None = None,
    ) -> FloatArray:
        """Fit, then return ``values_``: shape ``(n_tasks,)``."""
        self.fit(tasks, workers, values, n_tasks=n_tasks, n_workers=n_workers, gold=gold)
        return self.values_


def _parse_gold(gold: NumericGold | None) -> tuple[IntArray, FloatArray]:
    """Gold as ``(task indices, values)``; a task given twice must have one value."""
    if gold is None:
        return np.zeros(0, dtype=np.intp), np.zeros(0)
    if isinstance(gold, Mapping):
        tasks = as_index_array(np.fromiter(gold.keys(), dtype=np.int64, count=len(gold)), "gold")
        values = np.fromiter(gold.values(), dtype=np.float64, count=len(gold))
    else:
        tasks = as_index_array(gold[0], "gold tasks")
        values = np.asarray(gold[1], dtype=np.float64).reshape(-1)
    if tasks.shape != values.shape:
        raise ValueError("gold tasks and gold values must have equal length")
    if not np.all(np.isfinite(values)):
        raise ValueError("gold values must be finite numbers")
    unique, first, inverse = np.unique(tasks, return_index=True, return_inverse=True)
    if np.any(values != values[first][inverse]):
        raise ValueError("a gold task is given two different values")
    return unique, values[first]
