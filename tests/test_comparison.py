"""The comparison chapter's models and measurements: the Bernoulli mixture and its EM, PPCA's
closed form, the autoencoder, active units of a model with known dead units, and the
amortization gap."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from book import amortization, iwae, latent, mixture, ppca, train
from book.gaussian import gaussian_log_density, standard_normal_log_density
from book.conv_vae import ConvAutoencoder, ConvConfig, ConvVAE


def random_binary(n: int, d: int, seed: int) -> np.ndarray:
    """Binary data with structure: two clusters of pixel probabilities."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.05, 0.95, size=(2, d))
    return (rng.random((n, d)) < centres[rng.integers(0, 2, n)]).astype(float)


# --- the mixture of Bernoullis -----------------------------------------------------------


def brute_force_log_likelihood(m: mixture.BernoulliMixture, x: np.ndarray) -> np.ndarray:
    """log sum_k pi_k prod_d p^x (1 - p)^(1 - x), by explicit loops and products."""
    out = []
    for image in x:
        total = 0.0
        for k in range(len(m.probs)):
            term = np.exp(m.log_weights[k])
            for d, pixel in enumerate(image):
                term *= m.probs[k, d] if pixel else 1 - m.probs[k, d]
            total += term
        out.append(np.log(total))
    return np.array(out)


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_em_never_lowers_its_objective(smoothing):
    x = random_binary(300, 12, seed=0)
    fitted, objective = mixture.fit_mixture(x, 4, iterations=40, smoothing=smoothing,
                                            progress=False)
    assert len(objective) == 41
    assert np.all(np.diff(objective) >= -1e-10), np.diff(objective).min()
    assert objective[-1] > objective[0] + 0.1  # and it does climb
    expected = fitted.log_likelihood(x).mean() + fitted.log_prior(smoothing) / len(x)
    np.testing.assert_allclose(objective[-1], expected, rtol=1e-12)
    if smoothing == 0:  # maximum likelihood: the objective is the log-likelihood itself
        np.testing.assert_allclose(objective[-1], fitted.log_likelihood(x).mean())


def test_mixture_log_likelihood_matches_brute_force_and_sums_to_one():
    x = random_binary(40, 4, seed=1)
    fitted, _ = mixture.fit_mixture(x, 3, iterations=10, smoothing=0.1, progress=False)
    np.testing.assert_allclose(fitted.log_likelihood(x), brute_force_log_likelihood(fitted, x),
                               rtol=1e-12)
    every_image = np.array(list(itertools.product((0.0, 1.0), repeat=4)))  # all 16 of them
    np.testing.assert_allclose(np.exp(fitted.log_likelihood(every_image)).sum(), 1.0,
                               rtol=1e-12)
    resp = fitted.responsibilities(x)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0)


def test_m_step_is_the_smoothed_weighted_average():
    x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    resp = np.array([[1.0, 0.0], [0.5, 0.5], [1.0, 0.0]])
    fitted = mixture.m_step(x, resp, smoothing=1.0)
    np.testing.assert_allclose(np.exp(fitted.log_weights), [5 / 6, 1 / 6])
    # component 0: weights 1, 0.5, 1 -> pixel 0: (1.5 + 1) / (2.5 + 2); pixel 1: (0.5 + 1) / 4.5
    np.testing.assert_allclose(fitted.probs[0], [2.5 / 4.5, 1.5 / 4.5])
    # component 1: weight 0.5 on image 1 only -> (0.5 + 1) / (0.5 + 2) for both pixels
    np.testing.assert_allclose(fitted.probs[1], [1.5 / 2.5, 1.5 / 2.5])
    assert fitted.parameters == 2 * 2 + 1


def test_m_step_maximises_the_expected_log_likelihood_plus_log_prior():
    rng = np.random.default_rng(3)
    x = random_binary(60, 5, seed=3)
    resp = rng.dirichlet(np.ones(3), size=60)

    def objective(m: mixture.BernoulliMixture) -> float:
        expected = np.sum(resp * m.joint(x))  # sum_n sum_k r_nk log p(x_n, k)
        return expected + m.log_prior(0.5)

    best = mixture.m_step(x, resp, smoothing=0.5)
    for _ in range(20):
        probs = np.clip(best.probs + 0.01 * rng.standard_normal(best.probs.shape), 0.01, 0.99)
        weights = np.exp(best.log_weights) * np.exp(0.05 * rng.standard_normal(3))
        other = mixture.BernoulliMixture(np.log(weights / weights.sum()), probs)
        assert objective(other) < objective(best)


def test_an_empty_component_without_smoothing_gives_no_nan():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    fitted = mixture.m_step(x, np.array([[1.0, 0.0], [1.0, 0.0]]), smoothing=0.0)
    assert np.all(np.isfinite(fitted.log_likelihood(x)))
    assert fitted.log_weights[1] == -np.inf


