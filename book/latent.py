"""Statistics of a learned latent space: which dimensions carry information, and how much.

A VAE's KL term charges every latent dimension for what it says about x. Dimensions that say
nothing have q(z_j | x) = p(z_j) for every x: their mean no longer varies with x. Burda et al.
(2015, section 5.2) call a dimension *active* when Cov_x(E_q[z_j | x]) > 0.01.
"""
from __future__ import annotations

import numpy as np

from book.gaussian import kl_to_standard_normal

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
