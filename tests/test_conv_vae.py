"""The convolutional VAE and the book's one PyTorch training loop: shapes, errors, checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from book import train as training
from book.conv_vae import ConvConfig, ConvVAE, bits_per_dimension
from book.gaussian import LOGVAR_BOUND
from book.gaussian import gaussian_log_density
from book.iwae import iwae_estimate

SMALL = ConvConfig(z_dim=4, channels=(4, 8))


class Payload:
    """An object a checkpoint must not carry: loading it would run pickled code."""


def images(n: int, seed: int = 0) -> np.ndarray:
    """uint8 'digits': a bright bar at a random place on a dark 28 x 28 square, plus noise."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 30, (n, 28, 28), dtype=np.uint8)
    for k, row in enumerate(rng.integers(4, 24, n)):
        out[k, row - 2:row + 2, 4:24] = 230
    return out


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_layer_shapes(likelihood):
    model = ConvVAE(ConvConfig(z_dim=3, channels=(5, 7), likelihood=likelihood))
    x = training.observe(model, torch.as_tensor(images(6)), torch.Generator().manual_seed(0))
    assert x.shape == (6, 1, 28, 28)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (6, 3)
    out = model.decode(mu)
    if likelihood == "bernoulli":
        assert out.shape == (6, 1, 28, 28)
    else:
        assert out[0].shape == out[1].shape == (6, 1, 28, 28)
    terms = model(x, torch.randn(6, 3))
    assert terms.recon.shape == terms.kl.shape == (6,)
    assert model.log_likelihood(x, torch.randn(5, 6, 3)).shape == (5, 6)


def test_wrong_shapes_say_what_was_given_and_what_is_expected():
    model = ConvVAE(SMALL)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\), got \(2, 784\).*view"):
        model.encode(torch.zeros(2, 784))
    with pytest.raises(ValueError, match=r"got \(2, 28, 28\).*unsqueeze"):
        model.encode(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match=r"float images, got torch.uint8.*book.data.observe"):
        model.encode(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"eps must have shape \(2, 4\), got \(2, 3\)"):
        model(torch.zeros(2, 1, 28, 28), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="uint8 images of shape"):
        training.train(model, np.zeros((4, 28, 28)), images(4), images=4, progress=False)
    with pytest.raises(ValueError, match="likelihood must be"):
        ConvConfig(likelihood="poisson")