def test_mixture_rejects_grey_levels_and_unflattened_images():
    with pytest.raises(ValueError, match="binarize"):
        mixture.fit_mixture(np.full((5, 4), 0.5), 2, iterations=1, progress=False)
    with pytest.raises(ValueError, match="reshape"):
        mixture.fit_mixture(np.zeros((5, 2, 2)), 2, iterations=1, progress=False)


# --- probabilistic PCA --------------------------------------------------------------------


def low_rank_data(n: int = 2000, d: int = 6, q: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, q))
    return rng.standard_normal((n, q)) @ W.T + 0.3 * rng.standard_normal((n, d)) + 1.0


def test_ppca_log_likelihood_matches_a_dense_multivariate_normal():
    x = low_rank_data()
    fitted = ppca.fit_ppca(x, 2)
    dense = torch.distributions.MultivariateNormal(
        torch.as_tensor(fitted.mean), covariance_matrix=torch.as_tensor(fitted.covariance()))
    np.testing.assert_allclose(fitted.log_likelihood(x[:50]),
                               dense.log_prob(torch.as_tensor(x[:50])).numpy(), rtol=1e-10)


def test_ppca_with_every_direction_is_the_full_covariance_gaussian():
    x = low_rank_data(n=500, seed=4)
    fitted = ppca.fit_ppca(x, 5)  # d = D - 1
    full = torch.distributions.MultivariateNormal(
        torch.as_tensor(x.mean(0)), covariance_matrix=torch.as_tensor(np.cov(x.T, bias=True)))
    np.testing.assert_allclose(fitted.log_likelihood(x[:20]),
                               full.log_prob(torch.as_tensor(x[:20])).numpy(), rtol=1e-9)
    assert fitted.parameters == 6 + 6 * 7 // 2  # a mean and a symmetric covariance
    covariance = np.cov(x.T, bias=True)
    np.testing.assert_allclose(fitted.directions.T @ covariance @ fitted.directions,
                               np.diag(fitted.variances), atol=1e-10)


def test_ppca_closed_form_is_the_maximum_of_the_likelihood():
    x = low_rank_data(seed=1)
    fitted = ppca.fit_ppca(x, 2)
    best = fitted.log_likelihood(x).mean()
    for scale_w, scale_noise in ((1.02, 1.0), (0.98, 1.0), (1.0, 1.03), (1.0, 0.97)):
        other = ppca.PPCA(fitted.mean, fitted.directions,
                          fitted.noise_var + scale_w**2 * (fitted.variances - fitted.noise_var),
                          fitted.noise_var * scale_noise)
        other.variances = other.variances + other.noise_var - fitted.noise_var
        assert other.log_likelihood(x).mean() < best
    shifted = ppca.PPCA(fitted.mean + 0.05, fitted.directions, fitted.variances,
                        fitted.noise_var)
    assert shifted.log_likelihood(x).mean() < best


def test_ppca_posterior_mean_is_the_gaussian_conditional():
    x = low_rank_data(seed=2)
    fitted = ppca.fit_ppca(x, 2)
    W, C = fitted.W, fitted.covariance()
    # E[z | x] = W^T C^-1 (x - m) for the joint Gaussian of (z, x)
    expected = (W.T @ np.linalg.solve(C, (x[:10] - fitted.mean).T)).T
    np.testing.assert_allclose(fitted.posterior_mean(x[:10]), expected, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(W @ W.T + fitted.noise_var * np.eye(6), C)


def test_ppca_needs_noise_and_a_valid_q():
    with pytest.raises(ValueError, match="0 < d < D"):
        ppca.fit_ppca(np.zeros((10, 3)), 3)
    flat = np.repeat(np.arange(10.0)[:, None], 3, axis=1)  # rank 1: no variance beyond d = 1
    with pytest.raises(ValueError, match="dequantize"):
        ppca.fit_ppca(flat, 1)


# --- test observations, the autoencoder -----------------------------------------------------


def test_fixed_observations_are_the_test_draw_every_model_is_scored_on():
    images = torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8)
    model = ConvVAE()
    np.testing.assert_array_equal(
        train.fixed_observations(images, "binary").reshape(20, 1, 28, 28),
        train.observe_test_set(model, images))
    again = train.fixed_observations(images, "binary")
    np.testing.assert_array_equal(again, train.fixed_observations(images, "binary"))


def test_the_autoencoder_has_the_vae_networks_with_one_code_and_no_kl():
    torch.manual_seed(0)
    auto, vae = ConvAutoencoder(), ConvVAE()
    x = torch.rand(5, 1, 28, 28).bernoulli()
    code, logvar = auto.encode(x)
    assert code.shape == (5, 16) and torch.isinf(logvar).all()
    terms = auto(x, torch.randn(5, 16))
    torch.testing.assert_close(terms.recon, -auto.log_likelihood(x, code))
    assert torch.all(terms.kl == 0)
    # the same network, less the log-variance half of the encoder's last layer
    vae_params = sum(p.numel() for p in vae.parameters())
    auto_params = sum(p.numel() for p in auto.parameters())
    assert vae_params - auto_params == (32 * 7 * 7 + 1) * 16


