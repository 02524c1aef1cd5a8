"""Bad input, kind by kind: each kind is refused at the one function every path goes through,
with an error that says what to do (issue 18; CONTRIBUTING.md states the input contract).

1. data outside a likelihood's domain (grey levels for a Bernoulli model);
2. data prepared twice (scaled images where raw uint8 ones are expected);
3. training that diverges (NumPy's loop and PyTorch's stop alike, before the bad step);
4. configs that a checkpoint could not hold as plain data, and writes that are not durable.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from book import data, files, iwae, mixture, numpy_train, train
from book.conv_vae import ConvConfig, ConvVAE
from book.gaussian import LOGVAR_BOUND
from book.history import Divergence, TrainingDiverged
from book.numpy_vae import VAE, Architecture, gradient_check
from book.torch_mlp_vae import MLPConfig, TorchVAE


def uint8_digits(n: int, seed: int = 0) -> np.ndarray:
    """Digit-like uint8 images (n, 28, 28): a blob of ink on a black border."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 6:22, 8:20] = rng.integers(0, 256, (n, 16, 12), dtype=np.uint8)
    return images


IMAGES = uint8_digits(64)
GREY = data.to_unit_interval(IMAGES)  # grey levels in [0, 1]: not binary data
BINARY_MESSAGE = r"binary pixels \(0 or 1\).*binarize them first: book\.data\.observe"


# --- 1. data outside the domain of a Bernoulli likelihood ------------------------------------


def test_every_bernoulli_path_refuses_grey_levels_and_says_how_to_binarise():
    grey_flat, grey_4d = GREY.reshape(64, -1), torch.as_tensor(GREY).unsqueeze(1)
    refused = {
        "NumPy evaluate": lambda: numpy_train.evaluate(VAE(Architecture(784, 64, 8)), grey_flat),
        "NumPy training targets": lambda: numpy_train.train(
            VAE(Architecture(784, 16, 2)), grey_flat, grey_flat, images=10,
            dynamic_binarization=False, progress=False),
        "ConvVAE forward": lambda: ConvVAE()(grey_4d, torch.zeros(64, 16)),
        "IWAE": lambda: iwae.iwae_estimate(ConvVAE(), grey_4d, K=4),
        "PyTorch MLP": lambda: TorchVAE(MLPConfig(784, 16, 2))(torch.as_tensor(grey_flat),
                                                               torch.zeros(64, 2)),
        "mixture": lambda: mixture.fit_mixture(grey_flat.astype(np.float64), 2, iterations=1,
                                               progress=False),
    }
    for path, call in refused.items():
        with pytest.raises(ValueError, match=BINARY_MESSAGE):
            call()
    # the same images, binarised, are scored
    binary = data.binarize(GREY, seed=0)
    assert np.isfinite(numpy_train.evaluate(VAE(Architecture(784, 64, 8)),
                                            binary.reshape(64, -1)).neg_elbo)
    assert np.isfinite(iwae.iwae_estimate(ConvVAE(), torch.as_tensor(binary).unsqueeze(1), K=4)[0])


def test_training_a_bernoulli_model_on_grey_observations_is_refused_before_it_starts():
    with pytest.raises(ValueError, match="bernoulli likelihood cannot be trained or scored on "
                                         "'grey' observations"):
        train.train(ConvVAE(), IMAGES, IMAGES[:8], images=64, observation="grey",
                    device="cpu", progress=False)
    with pytest.raises(ValueError, match="'dequantized'"):
        train.observe_test_set(TorchVAE(MLPConfig(784, 16, 2)), torch.as_tensor(IMAGES),
                               "dequantized")


# --- 2. data prepared twice --------------------------------------------------------------------


