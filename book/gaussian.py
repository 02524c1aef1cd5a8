"""Shared diagonal-Gaussian math: log-density, KL to N(0, I) and its gradient, sampling; and
the log-sum-exp that every mixture of densities needs.

Every chapter uses these functions. Each takes NumPy arrays or PyTorch tensors and answers in
the same kind, so the NumPy VAE and the PyTorch VAE use literally the same formulas. Variances
are carried as log-variances ``logvar = log sigma^2``: an encoder can output any real number
for it, and ``sigma = exp(logvar / 2)`` is then always positive.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

Array = Any  # a numpy.ndarray or a torch.Tensor

LOG_2PI = math.log(2.0 * math.pi)

# Every encoder's log sigma^2 lies in (-LOGVAR_BOUND, LOGVAR_BOUND): sigma in (0.018, 55), so
# that exp never overflows and log q never meets a zero variance. An encoder that the KL
# restrains stays well inside; one trained without it (beta = 0) can sit at the lower bound.
LOGVAR_BOUND = 8.0


def _xp(x: Array):
    """The array module of ``x``: numpy for arrays, torch for tensors (imported only then)."""
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def gaussian_log_density(x: Array, mean: Array, logvar: Array) -> Array:
    """log N(x; mean, diag(exp(logvar))), summed over the last axis."""
    xp = _xp(x)
    return -0.5 * xp.sum(LOG_2PI + logvar + (x - mean) ** 2 / xp.exp(logvar), axis=-1)


def standard_normal_log_density(z: Array) -> Array:
    """log N(z; 0, I), summed over the last axis: the prior of every VAE in the book."""
    xp = _xp(z)
    return -0.5 * xp.sum(LOG_2PI + z**2, axis=-1)


def kl_to_standard_normal(mu: Array, logvar: Array) -> Array:
    """KL( N(mu, diag sigma^2) || N(0, I) ), summed over the last axis.

    KL = 1/2 sum(sigma^2 + mu^2 - 1 - log sigma^2).
    Note sigma^2 = exp(logvar): the variance itself, not exp(sigma^2).
    """
    xp = _xp(mu)
    return 0.5 * xp.sum(xp.exp(logvar) + mu**2 - 1.0 - logvar, axis=-1)


def bounded_logvar(raw: Array) -> Array:
    """An encoder's raw output as a log-variance in (-LOGVAR_BOUND, LOGVAR_BOUND):
    ``B tanh(raw / B)``, which is ``raw`` itself for moderate values (B = LOGVAR_BOUND).

    Its derivative is 1 - (logvar / B)^2, written in terms of its own output, so a backward
    pass needs no more than the log-variance it already keeps.
    """
    return LOGVAR_BOUND * _xp(raw).tanh(raw / LOGVAR_BOUND)


def reparameterize(mu: Array, logvar: Array, eps: Array) -> Array:
    """z = mu + sigma * eps with sigma = exp(logvar / 2).

    sigma is the standard deviation, not the variance.
    """
    xp = _xp(mu)
    return mu + xp.exp(0.5 * logvar) * eps


def kl_to_standard_normal_grad(mu: Array, logvar: Array) -> tuple[Array, Array]:
    """Gradient of ``kl_to_standard_normal`` with respect to ``mu`` and ``logvar``, elementwise.

    dKL/dmu = mu and dKL/dlogvar = 1/2 (sigma^2 - 1): the KL pulls the mean to 0 and the
    variance to 1, and both gradients vanish exactly at the prior N(0, I).
    """
    xp = _xp(mu)
    return mu, 0.5 * (xp.exp(logvar) - 1.0)


# --- log-sum-exp: the numerics of every mixture of densities (IWAE, aggregate posterior,
# Bernoulli mixture) ----------------------------------------------------------------------


def log_sum_exp(a: Array, axis: int = -1) -> Array:
    """log(sum(exp(a))) along ``axis``, without overflow: shift by the maximum first."""
    xp = _xp(a)
    top = xp.amax(a, axis=axis, keepdims=True)
    # a row of -inf (all weights 0) would give -inf - (-inf) = nan: shift it by 0
    top = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
    total = xp.log(xp.sum(xp.exp(a - top), axis=axis, keepdims=True)) + top
    total = total.squeeze(axis)
    return total[()] if xp is np else total  # [()]: for a 1-D a, a scalar, not 0-d


def log_mean_exp(a: Array, axis: int = -1) -> Array:
    """log(mean(exp(a))) along ``axis``, without overflow: log_sum_exp minus log n."""
    return log_sum_exp(a, axis) - math.log(a.shape[axis])
