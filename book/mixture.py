"""A mixture of Bernoullis fitted by EM: the simplest latent-variable model of binary digits.

    p(x) = sum_c pi_c prod_i p_ci^x_i (1 - p_ci)^(1 - x_i)

The latent variable is discrete (which of C prototypes drew the digit), so log p(x) is exact:
a log-sum-exp over C terms, with no bound and no sampling. EM (Dempster, Laird & Rubin, 1977)
alternates two steps, each of which cannot lower the objective. It is coordinate ascent on the
ELBO (Neal & Hinton, 1998): the E-step sets q(c | x_n) to the exact posterior, which makes the
bound tight, and the M-step raises the bound over the parameters with q held fixed:

    E: the responsibilities r_nc = p(c | x_n), by Bayes' rule;
    M: pi_c = mean_n r_nc,   p_ci = (sum_n r_nc x_ni + a) / (sum_n r_nc + 2a).

With a = 0 the M-step maximizes the likelihood and the objective is log p(data). With a > 0 it
is the MAP estimate under a Beta(a + 1, a + 1) prior on each p_ci ("add-a" smoothing), and the
objective that never decreases is log p(data) + log prior. Smoothing keeps every p_ci off 0 and
1: a test digit with one pixel that no training digit of a component had would otherwise be
impossible under that component.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from book.data import require_binary
from book.gaussian import log_sum_exp

# A probability of exactly 0 or 1 enters a logarithm as this far from it, so that a pixel a
# component never has costs a finite (huge) amount and 0 * log 0 is 0, not NaN.
PROBABILITY_FLOOR = 1e-12


@dataclass
class BernoulliMixture:
    """C prototypes ``probs`` (C, D) of pixel probabilities and their log-weights (C,)."""

    log_weights: np.ndarray
    probs: np.ndarray

    @property
    def parameters(self) -> int:
        """Free numbers: C - 1 weights (they sum to 1) and C * D pixel probabilities."""
        return self.probs.size + len(self.log_weights) - 1

    def component_log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """log p(x_n | c) for binary x (N, D): (N, C)."""
        p = np.clip(self.probs, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        return x @ np.log(p).T + (1 - x) @ np.log1p(-p).T

    def joint(self, x: np.ndarray) -> np.ndarray:
        """log p(x_n, c) = log pi_c + log p(x_n | c): (N, C)."""
        return self.log_weights + self.component_log_likelihood(x)

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """The exact log p(x_n) of each binary image (N,), in nats."""
        return log_sum_exp(self.joint(_binary(x)), axis=1)

    def responsibilities(self, x: np.ndarray) -> np.ndarray:
        """p(c | x_n): (N, C), each row summing to 1."""
        joint = self.joint(_binary(x))
        return np.exp(joint - log_sum_exp(joint, axis=1)[:, None])

    def log_prior(self, smoothing: float) -> float:
        """log of the Beta(a + 1, a + 1) prior density of all p_ci, up to a constant."""
        if smoothing == 0:
            return 0.0
        p = np.clip(self.probs, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        return float(smoothing * np.sum(np.log(p) + np.log1p(-p)))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n binary images (n, D): a component from pi, then each pixel from its p_ci."""
        c = rng.choice(len(self.probs), size=n, p=np.exp(self.log_weights))
        return (rng.random((n, self.probs.shape[1])) < self.probs[c]).astype(np.float64)


def m_step(x: np.ndarray, resp: np.ndarray, smoothing: float) -> BernoulliMixture:
    """The mixture that maximizes the expected complete-data log-likelihood (+ log prior)."""
    counts = resp.sum(axis=0)  # the expected number of images each component drew
    with np.errstate(divide="ignore"):  # a component that drew nothing gets weight 0
        log_weights = np.log(counts / counts.sum())
    with np.errstate(invalid="ignore"):  # 0 / 0 when a component drew nothing and a = 0
        probs = (resp.T @ x + smoothing) / (counts[:, None] + 2 * smoothing)
    probs[counts == 0] = 0.5  # its weight is 0: any probabilities, but not NaN
    return BernoulliMixture(log_weights, probs)


def fit_mixture(x: np.ndarray, components: int, *, iterations: int = 50, smoothing: float = 1.0,
                seed: int = 0, progress: bool = True) -> tuple[BernoulliMixture, np.ndarray]:
    """Fit C = ``components`` components to binary images x (N, D) by EM; also return the
    objective's history.

    It starts from an M-step on random soft responsibilities. The history holds the mean
    per-image objective (log-likelihood plus log prior / N) before every E-step and at the end:
    ``iterations + 1`` values, never decreasing.
    """
    x = _binary(x).astype(np.float64)
    if smoothing < 0 or components < 1:
        raise ValueError(f"need components >= 1 and smoothing >= 0, got components="
                         f"{components}, smoothing={smoothing}")
    rng = np.random.default_rng(seed)
    mixture = m_step(x, rng.dirichlet(np.ones(components), size=len(x)), smoothing)
    objective = []
    for _ in tqdm(range(iterations), desc="EM", unit="iteration", disable=not progress):
        joint = mixture.joint(x)
        log_px = log_sum_exp(joint, axis=1)
        objective.append((log_px.sum() + mixture.log_prior(smoothing)) / len(x))
        mixture = m_step(x, np.exp(joint - log_px[:, None]), smoothing)
    last = mixture.log_likelihood(x).sum() + mixture.log_prior(smoothing)
    return mixture, np.array(objective + [last / len(x)])


def _binary(x: np.ndarray) -> np.ndarray:
    """x itself if it is a 2-D array of zeros and ones, else a clear error."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected binary images flattened to (N, D), got shape {x.shape}: "
                         "reshape with x.reshape(len(x), -1)")
    return require_binary(x, "a Bernoulli mixture")