def test_whatever_takes_raw_uint8_images_refuses_prepared_ones():
    generator = torch.Generator().manual_seed(0)
    prepared = {"scaled": GREY, "scaled tensor": torch.as_tensor(GREY),
                "binarised": torch.as_tensor(data.binarize(GREY, 0))}
    for name, images in prepared.items():
        for call in (lambda: train.fixed_observations(images, "binary"),
                     lambda: train.observe_test_set(ConvVAE(), torch.as_tensor(images)),
                     lambda: data.observe(torch.as_tensor(images), "binary", generator)):
            with pytest.raises(TypeError, match="uint8 images.*Pass the raw images"):
                call()
    with pytest.raises(TypeError, match="to_unit_interval|uint8"):
        data.to_unit_interval(GREY)
    with pytest.raises(ValueError, match="uint8"):
        train.train(ConvVAE(), GREY, IMAGES[:8], images=64, device="cpu", progress=False)
    # the raw images pass, and are binarised at the rate of their grey levels
    x = train.fixed_observations(IMAGES, "binary")
    assert abs(x.mean().item() - GREY.mean()) < 0.01


# --- 3. training that diverges -------------------------------------------------------------------


def test_both_loops_stop_a_diverging_run_with_the_same_error_before_the_bad_step():
    x = GREY.reshape(64, -1)
    test = data.binarize(x[:16], 1)
    model = VAE(Architecture(784, 64, 8))
    with pytest.raises(TrainingDiverged, match=r"training diverged.*Lower the learning rate "
                                               r"\(it is 3\)"):
        numpy_train.train(model, np.tile(x, (16, 1)), test, images=2000, lr=3.0,
                          progress=False)
    assert np.isfinite(model.flat).all()  # stopped before a step could make it NaN
    torch_model = TorchVAE(MLPConfig(784, 64, 8))
    with pytest.raises(TrainingDiverged, match=r"training diverged.*Lower the learning rate "
                                               r"\(it is 3\)"):
        train.train(torch_model, np.tile(IMAGES, (16, 1, 1)), IMAGES[:16], images=2000, lr=3.0,
                    batch_size=100, device="cpu", progress=False)
    assert all(torch.isfinite(p).all() for p in torch_model.parameters())
    assert issubclass(TrainingDiverged, FloatingPointError)


def test_a_loss_that_is_not_finite_or_explodes_is_divergence_and_says_what_the_weights_are():
    bernoulli = Divergence(pixels=784)  # 10 x 784 log 2 = 5,434 nats
    assert bernoulli.check(540.0, 1e-3, lambda: True) == 540.0
    assert bernoulli.check(5400.0, 1e-3, lambda: True) == 5400.0
    with pytest.raises(TrainingDiverged, match="5,500 nats, above 5,434.*weights of the last"):
        bernoulli.check(5500.0, 1e-3, lambda: True)
    with pytest.raises(TrainingDiverged, match="nan nats.*no longer finite: build the model"):
        Divergence(pixels=784).check(float("nan"), 1e-3, lambda: False)
    # a density's loss swings by thousands of nats while sigma_x settles (chapter 3 saw 625
    # to 7,119 on dequantised digits): only a loss that is not finite is divergence there
    density = train.divergence_watch(ConvVAE(ConvConfig(likelihood="gaussian")))
    for loss in (625.0, 7119.0, -1500.0, 200.0):
        assert density.check(loss, 1e-3, lambda: True) == loss
    with pytest.raises(TrainingDiverged, match="inf nats"):
        density.check(float("inf"), 1e-3, lambda: True)
    assert train.divergence_watch(ConvVAE()).limit == Divergence(784).limit


