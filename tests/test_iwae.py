"""book.iwae: the IWAE bound against the exact log p(x) of the linear-Gaussian model,
in NumPy and in PyTorch."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from book import iwae
from book.checks import mean_and_standard_error
from book.numpy_vae import VAE, Architecture
from book.torch_mlp_vae import TorchVAE
from book.vi import LinearGaussianModel

D_LATENT, D_DATA = 3, 8


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def linear_model(rng) -> LinearGaussianModel:
    # s = 0.5: the latents are correlated given x; the mean-field q misses the posterior
    return LinearGaussianModel.random(rng, D_LATENT, D_DATA, s=0.5)


def exact_log_px(model: LinearGaussianModel, x: np.ndarray) -> np.ndarray:
    return np.array([model.log_evidence(row) for row in x])


def diagonal_elbo(model: LinearGaussianModel, x: np.ndarray) -> np.ndarray:
    """The closed-form ELBO of the model's own encoder q(z | x) for every row of x."""
    mean, logvar = model.encode(x)
    return np.array([model.elbo(row, m, np.diag(np.exp(lv)))
                     for row, m, lv in zip(x, mean, logvar)])


# --- log_mean_exp ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_log_mean_exp_matches_the_naive_formula_and_does_not_overflow(kind, rng):
    as_kind = torch.from_numpy if kind == "torch" else np.asarray
    small = rng.standard_normal((4, 6))
    for axis in (0, 1, -1):
        naive = np.log(np.mean(np.exp(small), axis=axis))
        got = np.asarray(iwae.log_mean_exp(as_kind(small), axis=axis))
        np.testing.assert_allclose(got, naive, rtol=1e-13)
    # exp(1000) overflows; the answer is 1000 + log((1 + e^-1 + e^-2) / 3)
    big = as_kind(np.array([1000.0, 999.0, 998.0]))
    expected = 1000.0 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3)
    assert float(iwae.log_mean_exp(big)) == pytest.approx(expected, rel=1e-14)
    # all weights but one underflow to 0: the mean is that one weight over n
    lopsided = as_kind(np.array([-1000.0, -3000.0, -3000.0, -3000.0]))
    expected = -1000.0 - math.log(4)
    assert float(iwae.log_mean_exp(lopsided)) == pytest.approx(expected, rel=1e-14)


def test_log_mean_exp_of_a_vector_is_a_scalar():
    assert isinstance(iwae.log_mean_exp(np.zeros(5)), float)  # np.float64 is a float
    assert iwae.log_mean_exp(torch.zeros(5)).shape == ()


# --- The bound against the exact linear-Gaussian model --------------------------------

def test_with_the_exact_posterior_as_q_every_draw_gives_log_px_exactly(rng):
    """W with orthogonal columns makes the posterior diagonal, so the encoder is exact:
    every weight is p(x), and log p_K(x) = log p(x) for every K (- log K included)."""
    Q = np.linalg.qr(rng.standard_normal((D_DATA, D_LATENT)))[0]
    W = Q * np.array([0.5, 1.0, 2.0])
    model = LinearGaussianModel(W=W, b=rng.standard_normal(D_DATA), s=0.7)
    x = model.sample(rng, 6)[1]
    for K in (1, 7):
        np.testing.assert_allclose(iwae.iwae_bound(model, x, K, seed=K),
                                   exact_log_px(model, x), rtol=0, atol=1e-10)


def test_single_sample_bound_is_an_unbiased_estimate_of_the_elbo(linear_model, rng):
    x = linear_model.sample(rng, 4)[1]
    repeated = np.repeat(x, 5000, axis=0)  # 5,000 independent draws for each x
    bound = iwae.iwae_bound(linear_model, repeated, K=1, seed=1).reshape(4, 5000)
    estimate, se = mean_and_standard_error(bound.T)
    elbo = diagonal_elbo(linear_model, x)
    assert np.all(np.abs(estimate - elbo) < 4 * se)
    # ... and this test can tell: the ELBO is many standard errors below log p(x)
    assert np.all(exact_log_px(linear_model, x) - elbo > 20 * se)


def test_bound_rises_with_K_towards_log_px(linear_model, rng):
    x = np.repeat(linear_model.sample(rng, 25)[1], 20, axis=0)  # 25 points, 20 times
    exact = exact_log_px(linear_model, x)
    below = {K: iwae.iwae_bound(linear_model, x, K, seed=K) - exact
             for K in (1, 10, 100, 1000)}
    means = [b.mean() for b in below.values()]
    print("mean log p_K(x) - log p(x), K = 1, 10, 100, 1000:", np.round(means, 4))
    for small, large in zip(list(below.values()), list(below.values())[1:]):
        rise, se = mean_and_standard_error(large - small)
        assert rise > 3 * se
    mean, se = mean_and_standard_error(below[1000])
    assert mean < 3 * se  # still a lower bound, in expectation
    assert mean > -0.02


def test_bound_reaches_log_px_at_K_10_000(linear_model, rng):
    x = linear_model.sample(rng, 20)[1]
    exact = exact_log_px(linear_model, x)
    error = iwae.iwae_bound(linear_model, x, 10_000, seed=2) - exact
    assert abs(error.mean()) < 0.05
    assert np.all(np.abs(error) < 0.2)
    gap_at_K1 = exact - diagonal_elbo(linear_model, x)
    assert np.all(np.abs(error) < gap_at_K1)  # the diagonal q's gap closes


