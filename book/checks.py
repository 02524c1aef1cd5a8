"""Checks every chapter uses: Monte Carlo error bars, finite differences, gradient checks.

A formula is trusted in this book once a check like these agrees with it: a Monte Carlo average
within a few standard errors of a closed form, or an analytic gradient within round-off of
central finite differences. Everything here is plain NumPy.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np


def mean_and_standard_error(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Monte Carlo average over the first axis and its standard error std / sqrt(n).

    One sample says nothing about the spread: its standard error is NaN.
    """
    samples = np.asarray(samples)
    mean = samples.mean(axis=0)
    if len(samples) < 2:
        return mean, np.full(np.shape(mean), np.nan)
    return mean, samples.std(axis=0, ddof=1) / math.sqrt(len(samples))


def central_difference(fn: Callable[[np.ndarray], float], a: np.ndarray,
                       h: float = 1e-6) -> np.ndarray:
    """The gradient of a scalar ``fn`` at ``a``: (fn(a + h e_i) - fn(a - h e_i)) / 2h.

    Its error is O(h^2) from truncation plus O(1e-16 / h) from rounding; in float64,
    h = 1e-6 keeps both near 1e-10.
    """
    grad = np.empty_like(a)
    for i in range(a.size):
        step = np.zeros_like(a)
        step.flat[i] = h
        grad.flat[i] = (fn(a + step) - fn(a - step)) / (2.0 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max_i |a_i - b_i| / max_i max(|a_i|, |b_i|): largest difference over largest entry.

    Relative to the tensor's scale rather than entry by entry: an entry whose true value
    is nearly 0 would otherwise show round-off (~1e-11) as a large ratio.
    """
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0))
    return float(np.abs(a - b).max(initial=0.0) / scale) if scale > 0 else 0.0


def numerical_gradients(loss: Callable[[], float], params: dict[str, np.ndarray],
                        h: float = 1e-5) -> dict[str, np.ndarray]:
    """d loss / d p for every array p in ``params``, by central differences.

    ``loss()`` must read the arrays of ``params`` (which are changed in place, one entry at
    a time, and restored). Two calls of ``loss`` per entry: use it on tiny models.
    """
    grads = {}
    for name, p in params.items():
        original = p.copy()

        def loss_at(value: np.ndarray, p: np.ndarray = p) -> float:
            p[...] = value
            return loss()

        grads[name] = central_difference(loss_at, original, h)
        p[...] = original
    return grads


def gradient_errors(loss: Callable[[], float], params: dict[str, np.ndarray],
                    analytic: dict[str, np.ndarray], h: float = 1e-5) -> dict[str, float]:
    """For each array in ``params``: relative error of ``analytic`` vs central differences."""
    numeric = numerical_gradients(loss, params, h)
    return {name: relative_error(analytic[name], numeric[name]) for name in analytic}
