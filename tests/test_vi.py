"""book.vi: the ELBO identities on a model where log p(x) is exact, and the two gradient estimators."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from book import iwae, vi
from book.checks import mean_and_standard_error
from book.gaussian import gaussian_log_density, kl_to_standard_normal, reparameterize

D_LATENT, D_DATA = 3, 8


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def model_and_x(rng) -> tuple[vi.LinearGaussianModel, np.ndarray]:
    model = vi.LinearGaussianModel.random(rng, D_LATENT, D_DATA, s=0.5)
    return model, model.sample(rng, 1)[1][0]


# --- Full-covariance helpers against the diagonal formulas of book.gaussian -----------------------

def test_full_covariance_density_and_kl_reduce_to_the_diagonal_ones(rng):
    mean, logvar, x = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal((5, 4))
    cov = np.diag(np.exp(logvar))
    np.testing.assert_allclose(vi.mvn_log_density(x, mean, cov), gaussian_log_density(x, mean, logvar), rtol=1e-12)
    assert vi.gaussian_kl(mean, cov, np.zeros(4), np.eye(4)) == pytest.approx(kl_to_standard_normal(mean, logvar),
                                                                             rel=1e-12)


def test_general_kl_matches_monte_carlo_and_vanishes_only_at_equality(rng):
    (m0, S0), (m1, S1) = vi.random_gaussian(rng, 3), vi.random_gaussian(rng, 3)
    z = vi.sample_mvn(m0, S0, rng.standard_normal((200_000, 3)))
    estimate, se = mean_and_standard_error(vi.mvn_log_density(z, m0, S0) - vi.mvn_log_density(z, m1, S1))
    assert abs(estimate - vi.gaussian_kl(m0, S0, m1, S1)) < 4 * se
    assert abs(vi.gaussian_kl(m0, S0, m0, S0)) < 1e-12
    assert vi.gaussian_kl(m0, S0, m1, S1) > 0


# --- The linear-Gaussian model: exact evidence and posterior ---------------------------------------

def test_evidence_and_posterior_satisfy_bayes_rule_at_every_z(model_and_x, rng):
    model, x = model_and_x
    mean, cov = model.posterior(x)
    z = 3 * rng.standard_normal((20, D_LATENT))
    bayes = model.log_joint(x, z) - vi.mvn_log_density(z, mean, cov)  # log p(x, z) - log p(z | x) = log p(x)
    np.testing.assert_allclose(bayes, model.log_evidence(x), rtol=0, atol=1e-10)


def test_evidence_matches_the_sampled_marginal(model_and_x, rng):
    """Monte Carlo from the prior converges to log p(x) (slowly: that is why we need q)."""
    model, x = model_and_x
    log_w = vi.log_weights(model, x, np.zeros(D_LATENT), np.eye(D_LATENT), rng.standard_normal((400_000, D_LATENT)))
    assert iwae.log_mean_exp(log_w) == pytest.approx(model.log_evidence(x), abs=0.05)


def test_elbo_is_below_the_evidence_for_random_q_and_the_gap_is_the_kl_to_the_posterior(model_and_x, rng):
    model, x = model_and_x
    log_px, (post_mean, post_cov) = model.log_evidence(x), model.posterior(x)
    for _ in range(200):
        mean, cov = vi.random_gaussian(rng, D_LATENT, scale=rng.uniform(0.2, 2.0))
        gap = log_px - model.elbo(x, mean, cov)
        assert gap > 0
        assert gap == pytest.approx(vi.gaussian_kl(mean, cov, post_mean, post_cov), rel=1e-9, abs=1e-10)


def test_elbo_equals_the_evidence_at_the_exact_posterior(model_and_x):
    model, x = model_and_x
    assert abs(model.elbo(x, *model.posterior(x)) - model.log_evidence(x)) < 1e-10


def test_closed_form_elbo_matches_its_monte_carlo_estimate(model_and_x, rng):
    model, x = model_and_x
    mean, cov = vi.random_gaussian(rng, D_LATENT, scale=0.5)
    estimate, se = mean_and_standard_error(vi.log_weights(model, x, mean, cov, rng.standard_normal((100_000, 3))))
    assert abs(estimate - model.elbo(x, mean, cov)) < 4 * se


def test_importance_weights_are_constant_under_the_posterior(model_and_x, rng):
    model, x = model_and_x
    log_w = vi.log_weights(model, x, *model.posterior(x), rng.standard_normal((10, D_LATENT)))
    np.testing.assert_allclose(log_w, model.log_evidence(x), rtol=0, atol=1e-10)


def test_mean_field_q_is_the_best_diagonal_one_and_falls_short(model_and_x, rng):
    model, x = model_and_x
    mean, logvar = model.mean_field_posterior(x)
    best = model.elbo(x, mean, np.diag(np.exp(logvar)))
    for _ in range(50):
        d_mean, d_logvar = 0.05 * rng.standard_normal((2, D_LATENT))
        assert model.elbo(x, mean + d_mean, np.diag(np.exp(logvar + d_logvar))) < best
    post_mean, post_cov = model.posterior(x)
    gap = model.log_evidence(x) - best
    assert gap > 1e-3  # correlated latents: no diagonal q reaches the posterior
    assert gap == pytest.approx(vi.gaussian_kl(mean, np.diag(np.exp(logvar)), post_mean, post_cov), rel=1e-9)


def test_effective_sample_size_counts_the_draws_that_carry_the_average():
    assert vi.effective_sample_size(np.zeros(50)) == pytest.approx(50.0)  # equal weights: all count
    assert vi.effective_sample_size(np.array([0.0, -800.0, -900.0])) == pytest.approx(1.0)  # one dominates
    log_w = np.log(np.array([1.0, 1.0, 2.0, 4.0])) + 700.0  # w^2 would overflow without the shift
    assert vi.effective_sample_size(log_w) == pytest.approx(8.0**2 / 22.0)


# --- Gradient estimators of d/d(mu, logvar) E_q[sum z^2] -------------------------------------------

MU, LOGVAR = np.array([1.0, -0.5, 0.2]), np.array([-1.0, 0.5, 0.0])


@pytest.mark.parametrize("name", ["reparameterization", "score function"])
def test_both_gradient_estimators_are_unbiased(name, rng):
    eps = rng.standard_normal((200_000, 3))
    if name == "reparameterization":
        estimates = vi.reparameterization_gradient(vi.sum_of_squares_grad, MU, LOGVAR, eps)
    else:
        estimates = vi.score_function_gradient(vi.sum_of_squares, MU, LOGVAR, eps)
    for samples, exact in zip(estimates, vi.expected_sum_of_squares_grad(MU, LOGVAR)):
        mean, se = mean_and_standard_error(samples)
        assert np.all(np.abs(mean - exact) < 4 * se)


def test_reparameterization_gradient_has_lower_variance(rng):
    eps = rng.standard_normal((100_000, 3))
    reparam = vi.reparameterization_gradient(vi.sum_of_squares_grad, MU, LOGVAR, eps)
    score = vi.score_function_gradient(vi.sum_of_squares, MU, LOGVAR, eps)
    for r, s in zip(reparam, score):
        assert np.all(s.var(axis=0) > 3 * r.var(axis=0))
    # The reparameterization variance of d/dmu is exactly Var(2 z) = 4 sigma^2.
    np.testing.assert_allclose(reparam[0].var(axis=0), 4 * np.exp(LOGVAR), rtol=0.03)


def test_estimator_variance_falls_as_one_over_the_number_of_samples(rng):
    per_sample = lambda e: vi.reparameterization_gradient(vi.sum_of_squares_grad, MU, LOGVAR, e)[0]  # noqa: E731
    for n in (1, 100):
        variance = vi.estimator_variance(per_sample, 3, n_samples=n, repeats=4000, rng=rng)
        np.testing.assert_allclose(variance, 4 * np.exp(LOGVAR) / n, rtol=0.1)


def test_reparameterization_gradient_is_what_autograd_computes(rng):
    eps = rng.standard_normal((10, 3))
    mu, logvar = torch.tensor(MU, requires_grad=True), torch.tensor(LOGVAR, requires_grad=True)
    vi_torch_f = lambda z: torch.sum(z**2, dim=-1)  # noqa: E731  (sum_of_squares, in torch)
    vi_torch_f(reparameterize(mu, logvar, torch.tensor(eps))).mean().backward()
    g_mu, g_logvar = vi.reparameterization_gradient(vi.sum_of_squares_grad, MU, LOGVAR, eps)
    np.testing.assert_allclose(mu.grad.numpy(), g_mu.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(logvar.grad.numpy(), g_logvar.mean(axis=0), rtol=1e-12)



# --- The error bars the chapter asserts with ----------------------------------------------------

def test_log_mean_weight_standard_error_is_the_spread_of_the_estimate(rng):
    assert vi.log_mean_weight_standard_error(np.zeros(100)) == 0.0  # equal weights: exact
    # log-normal weights (finite variance): the standard error from one set of K weights
    # matches the spread of log((1/K) sum w) over independent sets
    log_w = 0.8 * rng.standard_normal((2_000, 1_000))
    estimates = np.array([iwae.log_mean_exp(row) for row in log_w])
    errors = np.array([vi.log_mean_weight_standard_error(row) for row in log_w])
    assert np.median(errors) == pytest.approx(estimates.std(), rel=0.1)
    # from the ESS: sqrt(1/ESS - 1/K)
    row = log_w[0]
    expected = np.sqrt(1 / vi.effective_sample_size(row) - 1 / len(row))
    assert vi.log_mean_weight_standard_error(row) == pytest.approx(expected)


def test_total_variance_sums_the_coordinates_and_its_error_is_its_spread(rng):
    estimates = rng.standard_normal((500, 3)) * np.array([1.0, 2.0, 0.5])
    variance, _ = vi.total_variance(estimates)
    assert variance == pytest.approx(estimates.var(axis=0, ddof=1).sum(), rel=1e-12)
    runs = np.array([vi.total_variance(rng.standard_normal((500, 3)) * np.array([1.0, 2.0, 0.5]))
                     for _ in range(1_000)])
    assert runs[:, 0].mean() == pytest.approx(1.0 + 4.0 + 0.25, rel=0.01)  # unbiased (ddof = 1)
    assert np.median(runs[:, 1]) == pytest.approx(runs[:, 0].std(), rel=0.1)
