"""The appendix's claims, proved: every check it names fails on its variant of
``book/mistakes.py`` and passes on the book's correct code (seeded, small, seconds each).
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from book import data, iwae, latent, mistakes, train
from book.conv_vae import ConvConfig, ConvVAE, bits_per_dimension
from book.gaussian import (bounded_logvar, gaussian_log_density, kl_to_standard_normal,
                           reparameterize)
from book.history import Divergence, ELBOTerms, TrainingDiverged
from book.numpy_vae import VAE, Architecture, gradient_check
from book.torch_mlp_vae import MLPConfig, TorchVAE
from tools.chapters import ROOT

SMALL = MLPConfig(hidden=128, z_dim=8)
MLP = MLPConfig(hidden=256, z_dim=16)  # the appendix's
RECIPE = dict(batch_size=100, lr=1e-3, seed=0, device="cpu", progress=False)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The first 3,000 training and 300 test digits of the tests' MNIST (uint8)."""
    try:
        train_images, _ = data.load_dataset("mnist", "train", download=False, verbose=False)
        test_images, _ = data.load_dataset("mnist", "test", download=False, verbose=False)
    except data.DatasetError as error:
        pytest.skip(f"MNIST is not available offline: {error}")
    return train_images[:3000], test_images[:300]


@pytest.fixture(scope="module")
def binary_test(digits) -> torch.Tensor:
    return train.fixed_observations(digits[1], "binary").flatten(1)


def fit(model, digits, images: int = 4000, **options):
    train.train(model, *digits, images=images, **{**RECIPE, **options})
    return model.eval()


@pytest.fixture(scope="module")
def reference(digits) -> mistakes.VariantVAE:
    """The book's MLP VAE (a VariantVAE with no variant), trained on 4,000 images."""
    return fit(mistakes.VariantVAE(SMALL, seed=0), digits)


