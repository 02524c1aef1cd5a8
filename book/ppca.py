"""Probabilistic PCA (Tipping & Bishop, 1999): the linear-Gaussian latent-variable model.

    z ~ N(0, I_d),   x | z ~ N(W z + b, s2 I_D),   so   x ~ N(b, Sigma),   Sigma = W W^T + s2 I.

It is the VAE with a linear decoder and one noise level for all pixels, and everything a VAE
must approximate is exact here: the log-likelihood (a Gaussian density), the posterior
p(z | x) = N(M^-1 W^T (x - b), s2 M^-1) with M = W^T W + s2 I, and the maximum-likelihood fit
itself, in closed form from the eigendecomposition U diag(lambda) U^T of the data's
covariance (divided by N):

    b = the data's mean,   s2 = the mean of the D - d smallest eigenvalues,
    W = U_d diag(lambda_d - s2)^(1/2)   (up to a rotation, which changes nothing observable).

Sigma then has eigenvalues lambda_1..lambda_d along U_d and s2 in every other direction, which
gives log |Sigma| and Sigma^-1 (x - b) without ever forming the D x D matrix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from book.gaussian import LOG_2PI


@dataclass
class PPCA:
    """A fitted PPCA: the mean (D,), the top directions U (D, d), their variances (d,), s2."""

    mean: np.ndarray
    directions: np.ndarray
    variances: np.ndarray
    noise_var: float

    @property
    def W(self) -> np.ndarray:
        """The loading matrix (D, d): the linear decoder."""
        return self.directions * np.sqrt(self.variances - self.noise_var)

    @property
    def parameters(self) -> int:
        """Free numbers: the mean, W less its d(d-1)/2 free rotations, and s2."""
        D, d = self.directions.shape
        return D + D * d - d * (d - 1) // 2 + 1

    def covariance(self) -> np.ndarray:
        """Sigma = W W^T + s2 I as a dense (D, D) matrix: for checks on small D."""
        return self.W @ self.W.T + self.noise_var * np.eye(len(self.mean))

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """The exact log p(x_n) = log N(x_n; b, Sigma) of each row of x (N, D), in nats."""
        r = np.asarray(x, dtype=np.float64) - self.mean
        along = r @ self.directions  # coordinates in the top-d directions
        D, d = self.directions.shape
        log_det = np.sum(np.log(self.variances)) + (D - d) * math.log(self.noise_var)
        mahalanobis = (np.sum(along**2 / self.variances, axis=1)
                       + (np.sum(r**2, axis=1) - np.sum(along**2, axis=1)) / self.noise_var)
        return -0.5 * (D * LOG_2PI + log_det + mahalanobis)

    def posterior_mean(self, x: np.ndarray) -> np.ndarray:
        """E[z | x_n] = M^-1 W^T (x_n - b) of each row of x: the exact encoder's mean (N, d)."""
        W = self.W
        M = W.T @ W + self.noise_var * np.eye(W.shape[1])
        return np.linalg.solve(M, W.T @ (np.asarray(x, dtype=np.float64) - self.mean).T).T

    def decode(self, z: np.ndarray) -> np.ndarray:
        """The mean of p(x | z), W z + b, for codes z (N, d)."""
        return z @ self.W.T + self.mean

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws of x: z ~ N(0, I), then x = W z + b + s2^(1/2) noise."""
        z = rng.standard_normal((n, self.directions.shape[1]))
        noise = rng.standard_normal((n, len(self.mean))) * math.sqrt(self.noise_var)
        return self.decode(z) + noise


def fit_ppca(x: np.ndarray, d: int) -> PPCA:
    """The maximum-likelihood PPCA with d latent dimensions of the rows of x (N, D)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or not 0 < d < x.shape[1]:
        raise ValueError(f"need data (N, D) and 0 < d < D, got shape {x.shape} and d = {d}")
    mean = x.mean(axis=0)
    centred = x - mean
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(x))
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]  # largest first
    noise_var = float(eigenvalues[d:].mean())
    if not noise_var > 1e-12 * eigenvalues[0]:  # zero, up to the eigensolver's round-off
        raise ValueError("the data have no variance outside the top d directions: "
                         "a Gaussian density needs noise (dequantize the images first)")
    return PPCA(mean, eigenvectors[:, :d].copy(), eigenvalues[:d].copy(), noise_var)
