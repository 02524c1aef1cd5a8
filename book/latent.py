"""Statistics of a learned latent space: which dimensions carry information, and how much.

A VAE's KL term charges every latent dimension for what it says about x. Dimensions that say
nothing have q(z_j | x) = p(z_j) for every x: their mean no longer varies with x. Burda et al.
(2015, section 5.2) call a dimension *active* when Cov_x(E_q[z_j | x]) > 0.01.
"""
from __future__ import annotations

import numpy as np

from book.gaussian import gaussian_log_density, kl_to_standard_normal, log_sum_exp

ACTIVE_THRESHOLD = 0.01  # Burda et al. (2015)


def kl_per_dimension(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """The KL to the prior of each latent dimension, averaged over the examples (nats)."""
    return kl_to_standard_normal(mu[..., None], logvar[..., None]).mean(axis=0)


def activity(mu: np.ndarray) -> np.ndarray:
    """Var_x(E_q[z_j | x]) of each dimension j, over the examples (rows of mu)."""
    return np.var(mu, axis=0)


def active_units(mu: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> int:
    """How many dimensions have an activity above ``threshold``."""
    return int(np.sum(activity(mu) > threshold))


def principal_components(codes: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The codes projected on their k directions of largest variance, and each one's share.

    A flat view of a latent space with more than two dimensions.
    """
    centred = codes - codes.mean(axis=0)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    share = singular**2 / np.sum(singular**2)
    return centred @ directions[:k].T, share[:k]


def interpolate(z_a: np.ndarray, z_b: np.ndarray, t: np.ndarray | float,
                kind: str = "linear") -> np.ndarray:
    """Codes on the path from z_a (t = 0) to z_b (t = 1): one row per t.

    "linear" runs along the straight line. "spherical" interpolates the direction and the norm
    separately: the unit directions by slerp (Shoemake 1985; for generative models, White
    2016), turning at a steady angle, and the norm linearly from |z_a| to |z_b|. A sample of
    N(0, I) in d dimensions has a norm near sqrt(d), and so do codes of real digits; the
    middle of the straight line between two codes of equal norm at an angle theta is shorter
    than they are by the factor 1 / cos(theta / 2): sqrt(2) at right angles, more for obtuse
    angles, without bound as the codes approach opposite directions. So the line visits the
    middle of the prior, where few codes lie; the spherical path keeps the norm.

    Raises ValueError for near-opposite endpoints with kind "spherical": no single arc joins
    them (every great half-circle does).
    """
    z_a, z_b = np.asarray(z_a, dtype=np.float64), np.asarray(z_b, dtype=np.float64)
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))[:, None]
    if kind not in ("linear", "spherical"):
        raise ValueError(f"kind must be 'linear' or 'spherical', got {kind!r}")
    line = (1 - t) * z_a + t * z_b
    if kind == "linear":
        return line
    norm_a, norm_b = np.linalg.norm(z_a), np.linalg.norm(z_b)
    if min(norm_a, norm_b) < 1e-12:  # a code at the origin has no direction: the line
        return line
    angle = np.arccos(np.clip(z_a @ z_b / (norm_a * norm_b), -1.0, 1.0))
    if angle < 1e-6:  # (nearly) the same direction: the arc is the line
        return line
    if angle > np.pi - 1e-6:
        raise ValueError("the two codes point in (nearly) opposite directions, so no single "
                         "arc joins them; interpolate with kind='linear', or through a third "
                         "code")
    unit_a, unit_b = z_a / norm_a, z_b / norm_b
    direction = (np.sin((1 - t) * angle) * unit_a + np.sin(t * angle) * unit_b) / np.sin(angle)
    return direction * ((1 - t) * norm_a + t * norm_b)


def midpoint_shrink(z_a: np.ndarray, z_b: np.ndarray) -> np.ndarray:
    """How much shorter the straight line's midpoint is than the spherical path's, per pair.

    z_a, z_b: (n, d) pairs of codes -> (n,): (|z_a| + |z_b|) / |z_a + z_b|, the norm of the
    spherical midpoint over the norm of the linear one. For equal norms at an angle theta it is
    1 / cos(theta / 2); inf for opposite codes.
    """
    z_a, z_b = np.atleast_2d(z_a).astype(np.float64), np.atleast_2d(z_b).astype(np.float64)
    with np.errstate(divide="ignore"):
        return ((np.linalg.norm(z_a, axis=1) + np.linalg.norm(z_b, axis=1))
                / np.linalg.norm(z_a + z_b, axis=1))


def traversal_codes(z0: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Codes (d, n, d): row j is z0 with its dimension j set to each of the n values in turn."""
    z0, values = np.asarray(z0, dtype=np.float64), np.asarray(values, dtype=np.float64)
    codes = np.repeat(np.repeat(z0[None, None], len(z0), 0), len(values), 1)
    for j in range(len(z0)):
        codes[j, :, j] = values
    return codes


def aggregate_log_density(mu: np.ndarray, logvar: np.ndarray, z: np.ndarray,
                          max_elements: int = 2**22) -> np.ndarray:
    """log q(z) of the aggregate posterior q(z) = (1/N) sum_n q(z | x_n) at points z (M, d).

    The encoder's Gaussians of N examples (mu, logvar: (N, d)) averaged: where the encoded
    data actually lie, to set against the prior p(z) the decoder is sampled from. Points and
    examples are taken in blocks of at most ``max_elements`` pairs, the sum over examples
    carried as a running log-sum-exp, so memory stays bounded whatever M and N are.
    """
    mu, logvar, z = (np.asarray(a, dtype=np.float64) for a in (mu, logvar, z))
    n = len(mu)
    rows = max(1, min(len(z), max_elements // max(1, n)))  # points per block
    cols = max(1, min(n, max_elements // rows))  # examples per block
    out = np.full(len(z), -np.inf)
    for start in range(0, len(z), rows):
        part = z[start:start + rows, None, :]  # (m, 1, d) against (n, d)
        for first in range(0, n, cols):
            block = slice(first, first + cols)
            log_q = gaussian_log_density(part, mu[block], logvar[block])
            out[start:start + rows] = np.logaddexp(out[start:start + rows],
                                                   log_sum_exp(log_q, axis=1))
    return out - np.log(n)