def codes(model, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        mu, logvar = model.encode(x)
    return mu.double().numpy(), logvar.double().numpy()


# --- the module itself ------------------------------------------------------------------------


def test_nothing_else_in_book_imports_the_mistakes():
    """Only ``book/exercises.py``, on top of it (its faults are the checkers' hints), and nothing
    in ``book/`` imports that either."""
    for path in sorted((ROOT / "book").glob("*.py")):
        if path.name not in ("mistakes.py", "exercises.py"):
            assert not re.search(r"\b(mistakes|exercises)\b", path.read_text()), path.name


def test_a_variant_with_no_variant_is_the_book_s_model():
    x = data.binarize(np.random.default_rng(0).random((16, 784), dtype=np.float32), 1)
    x, eps = torch.as_tensor(x), torch.randn(16, SMALL.z_dim)
    variant, book = mistakes.VariantVAE(SMALL, seed=3), TorchVAE(SMALL, seed=3)
    for a, b in zip(variant(x, eps).__dict__.values(), book(x, eps).__dict__.values()):
        assert torch.equal(a, b)
    copy = variant.book_model()
    assert type(copy) is TorchVAE and torch.equal(copy(x, eps).recon, book(x, eps).recon)
    strong = mistakes.StrongDecoderVAE(SMALL, seed=3)  # its context starts at zero
    assert torch.allclose(strong(x, eps).recon, book(x, eps).recon, atol=1e-4)


# --- the reconstruction averaged over pixels: beta = 784, caught by the KL per dimension ------


def test_the_pixel_mean_is_beta_784_and_the_kl_per_dimension_catches_it(digits, reference,
                                                                         binary_test):
    x, eps = binary_test[:50], torch.randn(50, SMALL.z_dim)
    buggy = mistakes.VariantVAE(SMALL, seed=0, recon=mistakes.pixel_mean_reconstruction)
    with torch.no_grad():
        wrong, right = buggy(x, eps), buggy.book_model()(x, eps)
    assert torch.allclose(784 * (wrong.recon + wrong.kl), right.recon + 784 * right.kl,
                          rtol=1e-5)
    fit(buggy, digits)
    mu_buggy, logvar_buggy = codes(buggy, binary_test)
    mu_right, logvar_right = codes(reference, binary_test)
    assert latent.active_units(mu_buggy) <= 1  # caught: the code is switched off
    assert latent.kl_per_dimension(mu_buggy, logvar_buggy).max() < 0.01
    assert latent.active_units(mu_right) >= SMALL.z_dim // 2  # the book's: a code
    assert latent.kl_per_dimension(mu_right, logvar_right).sum() > 3


# --- the KL's formula and the sampler: caught by a Monte Carlo KL -----------------------------


@pytest.fixture(scope="module")
def q() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(0, 0.8, 8), rng.normal(-1, 0.8, 8), rng.standard_normal((20_000, 8))


@pytest.mark.parametrize("kl, sample", [
    (mistakes.kl_wrong_sign, reparameterize),
    (mistakes.kl_exp_variance, reparameterize),
    (mistakes.kl_for_log_std, reparameterize),
    (kl_to_standard_normal, mistakes.reparameterize_with_variance)],
    ids=["wrong sign", "exp(sigma^2)", "KL for log sigma", "sigma^2 for sigma"])
def test_a_monte_carlo_kl_catches_every_wrong_kl_and_sampler(q, kl, sample):
    assert abs(mistakes.kl_standard_errors(kl, sample, *q)) > 20
    assert abs(mistakes.kl_standard_errors(kl_to_standard_normal, reparameterize, *q)) < 4


def test_the_variants_agree_with_the_book_where_they_go_unnoticed():
    mu, zero, eps = np.array([0.3, -1.2]), np.zeros(2), np.array([0.7, -0.4])
    assert np.allclose(mistakes.reparameterize_with_variance(mu, zero, eps),
                       reparameterize(mu, zero, eps))  # at sigma = 1
    assert mistakes.kl_wrong_sign(zero, zero) == kl_to_standard_normal(zero, zero) == 0
    logvar = np.array([-2.0, 1.5])
    assert np.isclose(mistakes.kl_wrong_sign(mu, logvar), -kl_to_standard_normal(mu, logvar))
    torch_value = mistakes.kl_exp_variance(torch.tensor(mu), torch.tensor(logvar))
    assert np.isclose(torch_value.item(), mistakes.kl_exp_variance(mu, logvar))


def test_a_loss_of_binary_digits_below_zero_catches_the_wrong_sign(digits, reference):
    history = train.train(mistakes.VariantVAE(MLP, seed=0, kl=mistakes.kl_wrong_sign),
                          *digits, images=4000, **RECIPE)
    assert history.test[-1].neg_elbo < 0  # impossible: -log p(x) >= 0 for binary data
    assert train.evaluate(reference, train.observe_test_set(reference, torch.as_tensor(
        digits[1]))).neg_elbo > 0


def test_the_gradient_check_catches_a_sampler_changed_without_its_derivative():
    tiny = Architecture(x_dim=20, hidden=8, z_dim=3)
    rng = np.random.default_rng(1)
    x, eps = (rng.random((5, 20)) < 0.3).astype(np.float64), rng.standard_normal((5, 3))
    book = gradient_check(VAE(tiny, seed=0, dtype=np.float64), x, eps)
    buggy = gradient_check(mistakes.VarianceSampledVAE(tiny, seed=0, dtype=np.float64), x,
                           eps)
    assert max(book.values()) < 1e-6
    assert min(buggy[k] for k in ("W1", "b1", "W2", "b2")) > 1e-3  # every encoder gradient
    assert max(buggy[k] for k in ("W3", "b3", "W4", "b4")) < 1e-6  # the decoder's are right


def test_a_model_trained_with_the_variance_sampler_reports_a_better_elbo_than_it_has(
        digits, binary_test):
    buggy = mistakes.VariantVAE(SMALL, seed=0, sample=mistakes.reparameterize_with_variance)
    fit(buggy, digits)
    reported = train.evaluate(buggy, binary_test).neg_elbo
    honest = train.evaluate(buggy.book_model(), binary_test).neg_elbo
    assert reported < honest - 1


# --- gray levels for a Bernoulli likelihood: caught by the likelihood's domain ----------------


def test_the_likelihood_s_domain_catches_gray_levels(digits, reference):
    grey = train.fixed_observations(digits[1], "grey").flatten(1)
    with pytest.raises(ValueError, match="binary pixels"):
        data.require_binary(grey)
    with pytest.raises(ValueError, match="binary pixels"):
        reference(grey, torch.zeros(len(grey), SMALL.z_dim))  # the book's likelihood
    with pytest.raises(ValueError, match="cannot be trained or scored on 'grey'"):
        train.train(mistakes.VariantVAE(SMALL), *digits, images=10, observation="grey",
                    **RECIPE)
    wrong = mistakes.bernoulli_on_grey(grey, torch.zeros_like(grey))  # no refusal
    assert torch.isfinite(wrong).all()
    data.require_binary(train.fixed_observations(digits[1], "binary"))  # binary: accepted
    # what copying the gray levels scores: below any model of binary digits
    p = grey.double().clamp(1e-12, 1 - 1e-12)
    floor = -(p * p.log() + (1 - p) * (1 - p).log()).sum(-1)
    assert torch.allclose(mistakes.bernoulli_on_grey(grey.double(), torch.logit(p)), floor)
    assert floor.mean() < 86.76


# --- Gaussian decoders: a fixed sigma_x (MSE), and sigma_x without a floor --------------------


def test_mse_times_a_weight_is_a_gaussian_with_a_fixed_sigma_x():
    x = torch.rand(3, 784, generator=torch.Generator().manual_seed(0))
    for weight in (1.0, 50.0):
        logvar = torch.full_like(x, 2 * math.log(mistakes.mse_sigma(weight)))
        gaps = [mistakes.mse_reconstruction(x, mean, weight)
                + gaussian_log_density(x, mean, logvar) for mean in (x * 0, x ** 2, 1 - x)]
        assert torch.allclose(gaps[0], gaps[1], atol=1e-2)
        assert torch.allclose(gaps[0], gaps[2], atol=1e-2)
    # F.mse_loss's default mean over the pixels: the weight 1 / D, sigma_x = sqrt(D / 2)
    logvar = torch.full_like(x, 2 * math.log(mistakes.mse_sigma(1 / 784)))
    gaps = [mistakes.mse_mean_reconstruction(x, mean) + gaussian_log_density(x, mean, logvar)
            for mean in (x * 0, x ** 2, 1 - x)]
    assert torch.allclose(gaps[0], gaps[1], atol=1e-2)
    assert torch.allclose(gaps[0], gaps[2], atol=1e-2)
    assert math.isclose(mistakes.mse_sigma(1 / 784), math.sqrt(784 / 2))


def test_bits_per_dimension_above_the_uniform_s_8_catch_plain_mse(digits):
    x = train.fixed_observations(digits[1], "dequantized").unsqueeze(1)
    mse = mistakes.FixedSigmaVAE(mistakes.mse_sigma(1.0), seed=0)
    book = ConvVAE(ConvConfig(likelihood="gaussian"), seed=0)
    for model in (mse, book):
        fit(model, digits, images=3000, batch_size=64, lr=2e-3)
    assert bits_per_dimension(train.evaluate(mse, x).neg_elbo) > 8  # whatever the mean
    assert bits_per_dimension(train.evaluate(book, x).neg_elbo) < 8


def test_the_densest_pixel_above_log_256_catches_sigma_x_without_a_floor(digits):
    sigma_min = {"book": ConvConfig(likelihood="gaussian").sigma_floor,
                 "no floor": mistakes.without_floor().sigma_floor}
    with np.errstate(divide="ignore"):  # the most a pixel can score
        most = {k: -np.log(v * math.sqrt(2 * math.pi)) for k, v in sigma_min.items()}
    assert np.isclose(most["book"], math.log(256)) and most["no floor"] == np.inf
    model = ConvVAE(mistakes.without_floor(), seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    draw = torch.Generator().manual_seed(0)
    x = train.observe(model, torch.as_tensor(digits[0][:2000]), draw, "grey")
    densest = []
    for step in range(120):
        batch = x[torch.randint(0, len(x), (64,), generator=draw)]
        eps = torch.randn(64, model.z_dim, generator=draw)
        try:
            train.train_step(model, optimizer, batch, eps, 1.0, Divergence())
        except TrainingDiverged:  # sigma_x reached 0: NaN, caught as well
            densest.append(math.inf)
            break
        if step % 4 == 3:
            densest.append(mistakes.densest_pixel(model, batch))
    assert max(densest) > math.log(256)  # caught
    book = fit(ConvVAE(ConvConfig(likelihood="gaussian"), seed=0), digits, images=2000,
               batch_size=64, lr=2e-3)
    x_deq = train.fixed_observations(digits[1], "dequantized").unsqueeze(1)
    assert mistakes.densest_pixel(book, x_deq) <= math.log(256) + 1e-4


# --- an unbounded log-variance: caught by the training loops' Divergence ----------------------


def test_an_unbounded_log_variance_overflows_where_the_bounded_one_does_not():
    raw = torch.tensor([89.0])
    assert torch.isinf(kl_to_standard_normal(torch.zeros(1), mistakes.unbounded_logvar(raw)))
    assert torch.isfinite(kl_to_standard_normal(torch.zeros(1), bounded_logvar(raw)))


def test_divergence_stops_the_unbounded_log_variance_and_not_the_bounded_one(digits):
    x = train.observe(TorchVAE(MLP), torch.as_tensor(digits[0][:1000]),
                      torch.Generator().manual_seed(0))

    def steps(model, count=6, lr=1.0):  # far too large a step: watched for non-finite loss
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        draw = torch.Generator().manual_seed(0)
        for _ in range(count):
            batch = x[torch.randint(0, len(x), (100,), generator=draw)]
            train.train_step(model, optimizer, batch,
                             torch.randn(100, MLP.z_dim, generator=draw), 1.0, Divergence())

    with pytest.raises(TrainingDiverged, match="loss is (inf|nan) nats"):
        steps(mistakes.VariantVAE(MLP, seed=0, logvar=mistakes.unbounded_logvar))
    steps(mistakes.VariantVAE(MLP, seed=0))  # bounded: finite, not stopped


# --- posterior collapse and the prior's holes: caught by the KL per dimension, the aggregate --


def test_the_kl_per_dimension_shows_the_strong_decoder_s_code_carrying_less(digits, reference,
                                                                            binary_test):
    strong = fit(mistakes.StrongDecoderVAE(SMALL, seed=0), digits)
    mu, logvar = codes(strong, binary_test)
    mu_ref, logvar_ref = codes(reference, binary_test)
    assert (latent.kl_per_dimension(mu, logvar).sum()
            < latent.kl_per_dimension(mu_ref, logvar_ref).sum())
    assert (train.evaluate(strong, binary_test).recon
            < train.evaluate(reference, binary_test).recon)


def test_the_aggregate_posterior_catches_the_kl_divided_by_the_data_set(digits, binary_test):
    plane = MLPConfig(hidden=128, z_dim=2)
    beta = mistakes.dataset_normalized_beta(100, len(digits[0]))
    book = fit(mistakes.VariantVAE(plane, seed=0), digits)
    buggy = fit(mistakes.VariantVAE(plane, seed=0), digits, beta=beta)
    z = np.random.default_rng(0).standard_normal((1000, 2))
    share = {name: mistakes.hole_share(*codes(model, binary_test), z)
             for name, model in (("book", book), ("buggy", buggy))}
    assert share["buggy"] > max(0.5, share["book"])


# --- normalization: caught by the same examples in batches of other sizes ---------------------


def test_the_loss_per_image_must_not_change_with_the_batch_or_the_data_set(reference,
                                                                          binary_test):
    with torch.no_grad():
        terms = reference(binary_test[:100], torch.randn(100, SMALL.z_dim))
    halves = [ELBOTerms(terms.recon[i:i + 50], terms.kl[i:i + 50]) for i in (0, 50)]
    assert np.isclose(terms.loss.item(), np.mean([h.loss.item() for h in halves]))
    assert np.isclose(mistakes.batch_sum_loss(terms).item(),
                      2 * np.mean([mistakes.batch_sum_loss(h).item() for h in halves]))
    per_data_set = [mistakes.dataset_normalized_loss(terms, n).item() for n in (8000, 60_000)]
    assert not np.isclose(*per_data_set)
    beta = mistakes.dataset_normalized_beta(100, 60_000)
    assert torch.isclose(mistakes.dataset_normalized_loss(terms, 60_000),
                         (terms.recon + beta * terms.kl).mean())


# --- evaluation: in training mode, and with one z ---------------------------------------------


def test_the_same_evaluation_twice_catches_evaluation_in_training_mode(binary_test):
    model = mistakes.DropoutVAE(SMALL, seed=0).eval()
    wrong = [mistakes.evaluate_in_training_mode(model, binary_test).neg_elbo for _ in "ab"]
    right = [train.evaluate(model, binary_test).neg_elbo for _ in "ab"]
    assert wrong[0] != wrong[1]
    assert right[0] == right[1]
    assert not model.training  # the mode it was in is restored


def test_the_iwae_curve_catches_one_noisy_z_reported_as_the_likelihood(reference,
                                                                       binary_test):
    x = binary_test[:100]
    one_z = mistakes.one_z_nll(reference, x)
    many = -iwae.iwae_bound(reference, x, 100, seed=0)
    gap = one_z - many
    assert gap.mean() > 3 * gap.std(ddof=1) / math.sqrt(len(gap))
    more = -iwae.iwae_bound(reference, x, 200, seed=1)
    assert abs(more.mean() - many.mean()) < gap.mean() / 3  # the curve has flattened
