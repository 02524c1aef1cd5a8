"""book.gaussian: each formula against an independent computation, and the common wrong forms caught.

Monte Carlo checks are seeded; a right formula sits within 4 standard errors of its estimate and
every wrong one tested here lies tens of standard errors away. q is kept far from N(0, I)
(sigma != 1, mu != 0) because some mistakes coincide with the right formula there.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from book.gaussian import gaussian_log_density, kl_to_standard_normal, kl_to_standard_normal_grad, reparameterize
from book.checks import central_difference, mean_and_standard_error
from book.vi import kl_monte_carlo

MU = np.array([0.8, -1.5, 0.3, 0.0])
LOGVAR = np.array([-1.2, 0.7, 1.5, -0.4])  # sigma^2 from 0.3 to 4.5
N_SAMPLES = 200_000


@pytest.fixture
def eps() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((N_SAMPLES, len(MU)))


# The errors that circulate in notes, written out so the tests can show they are detectably wrong.
def kl_with_exp_of_variance(mu, logvar):
    """sigma^2 replaced by exp(sigma^2)."""
    return 0.5 * np.sum(np.exp(np.exp(logvar)) + mu**2 - 1.0 - logvar, axis=-1)


def kl_with_flipped_sign(mu, logvar):
    """1/2 sum(1 + log sigma^2 - mu^2 - sigma^2): that is -KL, the term as it appears in the ELBO."""
    return 0.5 * np.sum(1.0 + logvar - mu**2 - np.exp(logvar), axis=-1)


def reparameterize_with_variance(mu, logvar, eps):
    """z = mu + sigma^2 * eps."""
    return mu + np.exp(logvar) * eps


def test_log_density_is_a_normalized_gaussian():
    grid = np.linspace(-20.0, 20.0, 200_001)[:, None]
    density = np.exp(gaussian_log_density(grid, np.array([1.5]), np.array([0.8])))
    step = grid[1, 0] - grid[0, 0]
    assert np.sum(density) * step == pytest.approx(1.0, abs=1e-9)
    assert np.sum(grid[:, 0] * density) * step == pytest.approx(1.5, abs=1e-9)
    assert np.sum((grid[:, 0] - 1.5) ** 2 * density) * step == pytest.approx(np.exp(0.8), abs=1e-9)


def test_kl_closed_form_matches_monte_carlo(eps):
    estimate, se = mean_and_standard_error(kl_monte_carlo(MU, LOGVAR, eps))
    assert abs(estimate - kl_to_standard_normal(MU, LOGVAR)) < 4 * se


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    rng = np.random.default_rng(1)
    assert kl_to_standard_normal(np.zeros(5), np.zeros(5)) == 0.0
    assert np.all(kl_to_standard_normal(rng.standard_normal((100, 5)), rng.standard_normal((100, 5))) > 0)


@pytest.mark.parametrize("wrong_kl", [kl_with_exp_of_variance, kl_with_flipped_sign])
def test_wrong_kl_formulas_are_detectably_wrong(eps, wrong_kl):
    estimate, se = mean_and_standard_error(kl_monte_carlo(MU, LOGVAR, eps))
    assert abs(estimate - wrong_kl(MU, LOGVAR)) > 50 * se


def test_flipped_sign_kl_is_negative():
    assert kl_with_flipped_sign(MU, LOGVAR) == pytest.approx(-kl_to_standard_normal(MU, LOGVAR))
    assert kl_with_flipped_sign(MU, LOGVAR) < 0


def test_reparameterized_samples_have_mean_mu_and_variance_sigma_squared(eps):
    z = reparameterize(MU, LOGVAR, eps)
    variance = np.exp(LOGVAR)
    assert np.all(np.abs(z.mean(axis=0) - MU) < 4 * np.sqrt(variance / N_SAMPLES))
    # The sample variance of n normals has standard deviation sigma^2 sqrt(2 / (n - 1)).
    assert np.all(np.abs(z.var(axis=0, ddof=1) - variance) < 4 * variance * np.sqrt(2 / (N_SAMPLES - 1)))


def test_reparameterizing_with_the_variance_is_detectably_wrong(eps):
    z = reparameterize_with_variance(MU, LOGVAR, eps)
    variance = np.exp(LOGVAR)
    tolerance = 4 * variance * np.sqrt(2 / (N_SAMPLES - 1))
    assert np.all(np.abs(z.var(axis=0, ddof=1) - variance) > 10 * tolerance)  # it is sigma^4, not sigma^2
    # The KL estimated from those samples disagrees with the closed form.
    kl = gaussian_log_density(z, MU, LOGVAR) - gaussian_log_density(z, 0 * z, 0 * z)
    estimate, se = mean_and_standard_error(kl)
    assert abs(estimate - kl_to_standard_normal(MU, LOGVAR)) > 50 * se


def test_kl_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    mu, logvar = rng.standard_normal(6), rng.standard_normal(6)
    grad_mu, grad_logvar = kl_to_standard_normal_grad(mu, logvar)
    fd_mu = central_difference(lambda m: kl_to_standard_normal(m, logvar), mu)
    fd_logvar = central_difference(lambda lv: kl_to_standard_normal(mu, lv), logvar)
    np.testing.assert_allclose(grad_mu, fd_mu, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(grad_logvar, fd_logvar, rtol=1e-7, atol=1e-9)
    # The gradient without the 1/2, or with sigma in place of sigma^2, would be caught.
    assert np.max(np.abs((np.exp(logvar) - 1.0) - fd_logvar)) > 1e-2
    assert np.max(np.abs(0.5 * (np.exp(0.5 * logvar) - 1.0) - fd_logvar)) > 1e-2


def test_kl_gradient_matches_torch_autograd():
    mu = torch.tensor(MU, requires_grad=True)
    logvar = torch.tensor(LOGVAR, requires_grad=True)
    kl_to_standard_normal(mu, logvar).backward()
    grad_mu, grad_logvar = kl_to_standard_normal_grad(MU, LOGVAR)
    np.testing.assert_allclose(mu.grad.numpy(), grad_mu, rtol=1e-12)
    np.testing.assert_allclose(logvar.grad.numpy(), grad_logvar, rtol=1e-12)


def test_numpy_and_torch_agree():
    rng = np.random.default_rng(3)
    x, mu, logvar, eps = (rng.standard_normal((7, 5)) for _ in range(4))
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    pairs = [
        (gaussian_log_density(x, mu, logvar), gaussian_log_density(t(x), t(mu), t(logvar))),
        (kl_to_standard_normal(mu, logvar), kl_to_standard_normal(t(mu), t(logvar))),
        (reparameterize(mu, logvar, eps), reparameterize(t(mu), t(logvar), t(eps))),
        *zip(kl_to_standard_normal_grad(mu, logvar), kl_to_standard_normal_grad(t(mu), t(logvar))),
    ]
    for numpy_result, torch_result in pairs:
        assert isinstance(numpy_result, np.ndarray) and isinstance(torch_result, torch.Tensor)
        assert torch_result.dtype == torch.float64
        np.testing.assert_allclose(torch_result.numpy(), numpy_result, rtol=1e-13, atol=1e-13)