def test_the_one_loop_trains_the_autoencoder():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (256, 28, 28), dtype=torch.uint8)
    auto = ConvAutoencoder(ConvConfig(z_dim=4, channels=(4, 8)))
    history = train.train(auto, images, images[:64], images=768, batch_size=32,
                          progress=False, device="cpu")
    assert history.test[-1].kl == 0
    assert history.test[-1].recon < history.test[0].recon


# --- active units on a model with known dead units -----------------------------------------


def test_active_units_of_a_model_with_known_dead_units():
    torch.manual_seed(0)
    model = ConvVAE(ConvConfig(z_dim=6, channels=(4, 8))).eval()
    x = torch.rand(400, 1, 28, 28).bernoulli()
    head = model.encoder[-1]  # outputs [mu (6), raw logvar (6)]
    with torch.no_grad():
        mu, _ = model.encode(x)
        spread = mu.std(0)
        # scale each mean's row: dims 0, 2, 5 get std 1 (active), dim 3 std 0.05 (variance
        # 0.0025 < 0.01: inactive), dims 1 and 4 constant in x (dead)
        target = torch.tensor([1.0, 0.0, 1.0, 0.05, 0.0, 1.0])
        head.weight[:6] *= (target / spread)[:, None]
        head.bias[:6] = 0.0
        mu, _ = model.encode(x)
    activity = latent.activity(mu.numpy())
    np.testing.assert_allclose(activity, target.numpy() ** 2, rtol=0.02, atol=1e-12)
    assert latent.active_units(mu.numpy()) == 3
    # Burda's criterion is strict: a variance of exactly the threshold is not active
    assert latent.active_units(np.array([[0.0], [1.0]]), threshold=0.25) == 0


# --- the amortization gap -------------------------------------------------------------------


def test_fitting_q_per_example_raises_the_elbo_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = ConvVAE(ConvConfig(z_dim=4, channels=(4, 8))).eval()
    x = torch.rand(6, 1, 28, 28).bernoulli()
    with torch.no_grad():  # a poor encoder: every mean 3 away from the prior's, for no reason
        model.encoder[-1].bias[:4] += 3.0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    encoder = amortization.elbo(model, x, samples=500)
    posterior = amortization.fit_posterior(model, x, steps=100, lr=0.05, progress=False)
    best = amortization.elbo(model, x, posterior, samples=500)
    # the KL alone of a mean 3 away is 4.5 nats per dimension, 18 in all; most of it is won
    assert np.all(best > encoder + 10.0), best - encoder
    assert posterior[0].shape == (6, 4) and posterior[1].shape == (6, 4)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert all(p.requires_grad for p in model.parameters())


def test_elbo_of_the_encoder_is_the_mean_log_weight_and_matches_the_loss_terms():
    torch.manual_seed(1)
    model = ConvVAE(ConvConfig(z_dim=3, channels=(4, 8))).eval()
    with torch.no_grad():  # means 2 away from the prior's: a KL of about 6 nats to get right
        model.encoder[-1].bias[:3] += 2.0
    x = torch.rand(4, 1, 28, 28).bernoulli()
    many = amortization.elbo(model, x, samples=4000)
    with torch.no_grad():
        terms = model(x.repeat(4000, 1, 1, 1), torch.randn(16000, 3))
        log_w = iwae.log_importance_weights(model, x, torch.randn(4000, 4, 3)).double()
    draws = -(terms.recon + terms.kl).reshape(4000, 4).double()
    # two independent Monte Carlo estimates (the log weights' KL is sampled too): their error
    se = torch.sqrt(draws.var(0) / 4000 + log_w.var(0) / 4000).numpy()
    assert torch.all(terms.kl > 4)
    assert np.all(np.abs(many - draws.mean(0).numpy()) < 5 * se)


def test_a_given_posterior_replaces_the_encoder_in_the_weights_and_the_bound():
    torch.manual_seed(2)
    model = ConvVAE(ConvConfig(z_dim=3, channels=(4, 8))).eval()
    x = torch.rand(5, 1, 28, 28).bernoulli()
    eps = torch.randn(7, 5, 3)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        torch.testing.assert_close(iwae.log_importance_weights(model, x, eps, (mu, logvar)),
                                   iwae.log_importance_weights(model, x, eps))
        shifted = iwae.log_importance_weights(model, x, eps, (mu + 1, logvar))
        z = mu + 1 + torch.exp(logvar / 2) * eps
        by_hand = (model.log_likelihood(x, z) + standard_normal_log_density(z)
                   - gaussian_log_density(z, mu + 1, logvar))
        torch.testing.assert_close(shifted, by_hand)
    np.testing.assert_allclose(iwae.iwae_bound(model, x, 50, posterior=(mu, logvar)),
                               iwae.iwae_bound(model, x, 50))