def test_estimate_is_the_mean_and_standard_error_over_examples(linear_model, rng):
    x = linear_model.sample(rng, 30)[1]
    bound = iwae.iwae_bound(linear_model, x, 50, seed=3)
    mean, se = iwae.iwae_estimate(linear_model, x, 50, seed=3)
    assert mean == pytest.approx(bound.mean(), rel=1e-14)
    assert se == pytest.approx(bound.std(ddof=1) / math.sqrt(30), rel=1e-12)


# --- Chunks and seeds, on a small NumPy VAE -------------------------------------------

TINY = Architecture(x_dim=20, hidden=8, z_dim=2)


@pytest.fixture
def vae_and_x(rng) -> tuple[VAE, np.ndarray]:
    x = (rng.random((9, TINY.x_dim)) < 0.3) * 1.0
    return VAE(TINY, seed=0, dtype=np.float64), x


def test_chunked_result_equals_the_unchunked_one(vae_and_x):
    model, x = vae_and_x
    whole = iwae.iwae_bound(model, x, 50, seed=4, chunk_size=50, batch_size=9)
    for chunk_size, batch_size in ((7, 9), (1, 2), (50, 4), (13, 1)):
        chunked = iwae.iwae_bound(model, x, 50, seed=4, chunk_size=chunk_size,
                                  batch_size=batch_size)
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-10)
    default = iwae.iwae_bound(model, x, 50, seed=4)
    np.testing.assert_allclose(default, whole, rtol=0, atol=1e-10)


def test_default_chunks_keep_a_large_K_within_the_memory_budget(vae_and_x, monkeypatch):
    model, x = vae_and_x
    calls = []
    log_likelihood = model.log_likelihood
    monkeypatch.setattr(model, "log_likelihood",
                        lambda x, z: calls.append(z.shape) or log_likelihood(x, z))
    for budget in (TINY.x_dim * 9 * 16, TINY.x_dim * 4):  # 16 draws of 9; 1 draw of 4
        calls.clear()
        monkeypatch.setattr(iwae, "MAX_CHUNK_ELEMENTS", budget)
        iwae.iwae_bound(model, x, 100, seed=0)
        assert max(s * n * TINY.x_dim for s, n, _ in calls) <= budget
        assert sum(s * n for s, n, _ in calls) == 100 * len(x)  # each draw of each x


def test_seed_fixes_the_draws(vae_and_x):
    model, x = vae_and_x
    first, again = (iwae.iwae_bound(model, x, 5, seed=5) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, iwae.iwae_bound(model, x, 5, seed=6))


def test_float32_and_float64_models_see_the_same_noise(vae_and_x):
    model, x = vae_and_x
    model32 = VAE(TINY, seed=0, dtype=np.float32)
    bound32, bound64 = iwae.iwae_bound(model32, x, 20), iwae.iwae_bound(model, x, 20)
    assert bound32.dtype == np.float64
    np.testing.assert_allclose(bound32, bound64, rtol=0, atol=1e-4)


# --- PyTorch --------------------------------------------------------------------------

class TorchProtocol:
    """``TorchVAE`` with the model protocol; it notes whether autograd is on."""

    def __init__(self, model: VAE, device: str):
        self.net = TorchVAE.from_numpy(model).to(device)
        self.grad_enabled: list[bool] = []

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.net.encode(x)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net.log_likelihood(x, z)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_torch_model_gives_the_numpy_weights_for_the_same_noise(vae_and_x, rng, device):
    model, x = vae_and_x
    eps = rng.standard_normal((6, len(x), TINY.z_dim))
    torch_model = TorchProtocol(model, device)
    as_tensor = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    log_w = iwae.log_importance_weights(torch_model, as_tensor(x), as_tensor(eps))
    np.testing.assert_allclose(log_w.detach().cpu().numpy(),
                               iwae.log_importance_weights(model, x, eps),
                               rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_bound_agrees_with_the_numpy_bound(vae_and_x, rng, device):
    model, _ = vae_and_x
    x = (rng.random((300, TINY.x_dim)) < 0.3) * 1.0
    torch_model = TorchProtocol(model, device)
    on_device = torch.from_numpy(x).to(device)
    bound = iwae.iwae_bound(torch_model, on_device, 10, seed=7, chunk_size=4)
    assert isinstance(bound, np.ndarray)
    assert bound.dtype == np.float64 and bound.shape == (300,)
    assert not any(torch_model.grad_enabled)  # ran under torch.no_grad()
    again = iwae.iwae_bound(torch_model, on_device, 10, seed=7, chunk_size=4)
    np.testing.assert_array_equal(bound, again)
    # other noise than NumPy's: the two agree per example within Monte Carlo error
    numpy_bound = iwae.iwae_bound(model, x, 10, seed=7)
    difference, se = mean_and_standard_error(bound - numpy_bound)
    assert abs(difference) < 4 * se
    mean, se = iwae.iwae_estimate(torch_model, on_device, 10, seed=7, chunk_size=4)
    assert mean == pytest.approx(bound.mean(), rel=1e-14)