def test_every_encoder_bounds_its_log_variance_as_the_conv_vae_does():
    x = data.binarize(GREY.reshape(64, -1), 0)
    numpy_model = VAE(Architecture(784, 16, 4), dtype=np.float64)
    numpy_model.params["b2"][4:] = 200.0  # log sigma^2 = 200 unbounded: exp overflows
    mu, logvar = numpy_model.encode(x)
    assert np.all(logvar <= LOGVAR_BOUND) and np.all(logvar > LOGVAR_BOUND - 1e-6)
    torch_model = TorchVAE.from_numpy(numpy_model)
    torch_mu, torch_logvar = torch_model.encode(torch.as_tensor(x, dtype=torch.float64))
    np.testing.assert_allclose(torch_logvar.detach().numpy(), logvar, rtol=1e-12)
    eps = np.zeros((64, 4))
    assert np.isfinite(numpy_model.forward(x, eps).loss)
    assert torch.isfinite(torch_model(torch.as_tensor(x, dtype=torch.float64),
                                      torch.as_tensor(eps)).loss)
    # where the bound bends (log sigma^2 near 6.8), the hand-written backward pass still agrees
    # with finite differences: the factor 1 - (logvar / 8)^2 is in it
    numpy_model.params["b2"][4:] = 10.0
    errors = gradient_check(numpy_model, x[:8], np.random.default_rng(0).standard_normal((8, 4)))
    assert max(errors.values()) < 1e-6, errors


# --- 4. checkpoints and configs ------------------------------------------------------------------


def test_every_checkpoint_the_book_writes_loads_with_weights_only(tmp_path):
    for z in np.arange(2, 6, 2):  # NumPy integers, as a loop over np.arange gives
        model = ConvVAE(ConvConfig(z_dim=z))
        loaded = train.load_checkpoint(ConvVAE(ConvConfig(z_dim=z)),
                                       train.save_checkpoint(model, tmp_path / "c.pt"))
        assert type(loaded.config.z_dim) is int
    floor = ConvConfig(likelihood="gaussian", sigma_floor=np.float64(0.01))
    assert type(floor.sigma_floor) is float
    train.load_checkpoint(ConvVAE(floor), train.save_checkpoint(ConvVAE(floor), tmp_path / "g.pt"))
    mlp = MLPConfig(np.int64(784), np.int32(16), np.int64(2))
    assert all(type(getattr(mlp, f)) is int for f in ("x_dim", "hidden", "z_dim"))
    assert type(Architecture(np.int64(64), 8, 2).x_dim) is int


@pytest.mark.parametrize("build, field", [
    (lambda: ConvConfig(z_dim=2.5), "z_dim"), (lambda: ConvConfig(channels=16), "channels"),
    (lambda: ConvConfig(z_dim=0), "z_dim"), (lambda: ConvConfig(sigma_floor="0.1"), "sigma_floor"),
    (lambda: ConvConfig(likelihood="poisson"), "likelihood"),
    (lambda: MLPConfig(hidden=-3), "hidden"), (lambda: Architecture(z_dim=True), "z_dim")])
def test_a_config_of_the_wrong_kind_fails_when_built_and_names_the_field(build, field):
    with pytest.raises(ValueError, match=rf"\.{field} must be"):
        build()


def test_a_config_that_is_not_plain_data_is_refused_before_anything_is_written(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Foreign:  # a reader's own model whose config holds a NumPy scalar
        z_dim: object = np.int64(4)

    model = ConvVAE(ConvConfig(z_dim=4))
    object.__setattr__(model, "config", Foreign())
    with pytest.raises(TypeError, match="Foreign.z_dim.*weights_only"):
        train.save_checkpoint(model, tmp_path / "c.pt")
    assert list(tmp_path.iterdir()) == []


def test_writes_are_synced_before_they_take_the_name_and_failures_leave_the_old_file(
        tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    train.save_checkpoint(ConvVAE(ConvConfig(z_dim=2)), tmp_path / "c.pt")
    assert events[:2] == ["fsync", "replace"]  # the data is on disk before the rename
    events.clear()
    VAE(Architecture(16, 4, 2)).save(tmp_path / "w.npz")
    assert events[:2] == ["fsync", "replace"]

    target = tmp_path / "w.npz"
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with files.atomic_write(target) as out:
            out.write(b"half a file")
            raise RuntimeError("the disk is full")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "w.npz"]
