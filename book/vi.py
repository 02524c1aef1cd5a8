"""Variational inference where every quantity is exact: a linear-Gaussian model; two gradient
estimators.

The model is a VAE whose decoder is linear::

    z ~ N(0, I_d),    x | z ~ N(W z + b, s^2 I_D).

A linear map of Gaussians is Gaussian, so log p(x) and the posterior p(z | x) have closed forms,
and so does the ELBO of any Gaussian q(z) = N(m, Sigma_q). The chapter uses it to check, to
float64 precision, that ELBO <= log p(x), with equality at the posterior and
gap = KL(q || p(z | x)).

q has a *full* covariance Sigma_q here: for a general W the posterior is correlated, and only a
full-covariance q can reach it. The diagonal q a VAE's encoder outputs is the special case
Sigma_q = diag(exp(logvar)); ``LinearGaussianModel.mean_field_posterior`` is the best one, and
its gap is what a diagonal q costs.

The rest holds the Monte Carlo helpers of the chapter's checks (the generic ones are in
``book.checks``), and the two
estimators of d/d(mu, logvar) E_q[f(z)] for a diagonal q: the reparameterization (pathwise)
estimator and the score-function (REINFORCE) estimator.
Everything is NumPy float64: the identities are checked to 1e-10, which float32 could not
resolve.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from book.gaussian import (LOG_2PI, gaussian_log_density, reparameterize,
                           standard_normal_log_density)


# --- Full-covariance Gaussians ----------------------------------------------------------------

def mvn_log_density(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log N(x; mean, cov) for a full covariance, over the last axis of ``x``.

    With cov = C C^T (C its Cholesky factor), the quadratic form is |C^-1 (x - mean)|^2 and
    log det cov = 2 sum log diag C: no inverse or determinant is ever formed.
    """
    k = mean.shape[-1]
    chol = np.linalg.cholesky(cov)
    residual = np.atleast_2d(x - mean).reshape(-1, k)
    white = np.linalg.solve(chol, residual.T).T
    log_det = 2.0 * np.sum(np.log(np.diag(chol)))
    log_density = -0.5 * (k * LOG_2PI + log_det + np.sum(white**2, axis=-1))
    return log_density.reshape(np.shape(x)[:-1])


def gaussian_kl(mean0: np.ndarray, cov0: np.ndarray, mean1: np.ndarray,
                cov1: np.ndarray) -> float:
    """KL( N(mean0, cov0) || N(mean1, cov1) ) for full covariances.

    = 1/2 [ tr(cov1^-1 cov0) + (mean1 - mean0)^T cov1^-1 (mean1 - mean0) - k
            + log det cov1 - log det cov0 ].
    With mean1 = 0, cov1 = I and a diagonal cov0 it is ``kl_to_standard_normal``.
    """
    k = mean0.shape[-1]
    chol0, chol1 = np.linalg.cholesky(cov0), np.linalg.cholesky(cov1)
    trace = np.sum(np.linalg.solve(chol1, chol0) ** 2)  # tr(cov1^-1 cov0) = |C1^-1 C0|_F^2
    mahalanobis = np.sum(np.linalg.solve(chol1, mean1 - mean0) ** 2)
    log_det_ratio = 2.0 * np.sum(np.log(np.diag(chol1)) - np.log(np.diag(chol0)))
    return 0.5 * (trace + mahalanobis - k + log_det_ratio)