def test_bernoulli_log_likelihood_is_the_sum_over_pixels():
    torch.manual_seed(0)
    model = ConvVAE(SMALL)
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.3))
    z = torch.randn(3, 4)
    p = torch.sigmoid(model.decode(z))
    expected = (x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(-1)
    torch.testing.assert_close(model.log_likelihood(x, z), expected, rtol=1e-5, atol=1e-3)


def test_gaussian_decoder_is_a_density_with_sigma_above_its_floor():
    torch.manual_seed(0)
    config = ConvConfig(z_dim=4, channels=(4, 8), likelihood="gaussian", sigma_floor=0.05)
    model = ConvVAE(config)
    with torch.no_grad():  # push the raw sigma output far down: the floor must hold
        model.decoder[-1].bias[1] = -50.0
    z = torch.randn(7, 4)
    mean, logvar = model.decode(z)
    sigma = torch.exp(0.5 * logvar)  # logvar must be log sigma^2, not log sigma
    assert sigma.min().item() == pytest.approx(0.05, rel=1e-5)
    raw = model.decoder(z)[:, 1:]
    torch.testing.assert_close(sigma, 0.05 + torch.nn.functional.softplus(raw))
    assert ((mean > 0) & (mean < 1)).all()
    x = torch.rand(7, 1, 28, 28)
    normal = torch.distributions.Normal(mean, 0.05 + torch.nn.functional.softplus(raw))
    expected = normal.log_prob(x).flatten(1).sum(-1)
    torch.testing.assert_close(model.log_likelihood(x, z), expected, rtol=1e-5, atol=1e-2)


def test_the_default_floor_caps_a_pixel_density_at_256():
    floor = ConvConfig().sigma_floor
    peak = 1 / (floor * np.sqrt(2 * np.pi))  # the largest value of N(x; mu, floor^2)
    assert peak == pytest.approx(256)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_a_batch_of_codes_scores_like_one_code_at_a_time(likelihood):
    torch.manual_seed(0)
    model = ConvVAE(ConvConfig(z_dim=4, channels=(4, 8), likelihood=likelihood))
    x = training.observe(model, torch.as_tensor(images(5)), torch.Generator().manual_seed(0))
    z = torch.randn(3, 5, 4)
    batched = model.log_likelihood(x, z)
    one_by_one = torch.stack([torch.stack([model.log_likelihood(x[n:n + 1], z[s, n:n + 1])[0]
                                           for n in range(5)]) for s in range(3)])
    torch.testing.assert_close(batched, one_by_one, rtol=1e-5, atol=1e-3)


def test_encoder_log_variance_is_bounded():
    model = ConvVAE(SMALL)
    with torch.no_grad():
        model.encoder[-1].bias[4:] = 1e6  # the log-variance half of the head
    _, logvar = model.encode(torch.zeros(2, 1, 28, 28))
    assert torch.isfinite(logvar).all() and logvar.max().item() <= LOGVAR_BOUND


def test_observations_are_binary_or_dequantized():
    images_u8 = torch.as_tensor(images(50))
    generator = torch.Generator().manual_seed(0)
    binary = training.observe(ConvVAE(SMALL), images_u8, generator)
    assert binary.shape == (50, 1, 28, 28)
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert abs(binary.mean().item() - images_u8.float().mean().item() / 255) < 0.01
    dequantized = training.observe(ConvVAE(ConvConfig(likelihood="gaussian")), images_u8,
                                   generator)
    pixel = images_u8.unsqueeze(1).float()
    assert ((dequantized * 256 >= pixel) & (dequantized * 256 < pixel + 1)).all()


def test_bits_per_dimension_of_a_uniform_density_is_eight():
    # the uniform density on [0, 1)^784 has log p = 0: 8 bits for each of 256 gray levels
    assert bits_per_dimension(0.0) == pytest.approx(8.0)
    assert bits_per_dimension(-784 * np.log(2)) == pytest.approx(7.0)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_short_training_improves_the_test_elbo_without_nan(likelihood):
    model = ConvVAE(ConvConfig(z_dim=4, channels=(8, 16), likelihood=likelihood))
    x_test = training.observe_test_set(model, torch.as_tensor(images(100, seed=1)))
    before = training.evaluate(model, x_test).neg_elbo
    history = training.train(model, images(600), images(100, seed=1), images=3600, lr=3e-3,
                             batch_size=50, seed=0, device="cpu", progress=False)
    after = history.test[-1].neg_elbo
    assert np.isfinite(history.curve("test")).all() and np.isfinite(history.curve("train")).all()
    margin = 100 if likelihood == "bernoulli" else 300  # nats per image
    assert after < before - margin, (before, history.curve("test"))
    assert history.test[-1].kl > 0.5  # the code is used


def seeded_model(config: ConvConfig = SMALL, seed: int = 0) -> ConvVAE:
    torch.manual_seed(seed)  # the initial weights
    return ConvVAE(config)


def test_training_is_reproducible_and_records_every_eval_every_images():
    runs = [training.train(seeded_model(), images(200), images(50, 1), images=600, seed=3,
                           batch_size=50, eval_every=200, device="cpu", progress=False)
            for _ in range(2)]
    assert runs[0].test == runs[1].test
    assert runs[0].epochs == [1, 2, 3] and runs[0].images == [200, 400, 600]


@pytest.mark.parametrize("n_train", [120, 500])
def test_the_budget_is_images_whatever_the_training_set(n_train):
    """The same budget processes the same images on a small and a large training set: the
    last pass stops part-way, and a default run records twenty evaluations."""
    seen = []
    real_step = training.train_step

    def counting_step(model, optimizer, x, eps, kl_weight=1.0, divergence=None):
        seen.append(len(x))
        return real_step(model, optimizer, x, eps, kl_weight, divergence)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "train_step", counting_step)
        history = training.train(seeded_model(), images(n_train), images(20, 1), images=1030,
                                 batch_size=50, device="cpu", progress=False)
    assert sum(seen) == 1030 and history.images[-1] == 1030
    assert history.epochs[-1] == pytest.approx(1030 / n_train)
    assert len(history.images) == 20 and history.images[0] >= 1030 // 20


def test_kl_weight_warms_up_linearly():
    assert training.kl_weight(0, 2.0, 10) == 0.0
    assert training.kl_weight(5, 2.0, 10) == pytest.approx(1.0)
    assert training.kl_weight(10, 2.0, 10) == training.kl_weight(99, 2.0, 10) == 2.0
    assert training.kl_weight(0, 2.0, 0) == 2.0  # no warm-up
    with pytest.raises(ValueError, match="images must be at least 1"):
        training.train(ConvVAE(SMALL), images(10), images(5), images=0, progress=False)
    with pytest.raises(ValueError, match="give a budget"):
        training.train(ConvVAE(SMALL), images(10), images(5), progress=False)


