"""The NumPy VAE: its gradients are right (and the check would notice if not), it trains, it saves."""
from __future__ import annotations

import inspect
import textwrap
import warnings

import numpy as np
import pytest
import torch

from book import numpy_train, numpy_vae
from book.checks import relative_error
from book.data import binarize
from book.numpy_vae import VAE, Architecture, bernoulli_log_likelihood, gradient_check
from book.torch_mlp_vae import TorchVAE, adam_difference

TINY = Architecture(x_dim=20, hidden=8, z_dim=3)


def batch(arch: Architecture, n: int, seed: int = 0, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Binary images and noise for a batch of n examples."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, arch.x_dim)) < 0.3).astype(dtype), rng.standard_normal((n, arch.z_dim)).astype(dtype)


def prototypes_data(n: int, seed: int, x_dim: int = 64) -> np.ndarray:
    """Intensities in [0, 1]: noisy copies of 5 random binary patterns, a dataset with structure to learn."""
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(1234).random((5, x_dim)) < 0.4
    return np.where(patterns[rng.integers(5, size=n)], 0.9, 0.05).astype(np.float32)


# --- gradients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_check_passes_for_every_parameter(seed):
    model = VAE(TINY, seed=seed, dtype=np.float64)
    errors = gradient_check(model, *batch(TINY, 5, seed))
    assert set(errors) == set(TINY.shapes())
    assert max(errors.values()) < 1e-6, errors


def test_beta_weighs_the_kl_gradient():
    """backward(f, beta) is the gradient of mean(recon + beta * KL), by finite differences."""
    from book.checks import gradient_errors

    model = VAE(TINY, seed=0, dtype=np.float64)
    x, eps = batch(TINY, 5)
    beta = 7.0

    def loss():
        f = model.forward(x, eps)
        return float(np.mean(f.recon + beta * f.kl))

    analytic = {k: g.copy() for k, g in model.backward(model.forward(x, eps), beta).items()}
    errors = gradient_errors(loss, model.params, analytic)
    assert max(errors.values()) < 1e-6, errors
    plain = {k: g.copy() for k, g in model.backward(model.forward(x, eps)).items()}
    assert relative_error(plain["W1"], analytic["W1"]) > 1e-2  # beta matters upstream of z


def test_gradient_check_refuses_float32():
    with pytest.raises(ValueError, match="float64"):
        gradient_check(VAE(TINY), *batch(TINY, 2, dtype=np.float32))


# Bugs one might write in the backward pass, as (correct line fragment, wrong one), and the
# parameters whose gradients they break (those upstream of the mistake).
MUTATIONS = {
    "tanh derivative 1 - g": ("d_g *= 1 - f.g * f.g", "d_g *= 1 - f.g", {"W3", "b3", "W2", "b2", "W1", "b1"}),
    "KL gradient not averaged": ("d_mu = d_z + beta * kl_mu / n", "d_mu = d_z + beta * kl_mu", {"W2", "b2", "W1", "b1"}),
    "dKL/dlogvar not averaged": ("+ beta * kl_logvar / n", "+ beta * kl_logvar", {"W2", "b2", "W1", "b1"}),
    "dz/dlogvar without sigma": ("d_z * np.exp(0.5 * f.logvar) * f.eps", "d_z * f.eps", {"W2", "b2", "W1", "b1"}),
    "dz/dlogvar without the 1/2": ("d_logvar = 0.5 * d_z", "d_logvar = d_z", {"W2", "b2", "W1", "b1"}),
}


def mutant(old: str, new: str) -> type[VAE]:
    """A VAE whose backward pass has ``old`` replaced by ``new`` in its source."""
    source = textwrap.dedent(inspect.getsource(VAE.backward))
    assert source.count(old) == 1, f"{old!r} is not (once) in VAE.backward"
    namespace = dict(vars(numpy_vae))
    exec(source.replace(old, new), namespace)
    return type("Mutant", (VAE,), {"backward": namespace["backward"]})


@pytest.mark.parametrize("mutation", MUTATIONS, ids=str)
def test_gradient_check_finds_a_wrong_backward_line(mutation):
    old, new, broken = MUTATIONS[mutation]
    model = mutant(old, new)(TINY, seed=0, dtype=np.float64)
    errors = gradient_check(model, *batch(TINY, 5))
    assert {name for name, error in errors.items() if error > 1e-3} == broken, errors
    assert all(errors[name] < 1e-6 for name in set(errors) - broken), errors


def test_gradients_agree_with_pytorch_autograd():
    arch = Architecture(x_dim=784, hidden=32, z_dim=4)
    model = VAE(arch, seed=0, dtype=np.float64)
    x, eps = batch(arch, 16)
    f = model.forward(x, eps)
    grads = model.backward(f)
    torch_model = TorchVAE.from_numpy(model)
    terms = torch_model(torch.from_numpy(x), torch.from_numpy(eps))
    loss, recon, kl = terms.loss, terms.recon, terms.kl
    loss.backward()
    assert loss.item() == pytest.approx(f.loss, rel=1e-12)
    np.testing.assert_allclose(recon.detach().numpy(), f.recon, rtol=1e-12)
    np.testing.assert_allclose(kl.detach().numpy(), f.kl, rtol=1e-12)
    torch_grads = torch_model.numpy_grads()
    for name in grads:
        assert relative_error(grads[name], torch_grads[name]) < 1e-10, name


def test_adam_takes_the_same_steps_as_torch_adam():
    batches = [batch(TINY, 8, seed=step) for step in range(20)]
    assert adam_difference(VAE(TINY, seed=0, dtype=np.float64), batches, lr=0.01) < 1e-13


def test_adam_comparison_notices_a_different_optimizer(monkeypatch):
    """A NumPy Adam without bias correction of v must not pass as torch's."""
    real_step = numpy_train.Adam.step

    def no_bias_correction(self, grad):
        real_step(self, grad)
        self.params += 1e-3 * self.m  # a small change to every step: still a working optimizer

    monkeypatch.setattr(numpy_train.Adam, "step", no_bias_correction)
    batches = [batch(TINY, 8, seed=step) for step in range(20)]
    assert adam_difference(VAE(TINY, seed=0, dtype=np.float64), batches, lr=0.01) > 1e-6


# --- numerics ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_log_likelihood_is_finite_and_right_for_huge_logits(dtype):
    logits = np.array([[100.0, -100.0, 100.0, -100.0]], dtype)
    x = np.array([[1.0, 0.0, 0.0, 1.0]], dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        per_pixel = [bernoulli_log_likelihood(x[:, i:i + 1], logits[:, i:i + 1])[0] for i in range(4)]
    # log sigmoid(100) = -log(1 + e^-100) ~ -4e-44; log(1 - sigmoid(100)) = -100 - 4e-44
    np.testing.assert_allclose(per_pixel, [0.0, 0.0, -100.0, -100.0], atol=1e-6)


def test_bernoulli_log_likelihood_matches_the_naive_formula():
    rng = np.random.default_rng(0)
    logits, x = rng.uniform(-10, 10, (6, 50)), rng.integers(0, 2, (6, 50)).astype(float)
    p = 1 / (1 + np.exp(-logits))
    naive = (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
    np.testing.assert_allclose(bernoulli_log_likelihood(x, logits), naive, rtol=1e-12)


def test_float32_model_computes_in_float32():
    model = VAE(TINY, seed=0)
    x, eps = batch(TINY, 4)  # float64 inputs are converted, not promoted to
    f = model.forward(x, eps)
    grads = model.backward(f)
    assert {a.dtype for a in (f.h, f.mu, f.z, f.logits, f.recon, f.kl)} == {np.dtype(np.float32)}
    assert all(g.dtype == np.float32 for g in grads.values())


# --- training ------------------------------------------------------------------------------------


def test_training_lowers_the_test_loss_and_is_reproducible():
    arch = Architecture(x_dim=64, hidden=32, z_dim=4)
    x_train, x_test = prototypes_data(1000, seed=0), prototypes_data(200, seed=1)
    x_test = (np.random.default_rng(2).random(x_test.shape) < x_test).astype(np.float32)
    before = numpy_train.evaluate(VAE(arch, seed=0), x_test).neg_elbo
    runs = [numpy_train.train(VAE(arch, seed=0), x_train, x_test, images=20_000, lr=3e-3,
                              progress=False)
            for _ in range(2)]
    after = runs[0].test[-1].neg_elbo
    assert after < 0.7 * before, (before, runs[0].curve("test"))
    assert runs[0].test[-1].kl > 1.0  # the latent code is used, not collapsed onto the prior
    assert runs[0].test == runs[1].test


def test_evaluate_averages_single_sample_losses_over_the_examples():
    model, x = VAE(TINY, seed=0), binarize(prototypes_data(25, seed=0, x_dim=TINY.x_dim), 2)
    eps = np.random.default_rng(7).standard_normal((25, TINY.z_dim), dtype=np.float32)
    f = model.forward(x, eps)  # evaluate draws the same eps from the same seed, batch after batch
    result = numpy_train.evaluate(model, x, seed=7, batch_size=10)
    assert result.recon == pytest.approx(f.recon.mean(), rel=1e-6)
    assert result.kl == pytest.approx(f.kl.mean(), rel=1e-6)
    assert result.neg_elbo == pytest.approx(f.loss, rel=1e-6)
    per_example = f.recon.astype(np.float64) + f.kl
    assert result.neg_elbo_se == pytest.approx(per_example.std(ddof=1) / 5, rel=1e-5)


def rows(a: np.ndarray) -> list[bytes]:
    """The rows of a, as a sorted list: equal for two arrays that hold the same rows in any order."""
    return sorted(row.tobytes() for row in a)


def test_the_budget_is_images_whatever_the_training_set():
    arch = Architecture(x_dim=64, hidden=8, z_dim=2)
    for n in (30, 70):
        history = numpy_train.train(VAE(arch), prototypes_data(n, seed=0),
                                    binarize(prototypes_data(10, seed=1), 2), images=125, batch_size=10,
                                    progress=False)
        assert history.images[-1] == 125 and history.epochs[-1] == pytest.approx(125 / n)
    with pytest.raises(ValueError, match="images must be at least 1"):
        numpy_train.train(VAE(arch), prototypes_data(5, 0), prototypes_data(5, 1), images=0)


def test_training_records_what_it_trained_on(monkeypatch):
    """Fresh binary targets every epoch; train numbers are the means over the recorded steps."""
    steps = []

    def recording_step(model, optimizer, x, rng, beta=1.0, divergence=None):
        result = real_step(model, optimizer, x, rng, beta, divergence)
        steps.append((x.copy(), result.recon.sum(), result.kl.sum(), len(x)))
        return result

    real_step = numpy_train.train_step
    monkeypatch.setattr(numpy_train, "train_step", recording_step)
    x_train, x_test = prototypes_data(30, seed=0), binarize(prototypes_data(10, seed=1), 2)
    arch = Architecture(x_dim=64, hidden=8, z_dim=2)
    history = numpy_train.train(VAE(arch), x_train, x_test, images=150, batch_size=10,
                                eval_every=50, progress=False)
    assert history.images == [50, 100, 150]  # every eval_every images, and the last
    assert history.epochs == pytest.approx([50 / 30, 100 / 30, 5])
    per_epoch = 3  # steps of 10 images
    epochs = [np.concatenate([x for x, *_ in steps[i:i + per_epoch]]) for i in range(0, 15, per_epoch)]
    assert set(np.unique(epochs[0])) == {0.0, 1.0}  # binarized, though x_train is gray
    assert rows(epochs[0]) != rows(epochs[1])  # a new draw every epoch
    for record, (first, last) in enumerate([(0, 5), (5, 10), (10, 15)]):  # steps
        chunk = steps[first:last]
        n = sum(size for *_, size in chunk)
        recon, kl = sum(r for _, r, _, _ in chunk) / n, sum(k for _, _, k, _ in chunk) / n
        assert history.train[record].recon == pytest.approx(recon, rel=1e-6)
        assert history.train[record].kl == pytest.approx(kl, rel=1e-6)
        assert history.train[record].neg_elbo == pytest.approx(recon + kl, rel=1e-6)

    steps.clear()
    fixed = binarize(x_train, 3)
    numpy_train.train(VAE(arch), fixed, x_test, images=30, batch_size=10,
                      dynamic_binarization=False, progress=False)
    assert rows(np.concatenate([x for x, *_ in steps])) == rows(fixed)  # used as given


def test_training_on_real_digits_lowers_the_test_loss():
    from book.data import DatasetError, binarize, load_dataset, to_unit_interval

    try:
        images, _ = load_dataset("mnist", "train", download=False, verbose=False)
    except DatasetError as error:
        pytest.skip(f"no MNIST available offline (set VAE_BOOK_DATA): {error}")
    x = to_unit_interval(images[:1200]).reshape(1200, -1)
    x_train, x_test = x[:1000], binarize(x[1000:], seed=0)
    model = VAE(Architecture(hidden=64, z_dim=8), seed=0)
    before = numpy_train.evaluate(model, x_test).neg_elbo
    history = numpy_train.train(model, x_train, x_test, images=10_000, lr=3e-3,
                                progress=False)
    assert before > 500  # about 784 log 2 = 543: every pixel a coin flip
    assert history.test[-1].neg_elbo < 0.5 * before, history.curve("test")


# --- saving, loading, checking inputs ------------------------------------------------------------


def test_save_and_load_round_trip_exactly(tmp_path):
    model = VAE(TINY, seed=3)
    path = model.save(tmp_path / "model")
    loaded = VAE.load(path)
    assert loaded.arch == TINY
    for name, value in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)
    x, eps = batch(TINY, 4, dtype=np.float32)
    np.testing.assert_array_equal(loaded.forward(x, eps).logits, model.forward(x, eps).logits)


def test_loading_another_architecture_says_what_differs(tmp_path):
    path = VAE(Architecture(hidden=16, z_dim=2)).save(tmp_path / "other")
    with pytest.raises(ValueError, match=r"hidden=16, z_dim=2.*but this model has.*hidden=512, z_dim=32"):
        VAE(Architecture()).load_weights(path)


def test_loading_a_file_that_is_no_vae_says_so(tmp_path):
    np.savez(tmp_path / "weights.npz", W1=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="not a file written by VAE.save"):
        VAE.load(tmp_path / "weights.npz")


def test_wrong_input_shapes_say_what_was_expected():
    model = VAE(Architecture(hidden=16, z_dim=2))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 784\).*got \(5, 28, 28\).*reshape"):
        model.encode(np.zeros((5, 28, 28)))
    with pytest.raises(ValueError, match=r"eps must have shape \(5, 2\).*got \(4, 2\)"):
        model.forward(np.zeros((5, 784)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 2\).*got \(3,\)"):
        model.decode(np.zeros(3))
