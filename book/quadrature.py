"""The exact log p(x) of a model with a two-dimensional latent space, by quadrature.

With d = 2, p(x) = integral of p(x | z) p(z) dz is an integral over the plane, and the
midpoint rule on a regular grid of spacing Delta computes it almost exactly:

    p(x) ~ Delta^2 sum_g p(x | z_g) p(z_g).

For a smooth integrand that is negligible at the grid's edges, the error of this rule
falls faster than any power of Delta: for a Gaussian of standard deviation sigma it is
2 exp(-2 pi^2 sigma^2 / Delta^2) of the total per axis, 5e-9 at Delta = sigma, and halving Delta
raises it to the 4th power. The same grid gives the true posterior p(z | x) =
p(x, z) / p(x), its mean and covariance, and the ELBO of the encoder's q(z | x) as the
sum of q(z_g | x) Delta^2 [log p(x, z_g) - log q(z_g | x)], so the gap
log p(x) - ELBO = KL(q(z | x) || p(z | x)) comes without Monte Carlo noise.

One grid serves all the digits of a batch. The model follows ``book.iwae``'s protocol
(``encode`` and ``log_likelihood``), with digits flat (N, D); a ``book.numpy_vae.VAE`` or a
Bernoulli PyTorch model (the 2-D ``ConvVAE``) decodes the grid once, and
log p(x_n | z_g) = sum_i x_ni l_gi - softplus(l_gi) is then one matrix product.

Each result says how far to trust it: the posterior mass in the grid's outermost cells
(is the grid wide enough?), and how much log p(x) changes from spacing 2 Delta to Delta (is it
fine enough? the sum over every other point along each axis is the rule at spacing 2 Delta,
at no extra cost). A digit that fails is integrated again on a grid of its own.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from book.data import require_binary
from book.gaussian import gaussian_log_density, standard_normal_log_density
from book.numpy_vae import VAE

# Values per block of grid points (points x max(digits, pixels)): the arrays of a block,
# a few of this many float64s, stay within a few hundred MB.
MAX_BLOCK_ELEMENTS = 2**22

# What the checks accept: posterior mass in the grid's outermost cells, the change of
# log p(x) from spacing 2 Delta to Delta, and |1 - q's mass on the grid|.
TOLERANCES = {"border_mass": 1e-6, "resolution_change": 0.01, "q_mass_error": 1e-3}

# The most points of a digit's own grid (the shared grid is the caller's choice).
MAX_GRID_POINTS = 2**22

# How many standard deviations (of q, and of the posterior) a grid reaches on each side.
WIDTHS = 10.0

def _torch_module(model: Any) -> bool:
    """Whether the model is a PyTorch one (torch is imported only if it already is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _encode(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q(z | x)'s mean and log-variance, (N, 2) each, in float64, for flat digits x (N, D):
    of a NumPy model, or of a PyTorch one (such as the 2-D ``ConvVAE``), given the digits in
    its input shape on its device."""
    if not _torch_module(model):
        return tuple(np.asarray(a, np.float64) for a in model.encode(x))
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        images = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)
        mu, logvar = model.encode(images.reshape(len(x), *model.input_shape))
    return mu.double().cpu().numpy(), logvar.double().cpu().numpy()


def _has_logits(model: Any) -> bool:
    """Whether the model's decoder gives Bernoulli logits (the fast path: one decode per
    point serves every digit): the NumPy VAE, or a Bernoulli PyTorch model."""
    return isinstance(model, VAE) or (_torch_module(model)
                                      and getattr(model, "likelihood", None) == "bernoulli")


def _bernoulli_logits(model: Any, z: np.ndarray) -> np.ndarray | None:
    """The Bernoulli logits (G, D) of p(x | z) at the points z (G, 2), or None for a model
    whose decoder gives none (``_has_logits``)."""
    if not _has_logits(model):
        return None
    if isinstance(model, VAE):
        return model.decode(z)
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model.decode(torch.as_tensor(z, dtype=torch.float32, device=device))
    return logits.reshape(len(z), -1).cpu().numpy()


@dataclass(frozen=True)
class Grid:
    """Cell midpoints z = low + (i + 1/2) spacing, i = 0, ..., n - 1, on both axes."""

    low: tuple[float, float]
    spacing: float
    shape: tuple[int, int]

    @classmethod
    def covering(cls, low: np.ndarray, high: np.ndarray, spacing: float) -> Grid:
        """The grid of this spacing whose cells cover the box [low, high], centered."""
        low, high = np.asarray(low, float), np.asarray(high, float)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and spacing > 0):
            raise ValueError(f"no grid covers [{low}, {high}] with spacing {spacing}")
        n = np.maximum(np.ceil((high - low) / spacing), 1).astype(int)
        start = (low + high) / 2 - n * spacing / 2
        return cls((float(start[0]), float(start[1])), float(spacing),
                   (int(n[0]), int(n[1])))

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """The midpoints along z1 and along z2."""
        return tuple(lo + (np.arange(n) + 0.5) * self.spacing
                     for lo, n in zip(self.low, self.shape))

    def points(self) -> np.ndarray:
        """All midpoints, (n1 n2, 2), z2 fastest (``reshape(shape)`` gives [i1, i2])."""
        z1, z2 = np.meshgrid(*self.axes(), indexing="ij")
        return np.stack([z1.ravel(), z2.ravel()], axis=1)

    @property
    def size(self) -> int:
        """The number of points."""
        return self.shape[0] * self.shape[1]


def grid_for(model: Any, x: np.ndarray, *, spacing: float | None = None,
             widths: float = WIDTHS, prior_radius: float = 5.0) -> Grid:
    """One grid for the digits x: as wide as every q(z | x) and the prior, as fine as q.

    It covers mu +- ``widths`` sigma of every q(z | x) (the posterior is often wider)
    and the square of half-side ``prior_radius`` (where a posterior far from q would
    lie).
    The spacing defaults to the smallest sigma, a first guess at the posterior's width
    (the integrand is as wide as the posterior, and across its tilt a tilted posterior is
    narrower than the best diagonal Gaussian for it): the rule's error is then 5e-9 for a
    Gaussian as narrow as the narrowest q, and the checks, not the guess, say if that
    suffices.
    """
    mu, logvar = _encode(model, x)
    sigma = np.exp(0.5 * logvar)
    low = np.minimum(np.min(mu - widths * sigma, axis=0), -prior_radius)
    high = np.maximum(np.max(mu + widths * sigma, axis=0), prior_radius)
    return Grid.covering(low, high, spacing or float(sigma.min()))


@dataclass(frozen=True)
class Evidence:
    """Per digit: log p(x), the posterior's moments, the ELBO of q, and the checks."""

    grid: Grid  # the grid shared by all the digits
    log_px: np.ndarray  # (N,) log p(x) by the midpoint rule
    elbo: np.ndarray  # (N,) E_q[log p(x, z) - log q(z | x)] on the same grid
    posterior_mean: np.ndarray  # (N, 2)
    posterior_cov: np.ndarray  # (N, 2, 2)
    border_mass: np.ndarray  # (N,) posterior mass in the grid's outermost ring of cells
    resolution_change: np.ndarray  # (N,) largest |log p(x) at spacing 2h - at h|
    q_mass: np.ndarray  # (N,) h^2 sum_g q(z_g | x): 1 if the grid covers and resolves q
    spacing: np.ndarray  # (N,) the spacing h of each digit's grid
    refined: np.ndarray  # the digits integrated again, each on a grid of its own
    seconds: float

    @property
    def gap(self) -> np.ndarray:
        """log p(x) - ELBO(q) = KL(q(z | x) || p(z | x)), per digit."""
        return self.log_px - self.elbo

    def _checked(self) -> dict[str, np.ndarray]:
        return {"border_mass": self.border_mass,
                "resolution_change": self.resolution_change,
                "q_mass_error": np.abs(self.q_mass - 1)}

    def checks(self) -> dict[str, float]:
        """The worst value over the digits of each check (compare with TOLERANCES)."""
        return {name: float(v.max()) for name, v in self._checked().items()}

    def failures(self) -> dict[str, np.ndarray]:
        """For each check, the indices of the digits that fail it."""
        # "not <=" rather than ">": a nan fails too
        return {name: np.flatnonzero(~(v <= TOLERANCES[name]))
                for name, v in self._checked().items()}

    def passed(self) -> bool:
        """Whether every digit passes every check."""
        return not any(len(bad) for bad in self.failures().values())


def log_joint_table(model: Any, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log p(x_n, z_g) for digits x (N, D) and points z (G, 2), as an (N, G) table.

    A Bernoulli decoder decodes the points once, and one matrix product then serves all
    the digits; any other model is asked ``log_likelihood(x, z)`` with z as (G, 1, 2).
    """
    logits = _bernoulli_logits(model, z)
    if logits is not None:
        require_binary(x, "a Bernoulli decoder's log p(x | z)")
        # softplus(l) = log(1 + e^l) without overflow, in the decoder's own precision;
        # the sums over the D pixels in float64
        softplus = np.logaddexp(0, logits).sum(axis=1, dtype=np.float64)
        log_lik = np.asarray(x, np.float64) @ logits.T.astype(np.float64) - softplus
    else:
        log_lik = np.asarray(model.log_likelihood(x, z[:, None, :]), np.float64).T
    return log_lik + standard_normal_log_density(z)


def log_evidence(model: Any, x: np.ndarray, grid: Grid | None = None, *,
                 refinements: int = 3) -> Evidence:
    """log p(x) and the rest of ``Evidence`` for every digit of x (N, D).

    First on one grid for all of them (by default ``grid_for(model, x)``). A digit that
    fails a check is then integrated again on a grid of its own, up to ``refinements``
    times: one that reaches WIDTHS standard deviations of its posterior and of its q on
    each side, with a spacing of the smallest of them (and at most half the previous
    spacing, if the change from 2h to h was what failed).
    """
    start = time.perf_counter()
    evidence = _on_grid(model, x, grid or grid_for(model, x))
    mu, logvar = _encode(model, x)
    sigma = np.exp(0.5 * logvar)
    for _ in range(refinements):
        failures = evidence.failures()
        too_coarse = failures["resolution_change"]
        redo = np.union1d(failures["border_mass"], failures["q_mass_error"])
        # (q's mass is off where the grid cuts q off or is coarser than q: the new grid
        # covers q and is as fine as its smallest sigma)
        for i in np.union1d(redo, too_coarse):
            variances = np.linalg.eigvalsh(evidence.posterior_cov[i])
            mean = evidence.posterior_mean[i]
            if not (np.all(np.isfinite(variances)) and np.all(np.isfinite(mean))):
                continue  # nothing to aim a new grid at: the digit stays failed
            sd = np.sqrt(np.maximum(variances, 0))  # smallest, largest
            low = np.minimum(mu[i] - WIDTHS * sigma[i], mean - WIDTHS * sd[1])
            high = np.maximum(mu[i] + WIDTHS * sigma[i], mean + WIDTHS * sd[1])
            spacing = min(sigma[i].min(), sd[0])
            if i in too_coarse:
                spacing = min(spacing, evidence.spacing[i] / 2)
            # moments from a grid that failed can be far off (a posterior within one
            # cell has variance ~0): refine by steps of at most 8 at a time
            spacing = max(spacing, evidence.spacing[i] / 8)
            own = Grid.covering(low, high, spacing)
            if own.size > MAX_GRID_POINTS:
                continue  # too costly (q much wider than the posterior?): stays failed
            evidence = _replace_digit(evidence, i, _on_grid(model, x[i : i + 1], own))
    return replace(evidence, seconds=time.perf_counter() - start)


def _replace_digit(evidence: Evidence, i: int, digit: Evidence) -> Evidence:
    """``evidence`` with digit i's results taken from ``digit`` (its results alone)."""
    changes = {}
    for name in ("log_px", "elbo", "posterior_mean", "posterior_cov", "border_mass",
                 "resolution_change", "q_mass", "spacing"):
        values = getattr(evidence, name).copy()
        values[i] = getattr(digit, name)[0]
        changes[name] = values
    refined = np.union1d(evidence.refined, [i]).astype(int)
    return replace(evidence, **changes, refined=refined)


def _on_grid(model: Any, x: np.ndarray, grid: Grid) -> Evidence:
    """``Evidence`` for the digits x on one grid, visited in blocks of whole rows.

    With weights w_ng = p(x_n, z_g), every sum the results need (of 1, z and z z^T over
    the grid, over each of its four grids of spacing 2h, over its border) is one matrix
    product w @ features. The weights are kept relative to each digit's largest
    log p(x, z_g) so far, and the sums rescaled when it grows: nothing over- or
    underflows.
    """
    start = time.perf_counter()
    mu, logvar = _encode(model, x)
    n, area, (n1, n2) = len(x), grid.spacing**2, grid.shape
    z1, z2 = grid.axes()
    # q(z | x) is diagonal: log q(z1, z2) = log q(z1) + log q(z2), one axis at a time
    log_q1, log_q2 = (gaussian_log_density(axis[None, :, None], mu[:, None, j : j + 1],
                                           logvar[:, None, j : j + 1])
                      for j, axis in enumerate((z1, z2)))
    per_point = max(n, x.shape[1])
    if not _has_logits(model):
        per_point = n * x.shape[1]  # log_likelihood holds (points, N, D) arrays
    rows = max(1, MAX_BLOCK_ELEMENTS // (per_point * n2))

    top = np.full(n, -np.inf)  # the largest log p(x, z_g) so far, per digit
    sums, elbo_sum, q_sum = np.zeros((n, 11)), np.zeros(n), np.zeros(n)
    for r in range(0, n1, rows):
        i1, i2 = (a.ravel() for a in np.meshgrid(np.arange(r, min(r + rows, n1)),
                                                 np.arange(n2), indexing="ij"))
        z = np.stack([z1[i1], z2[i2]], axis=1)
        log_joint = log_joint_table(model, x, z)
        new_top = np.maximum(top, log_joint.max(axis=1))
        rescale = np.exp(top - new_top)  # 0 for the first block, where top = -inf
        top = new_top
        w = np.exp(log_joint - top[:, None])  # p(x, z_g) / exp(top): at most 1
        sums = sums * rescale[:, None] + w @ _features(z, i1, i2, grid.shape)
        log_q = log_q1[:, i1] + log_q2[:, i2]
        q = np.exp(log_q) * area
        elbo_sum += np.sum(q * (log_joint - log_q), axis=1)
        q_sum += q.sum(axis=1)

    total = sums[:, 0]
    log_px = top + np.log(total * area)
    coarse = top[:, None] + np.log(sums[:, 6:10] * 4 * area)  # four rules at spacing 2h
    mean = sums[:, 1:3] / total[:, None]
    second = sums[:, [3, 4, 4, 5]].reshape(n, 2, 2) / total[:, None, None]  # E[z z^T]
    return Evidence(grid=grid, log_px=log_px, elbo=elbo_sum / q_sum,
                    posterior_mean=mean,
                    posterior_cov=second - mean[:, :, None] * mean[:, None, :],
                    border_mass=sums[:, 10] / total,
                    resolution_change=np.abs(coarse - log_px[:, None]).max(axis=1),
                    q_mass=q_sum, spacing=np.full(n, grid.spacing),
                    refined=np.array([], int), seconds=time.perf_counter() - start)


def _features(z: np.ndarray, i1: np.ndarray, i2: np.ndarray,
              shape: tuple[int, int]) -> np.ndarray:
    """(G, 11): per point 1, z1, z2, z1^2, z1 z2, z2^2, which of the four grids of
    spacing 2h it is on (one-hot), and whether it is a border cell."""
    parity = 2 * (i1 % 2) + i2 % 2
    border = (i1 == 0) | (i1 == shape[0] - 1) | (i2 == 0) | (i2 == shape[1] - 1)
    return np.column_stack([np.ones(len(z)), z, z[:, :1] ** 2, z[:, :1] * z[:, 1:],
                            z[:, 1:] ** 2, parity[:, None] == np.arange(4), border])


@dataclass(frozen=True)
class Window:
    """log p(z | x) and log q(z | x) of one digit on a grid, each of ``grid.shape``."""

    grid: Grid
    log_posterior: np.ndarray
    log_q: np.ndarray


def posterior_window(model: Any, x: np.ndarray, evidence: Evidence, index: int, *,
                     n: int = 101, widths: float = 4.0) -> Window:
    """p(z | x) and q(z | x) of digit ``index`` of x (as given to ``log_evidence``).

    The window reaches ``widths`` standard deviations around the posterior's mean and
    around q's (they can lie far apart), with n points along its longer side.
    """
    digit = x[index : index + 1]
    mu, logvar = (a[0] for a in _encode(model, digit))
    sigma = np.exp(0.5 * logvar)
    sd = math.sqrt(np.linalg.eigvalsh(evidence.posterior_cov[index]).max())
    mean = evidence.posterior_mean[index]
    low = np.minimum(mean - widths * sd, mu - widths * sigma)
    high = np.maximum(mean + widths * sd, mu + widths * sigma)
    grid = Grid.covering(low, high, float(np.max(high - low)) / n)
    z = grid.points()
    log_posterior = log_joint_table(model, digit, z)[0] - evidence.log_px[index]
    log_q = gaussian_log_density(z, mu, logvar)
    return Window(grid, log_posterior.reshape(grid.shape), log_q.reshape(grid.shape))


class PosteriorProposal:
    """The model with q(z | x) moved onto the true posterior's mean, its variances widened.

    ``book.iwae`` with this q in place of the encoder's is an independent check of the
    quadrature: an importance sampler whose draws land where p(x, z) is large, so that its
    estimate of log p(x) converges fast (the encoder's q can miss the posterior, and then
    even thousands of draws leave the estimate short). For the digits x given to
    ``log_evidence``, in the same order.
    """

    def __init__(self, model: Any, evidence: Evidence, widen: float = 2.0):
        self.model, self.mean = model, evidence.posterior_mean
        variances = np.diagonal(evidence.posterior_cov, axis1=1, axis2=2)
        self.logvar = np.log(widen * variances)

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(x) != len(self.mean):
            raise ValueError(f"the proposal was made for {len(self.mean)} digits, "
                             f"got {len(x)}")
        return self.mean, self.logvar

    def log_likelihood(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.model.log_likelihood(x, z)