def sample_mvn(mean: np.ndarray, cov: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """z = mean + C eps, cov = C C^T (Cholesky): the reparameterization for a full covariance.

    One row of z per row of eps.
    """
    return mean + eps @ np.linalg.cholesky(cov).T


# --- The linear-Gaussian model ----------------------------------------------------------------

@dataclass(frozen=True)
class LinearGaussianModel:
    """z ~ N(0, I_d), x | z ~ N(W z + b, s^2 I_D), with W of shape (D, d)."""

    W: np.ndarray
    b: np.ndarray
    s: float

    @classmethod
    def random(cls, rng: np.random.Generator, d: int, D: int, s: float) -> LinearGaussianModel:
        """A model with standard-normal weights and bias."""
        return cls(W=rng.standard_normal((D, d)), b=rng.standard_normal(D), s=s)

    @property
    def d(self) -> int:
        """The latent dimension."""
        return self.W.shape[1]

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n draws (z, x) from p(z) p(x | z)."""
        z = rng.standard_normal((n, self.d))
        return z, z @ self.W.T + self.b + self.s * rng.standard_normal((n, len(self.b)))

    def log_likelihood(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """log p(x | z) = log N(x; W z + b, s^2 I), one value per code z (last axis d).

        x (D,) or (N, D) broadcasts against z (..., d): codes z of shape (S, N, d) give
        the (S, N) values of ``book.iwae``'s model protocol, as the VAE's decoder does.
        """
        noise_logvar = np.full_like(self.b, 2.0 * math.log(self.s))
        return gaussian_log_density(x, z @ self.W.T + self.b, noise_logvar)

    def log_joint(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """log p(x | z) + log p(z) by the book's diagonal-Gaussian log-density, per row of z."""
        return self.log_likelihood(x, z) + standard_normal_log_density(z)

    def log_evidence(self, x: np.ndarray) -> float:
        """log p(x) = log N(x; b, W W^T + s^2 I): x = W z + b + s * noise sums Gaussians."""
        cov = self.W @ self.W.T + self.s**2 * np.eye(len(self.b))
        return float(mvn_log_density(x, self.b, cov))

    def posterior_precision(self) -> np.ndarray:
        """Lambda, the posterior precision (inverse covariance of p(z | x)): I + W^T W / s^2.

        I is the prior's precision and W^T W / s^2 the data's; x does not enter.
        """
        return np.eye(self.d) + self.W.T @ self.W / self.s**2

    def posterior(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact p(z | x) = N(m, Sigma) with Sigma = Lambda^-1, m = Sigma W^T (x - b) / s^2.

        For a batch x of shape (N, D) the means are the rows of m (N, d); Sigma is shared.
        """
        cov = np.linalg.inv(self.posterior_precision())
        # m^T = (x - b)^T W Sigma (Sigma is symmetric): one row per data point of a batch
        return (x - self.b) @ self.W @ cov / self.s**2, cov

    def reconstruction(self, x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
        """E_q[log p(x | z)] for q = N(mean, cov), in closed form.

        E_q |x - W z - b|^2 = |x - W mean - b|^2 + tr(W cov W^T): the squared error at the mean,
        plus the spread of q pushed through the decoder.
        """
        D = len(self.b)
        squared_error = (np.sum((x - self.W @ mean - self.b) ** 2)
                         + np.trace(self.W @ cov @ self.W.T))
        return -0.5 * D * math.log(2.0 * math.pi * self.s**2) - 0.5 * squared_error / self.s**2

    def elbo(self, x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
        """ELBO(q) = E_q[log p(x | z)] - KL(q || p(z)), exactly, for q = N(mean, cov)."""
        kl = gaussian_kl(mean, cov, np.zeros(self.d), np.eye(self.d))
        return self.reconstruction(x, mean, cov) - kl

    def mean_field_posterior(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The diagonal q = N(mean, diag exp(logvar)) with the highest ELBO, as (mean, logvar).

        For a Gaussian target the best factorized q keeps the posterior mean and gives each
        z_j the variance 1 / Lambda_jj (Lambda: the posterior precision), the variance of z_j
        given the other latents: smaller than the posterior's own Sigma_jj when they are
        correlated.
        For a batch x (N, D), mean and logvar are (N, d).
        """
        mean = self.posterior(x)[0]
        logvar = -np.log(np.diag(self.posterior_precision()))
        return mean, np.broadcast_to(logvar, mean.shape).copy()

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, logvar), each (N, d), of q(z | x) for a batch x (N, D): an encoder.

        The best diagonal one there is: the mean-field posterior. With
        ``log_likelihood`` it is ``book.iwae``'s model protocol, so the IWAE estimator
        runs on this model.
        """
        return self.mean_field_posterior(x)


def log_weights(model: LinearGaussianModel, x: np.ndarray, mean: np.ndarray, cov: np.ndarray,
                eps: np.ndarray) -> np.ndarray:
    """log w = log p(x, z) - log q(z) at z = mean + C eps ~ q (C C^T = cov), one per row of eps.

    E_q[log w] is the ELBO of q and log E_q[w] is log p(x): Jensen's inequality between the two.
    """
    z = sample_mvn(mean, cov, eps)
    return model.log_joint(x, z) - mvn_log_density(z, mean, cov)


def effective_sample_size(log_w: np.ndarray) -> float:
    """(sum w)^2 / sum w^2: how many importance weights effectively count (1 to len(log_w))."""
    top = np.max(log_w)
    w = np.exp(log_w - top)  # the scale cancels in the ratio
    return float(np.sum(w) ** 2 / np.sum(w**2))


def log_mean_weight_standard_error(log_w: np.ndarray) -> float:
    """The standard error of log((1/K) sum w) as an estimate of log E[w]: sqrt(1/ESS - 1/K).

    To first order (the delta method) it is the relative standard error of the mean weight,
    Var(w) / (K E[w]^2), estimated from the K weights: (K sum w^2 / (sum w)^2 - 1) / K, which
    is 1/ESS - 1/K. It means something only when the weights have a finite variance and the
    ESS is not tiny; with one weight carrying the average (ESS near 1) it says nothing.
    """
    return math.sqrt(max(1.0 / effective_sample_size(log_w) - 1.0 / len(log_w), 0.0))


# --- Monte Carlo checks ----------------------------------------------------------------------

def kl_monte_carlo(mu: np.ndarray, logvar: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """One KL estimate per row of eps: log q(z) - log p(z) at z = mu + sigma * eps ~ q."""
    z = reparameterize(mu, logvar, eps)
    return gaussian_log_density(z, mu, logvar) - standard_normal_log_density(z)


def random_gaussian(rng: np.random.Generator, d: int,
                    scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A random N(mean, cov) on R^d.

    mean ~ scale * N(0, I), cov = A A^T + 0.01 I with A ~ scale * N(0, 1).
    """
    A = scale * rng.standard_normal((d, d))
    return scale * rng.standard_normal(d), A @ A.T + 0.01 * np.eye(d)


# --- Gradient estimators for d/d(mu, logvar) E_q[f(z)], q = N(mu, diag exp(logvar)) ----------
# Each returns one estimate per row of eps: (gradient w.r.t. mu, gradient w.r.t. logvar).

def reparameterization_gradient(grad_f: Callable[[np.ndarray], np.ndarray],
                                mu: np.ndarray, logvar: np.ndarray,
                                eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pathwise estimator: differentiate f(mu + sigma * eps) through z, holding eps fixed.

    dz/dmu = 1 and dz/dlogvar = sigma * eps / 2 (since sigma = exp(logvar / 2)).
    """
    g = grad_f(reparameterize(mu, logvar, eps))
    return g, g * eps * np.exp(0.5 * logvar) / 2.0


def score_function_gradient(f: Callable[[np.ndarray], np.ndarray], mu: np.ndarray,
                            logvar: np.ndarray,
                            eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The score-function (REINFORCE) estimator f(z) * grad log q(z): it uses f's values only.

    d log q / dmu = (z - mu) / sigma^2 = eps / sigma and d log q / dlogvar = (eps^2 - 1) / 2.
    """
    fz = f(reparameterize(mu, logvar, eps))[..., None]
    return fz * eps / np.exp(0.5 * logvar), fz * (eps**2 - 1.0) / 2.0


def estimator_variance(per_sample: Callable[[np.ndarray], np.ndarray], d: int, n_samples: int,
                       repeats: int, rng: np.random.Generator) -> np.ndarray:
    """The variance, per coordinate, of an ``n_samples``-sample average of ``per_sample(eps)``.

    Measured directly: ``repeats`` independent averages, then their variance.
    """
    estimates = per_sample(rng.standard_normal((repeats, n_samples, d))).mean(axis=1)
    return estimates.var(axis=0, ddof=1)


def total_variance(estimates: np.ndarray) -> tuple[float, float]:
    """The variance of a vector estimate summed over its coordinates, and its standard error.

    ``estimates`` (n, k) holds n independent estimates of a k-vector. The summed sample variance
    (ddof = 1) is n / (n - 1) times the mean of the squared distances |e_r - mean|^2, and its
    standard error is that of a mean: their standard deviation over sqrt(n), times n / (n - 1).
    For heavy-tailed estimates (a score-function estimate from few samples) that standard error
    is itself unreliable: a sample that missed the tail has both a small variance and a small
    standard error.
    """
    estimates = np.asarray(estimates, dtype=float)
    n = len(estimates)
    squared = np.sum((estimates - estimates.mean(axis=0)) ** 2, axis=-1)
    scale = n / (n - 1)
    return float(scale * squared.mean()), float(scale * squared.std(ddof=1) / math.sqrt(n))


# A test function whose expectation and gradient are known: E_q sum z^2 = sum(mu^2 + sigma^2).

def sum_of_squares(z: np.ndarray) -> np.ndarray:
    """f(z) = sum_j z_j^2 over the last axis."""
    return np.sum(z**2, axis=-1)


def sum_of_squares_grad(z: np.ndarray) -> np.ndarray:
    """grad f(z) = 2 z."""
    return 2.0 * z


def expected_sum_of_squares_grad(mu: np.ndarray,
                                 logvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact gradient of E_q[sum z^2] = sum(mu^2 + exp(logvar)): (2 mu, exp(logvar))."""
    return 2.0 * mu, np.exp(logvar)
