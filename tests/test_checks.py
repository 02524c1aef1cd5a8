"""The generic numerical checks (book.checks), the loss summary (book.history) and show_source."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from book import checks, source
from book.gaussian import gaussian_log_density, standard_normal_log_density
from book.history import History, Losses


def test_central_difference_is_accurate():
    a = np.array([0.3, -1.2])
    grad = checks.central_difference(lambda v: np.sum(np.sin(v)), a)
    np.testing.assert_allclose(grad, np.cos(a), rtol=1e-9)


def test_relative_error_is_scaled_by_the_largest_entry():
    assert checks.relative_error(np.array([10.0, 1e-12]), np.array([10.0, 2e-12])) < 1e-12
    assert checks.relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == pytest.approx(0.2)
    assert checks.relative_error(np.zeros(3), np.zeros(3)) == 0.0


def test_gradient_errors_are_small_for_a_right_gradient_and_large_for_a_wrong_one():
    params = {"a": np.array([0.5, -1.0]), "b": np.array([[2.0]])}

    def loss():  # sum(a^3) + b^2, reading the arrays in place
        return float(np.sum(params["a"] ** 3) + params["b"][0, 0] ** 2)

    right = {"a": 3 * params["a"] ** 2, "b": 2 * params["b"]}
    wrong = {"a": 2 * params["a"] ** 2, "b": 2 * params["b"]}
    before = {k: v.copy() for k, v in params.items()}
    errors = checks.gradient_errors(loss, params, right)
    assert max(errors.values()) < 1e-8
    errors = checks.gradient_errors(loss, params, wrong)
    assert errors["a"] > 0.1 and errors["b"] < 1e-8
    for name, value in before.items():  # the parameters are restored
        np.testing.assert_array_equal(params[name], value)


def test_standard_normal_log_density_is_the_general_one_at_zero_mean_unit_variance():
    z = np.random.default_rng(0).standard_normal((4, 3))
    expected = gaussian_log_density(z, 0 * z, 0 * z)
    np.testing.assert_allclose(standard_normal_log_density(z), expected, rtol=1e-14)
    dist = torch.distributions.Normal(0.0, 1.0)
    torch_value = dist.log_prob(torch.from_numpy(z)).sum(-1).numpy()
    np.testing.assert_allclose(standard_normal_log_density(z), torch_value, rtol=1e-12)


def test_losses_of_per_example_terms():
    recon, kl = np.array([10.0, 12.0, 14.0]), np.array([1.0, 1.0, 4.0])
    losses = Losses.of(recon, kl)
    assert (losses.recon, losses.kl, losses.neg_elbo) == (12.0, 2.0, 14.0)
    assert losses.neg_elbo_se == pytest.approx(np.std([11, 13, 18], ddof=1) / math.sqrt(3))


def test_history_curves():
    history = History()
    for epoch in (1, 2):
        history.record(epoch, 100 * epoch, 0.5 * epoch, Losses(10.0 / epoch, 1.0, 0.1),
                       Losses(11.0 / epoch, 2.0, 0.1))
    np.testing.assert_allclose(history.curve("train"), [11.0, 6.0])
    np.testing.assert_allclose(history.curve("test", "kl"), [2.0, 2.0])


def test_show_source_dedents_methods_and_brings_the_definitions_used(monkeypatch):
    from book.numpy_vae import VAE, sigmoid

    shown: list[str] = []
    monkeypatch.setattr(source, "_shown", set())
    monkeypatch.setattr("IPython.display.display", lambda m: shown.append(m.data))
    source.show_source(VAE.backward)
    assert shown[0].splitlines()[3].startswith("def backward(self")  # dedented
    assert "<details" in shown[0]  # folded by default
    # what it uses, in one folded block that names them
    assert len(shown) == 2 and shown[1].startswith('<details class="book-source">')
    assert "def sigmoid(" in shown[1] and "def kl_to_standard_normal_grad(" in shown[1]
    assert "<code>sigmoid</code>" in shown[1].split("</summary>")[0]
    source.show_source(sigmoid, folded=False)  # asked for explicitly: shown again, open
    assert shown[2].startswith("From `book/numpy_vae.py`") and "<details" not in shown[2]
    source.show_source(VAE.backward)  # its dependencies were shown already
    assert len(shown) == 4


def test_one_sample_has_a_mean_and_no_standard_error():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "degrees of freedom" warning either
        mean, se = checks.mean_and_standard_error(np.array([3.5]))
        means, ses = checks.mean_and_standard_error(np.array([[1.0, 2.0]]))
    assert mean == 3.5 and np.isnan(se)
    np.testing.assert_array_equal(means, [1.0, 2.0])
    assert ses.shape == (2,) and np.isnan(ses).all()
    mean, se = checks.mean_and_standard_error(np.array([1.0, 3.0]))
    assert mean == 2.0 and se == pytest.approx(1.0)  # std 1.414 (ddof 1) / sqrt(2)