def test_cosine_learning_rate_falls_from_lr_to_zero():
    assert training.learning_rate(2e-3, "constant", 0.7) == 2e-3
    assert training.learning_rate(2e-3, "cosine", 0.0) == pytest.approx(2e-3)
    assert training.learning_rate(2e-3, "cosine", 0.5) == pytest.approx(1e-3)
    assert training.learning_rate(2e-3, "cosine", 1.0) == pytest.approx(0.0, abs=1e-18)
    assert training.learning_rate(2e-3, "cosine", 0.25) == pytest.approx(
        1e-3 * (1 + np.cos(np.pi / 4)))
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        training.train(ConvVAE(SMALL), images(10), images(5), images=10, lr_schedule="step",
                       progress=False)


def test_a_cosine_schedule_ends_with_a_learning_rate_near_zero(monkeypatch):
    rates = []
    real_step = training.train_step

    def recording_step(model, optimizer, x, eps, kl_weight=1.0, divergence=None):
        rates.append(optimizer.param_groups[0]["lr"])
        return real_step(model, optimizer, x, eps, kl_weight, divergence)

    monkeypatch.setattr(training, "train_step", recording_step)
    training.train(seeded_model(), images(100), images(20, 1), images=1000, batch_size=50,
                   lr=1e-2, lr_schedule="cosine", device="cpu", progress=False)
    assert rates[0] == pytest.approx(1e-2) and rates[-1] < 1e-4
    assert all(a >= b for a, b in zip(rates, rates[1:]))  # never rises


def test_kl_warm_up_and_beta_change_what_is_trained():
    def kl_after(**kwargs):
        model = seeded_model()
        history = training.train(model, images(300), images(50, 1), images=900, seed=0,
                                 batch_size=50, device="cpu", progress=False, **kwargs)
        return history.test[-1].kl

    plain, heavy = kl_after(), kl_after(beta=20.0)
    assert heavy < 0.5 * plain  # a heavy KL weight squeezes the code
    assert kl_after(warmup_images=900) != plain


def test_a_time_budget_stops_training():
    history = training.train(ConvVAE(SMALL), images(2000), images(50, 1), images=10**9,
                             seconds=0.5, batch_size=50, device="cpu", progress=False)
    assert history.seconds[-1] < 10 and history.images[-1] < 10**9
    alone = training.train(ConvVAE(SMALL), images(2000), images(50, 1), seconds=0.5,
                           batch_size=50, device="cpu", progress=False)
    assert len(alone.images) == 1  # a budget in seconds alone: one record, at the end


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = ConvVAE(SMALL)
    path = training.save_checkpoint(model, tmp_path / "vae.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["vae.pt"]  # no temporary file left
    loaded = training.load_checkpoint(ConvVAE(SMALL), path)
    x, eps = torch.rand(3, 1, 28, 28).bernoulli(), torch.randn(3, 4)
    torch.testing.assert_close(loaded(x, eps).recon, model(x, eps).recon, rtol=0, atol=0)


def test_a_checkpoint_of_another_config_names_the_differing_fields(tmp_path):
    path = training.save_checkpoint(ConvVAE(SMALL), tmp_path / "vae.pt")
    other = ConvVAE(ConvConfig(z_dim=6, channels=(4, 8), likelihood="gaussian"))
    with pytest.raises(ValueError, match=r"likelihood: stored 'bernoulli'.*z_dim: stored 4"):
        training.load_checkpoint(other, path)
    torch.save({"model": Payload(), "config": {}, "state": {}}, tmp_path / "code.pt")
    with pytest.raises(Exception, match="[Ww]eights only|weights_only"):
        training.load_checkpoint(ConvVAE(SMALL), tmp_path / "code.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a checkpoint written by"):
        training.load_checkpoint(ConvVAE(SMALL), tmp_path / "other.pt")


def test_iwae_works_on_the_conv_vae_and_bounds_the_elbo():
    torch.manual_seed(0)
    model = ConvVAE(SMALL).eval()
    x = training.observe(model, torch.as_tensor(images(20)), torch.Generator().manual_seed(1))
    elbo, _ = iwae_estimate(model, x, 1, seed=0)
    tighter, _ = iwae_estimate(model, x, 100, seed=0)
    assert tighter > elbo
    recon = -model.log_likelihood(x, model.encode(x)[0][None])[0]
    assert np.isfinite(recon.detach().numpy()).all()


def test_gaussian_log_density_matches_torch_normal():
    x, mean, logvar = torch.randn(4, 10), torch.randn(4, 10), torch.randn(4, 10)
    expected = torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)
    torch.testing.assert_close(gaussian_log_density(x, mean, logvar), expected)


def test_the_mlp_vae_follows_the_same_protocol_and_trains():
    from book.torch_mlp_vae import PYTORCH_EXAMPLES, MLPConfig, TorchVAE

    torch.manual_seed(0)
    model = TorchVAE(MLPConfig(hidden=32, z_dim=3, activation="relu"))
    x = training.observe(model, torch.as_tensor(images(8)), torch.Generator().manual_seed(0))
    assert x.shape == (8, 784)
    eps = torch.randn(8, 3)
    terms = model(x, eps)
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    torch.testing.assert_close(-model.log_likelihood(x, z), terms.recon)
    assert model.log_likelihood(x, torch.randn(5, 8, 3)).shape == (5, 8)
    history = training.train(model, images(400), images(50, 1), images=1600, lr=3e-3,
                             batch_size=50, device="cpu", progress=False)
    assert history.test[-1].neg_elbo < history.test[0].neg_elbo - 20
    assert (PYTORCH_EXAMPLES.hidden, PYTORCH_EXAMPLES.z_dim) == (400, 20)
    with pytest.raises(ValueError, match="activation must be one of"):
        MLPConfig(activation="gelu")


def test_grey_observations_are_the_pixels_as_they_are():
    from book.data import observe

    images_u8 = torch.as_tensor(images(3))
    grey = observe(images_u8, "grey", torch.Generator())
    torch.testing.assert_close(grey, images_u8.float() / 255)
    with pytest.raises(ValueError, match="kind must be one of"):
        observe(images_u8, "colour", torch.Generator())


def test_layer_shapes_are_read_from_the_model():
    from book.conv_vae import layer_shapes

    model = ConvVAE(ConvConfig(z_dim=3, channels=(5, 7)))
    rows = layer_shapes(model)
    shapes = [shape for _, _, shape, _ in rows]
    assert shapes[0] == (5, 14, 14) and shapes[2] == (7, 7, 7) and shapes[-1] == (1, 28, 28)
    assert (7 * 7 * 7, ) in shapes and (6,) in shapes  # flattened, then [mu, logvar]
    assert sum(params for *_, params in rows) == sum(p.numel() for p in model.parameters())



def test_a_diverged_run_stops_with_a_clear_error():
    model = ConvVAE(SMALL)
    with torch.no_grad():
        model.decoder[-1].bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="training diverged.*learning rate"):
        training.train(model, images(100), images(20, 1), images=200, batch_size=50,
                       device="cpu", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_training_evaluation_and_checkpoints_run_on_cuda(tmp_path):
    model = seeded_model()
    history = training.train(model, images(200), images(50, 1), images=400, batch_size=50,
                             device="cuda", progress=False)
    assert np.isfinite(history.curve("test")).all()
    x = training.observe_test_set(model, torch.as_tensor(images(50, 1)).cuda())
    assert x.is_cuda and np.isfinite(iwae_estimate(model, x, 10)[0])
    cpu_x = training.observe_test_set(model, torch.as_tensor(images(50, 1)))
    torch.testing.assert_close(x.cpu(), cpu_x)  # the same test set on every device
    path = training.save_checkpoint(model, tmp_path / "vae.pt")
    assert not training.load_checkpoint(seeded_model(), path).encoder[0].weight.is_cuda


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_decode_means_is_the_mean_of_p_x_given_z_and_keeps_the_mode(likelihood):
    from book.conv_vae import decode_means

    torch.manual_seed(0)
    model = ConvVAE(ConvConfig(z_dim=3, channels=(4, 8), likelihood=likelihood)).train()
    z = np.random.default_rng(0).standard_normal((5, 3))
    means = decode_means(model, z)
    assert means.shape == (5, 28, 28) and model.training
    with torch.no_grad():
        out = model.eval().decode(torch.as_tensor(z, dtype=torch.float32))
    expected = torch.sigmoid(out) if likelihood == "bernoulli" else out[0]
    np.testing.assert_allclose(means, expected.reshape(5, 28, 28).numpy(), rtol=1e-6)
