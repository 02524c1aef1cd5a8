"""book.quadrature: log p(x) on a grid, against the exact linear-Gaussian model and
the IWAE."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from book import iwae
from book import quadrature as quad
from book.checks import mean_and_standard_error
from book.numpy_vae import VAE, Architecture
from book.vi import LinearGaussianModel, gaussian_kl, mvn_log_density


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def linear_and_x(rng) -> tuple[LinearGaussianModel, np.ndarray]:
    model = LinearGaussianModel.random(rng, d=2, D=6, s=0.5)  # correlated given x
    return model, model.sample(rng, 8)[1]


class ProtocolOnly:
    """A model seen only through ``encode`` and ``log_likelihood`` (no fast path)."""

    def __init__(self, model):
        self.encode, self.log_likelihood = model.encode, model.log_likelihood


def test_grid_points_are_the_cell_midpoints_covering_the_box():
    grid = quad.Grid.covering(np.array([-1.0, 0.0]), np.array([1.0, 0.5]), 0.3)
    z1, z2 = grid.axes()
    assert grid.shape == (7, 2) and len(z1) == 7 and len(z2) == 2
    np.testing.assert_allclose(np.diff(z1), 0.3)
    assert z1[0] - 0.15 <= -1.0 and z1[-1] + 0.15 >= 1.0  # the cells cover [low, high]
    assert (z1[0] + z1[-1]) / 2 == pytest.approx(0.0)
    assert z2.mean() == pytest.approx(0.25)
    points = grid.points().reshape(*grid.shape, 2)
    np.testing.assert_array_equal(points[3, 1], [z1[3], z2[1]])


def test_quadrature_is_exact_on_the_linear_gaussian_model(linear_and_x):
    model, x = linear_and_x
    evidence = quad.log_evidence(model, x)
    exact = np.array([model.log_evidence(row) for row in x])
    np.testing.assert_allclose(evidence.log_px, exact, rtol=0, atol=1e-8)
    post_mean, post_cov = model.posterior(x)
    np.testing.assert_allclose(evidence.posterior_mean, post_mean, rtol=0, atol=1e-8)
    np.testing.assert_allclose(evidence.posterior_cov,
                               np.broadcast_to(post_cov, (len(x), 2, 2)),
                               rtol=0, atol=1e-8)
    # the ELBO of the encoder's diagonal q, and the gap KL(q || p(z | x)): closed forms
    mean, logvar = model.encode(x)
    for i, row in enumerate(x):
        q_cov = np.diag(np.exp(logvar[i]))
        elbo = model.elbo(row, mean[i], q_cov)
        assert evidence.elbo[i] == pytest.approx(elbo, abs=1e-8)
        kl = gaussian_kl(mean[i], q_cov, post_mean[i], post_cov)
        assert evidence.gap[i] == pytest.approx(kl, abs=1e-8)
    assert evidence.gap.min() > 0.05  # a real gap, which the check above resolves
    assert evidence.passed() and len(evidence.refined) == 0


def test_blocks_of_the_grid_do_not_change_the_result(linear_and_x, monkeypatch):
    model, x = linear_and_x
    whole = quad.log_evidence(model, x)
    monkeypatch.setattr(quad, "MAX_BLOCK_ELEMENTS", 50 * len(x) * x.shape[1])  # 50 z
    blocks = quad.log_evidence(model, x, whole.grid)
    for name in ("log_px", "elbo", "posterior_mean", "posterior_cov",
                 "resolution_change"):
        np.testing.assert_allclose(getattr(blocks, name), getattr(whole, name), rtol=0,
                                   atol=1e-10, err_msg=name)


def test_checks_flag_a_grid_too_narrow_or_too_coarse_and_refining_repairs_it(
        linear_and_x):
    model, x = linear_and_x
    exact = np.array([model.log_evidence(row) for row in x])
    post_mean, post_cov = model.posterior(x)
    sd = np.sqrt(np.diag(post_cov))
    own_scale = min(np.sqrt(np.linalg.eigvalsh(post_cov)).min(),
                    np.exp(0.5 * model.encode(x[:1])[1]).min())
    narrow = quad.Grid.covering(post_mean[0] - 2 * sd, post_mean[0] + 2 * sd,
                                sd.min() / 10)
    coarse = quad.grid_for(model, x, spacing=2 * sd.max())
    for grid, check in ((narrow, "border_mass"), (coarse, "resolution_change")):
        unrefined = quad.log_evidence(model, x, grid, refinements=0)
        assert unrefined.checks()[check] > quad.TOLERANCES[check]
        assert 0 in unrefined.failures()[check]
        assert np.abs(unrefined.log_px - exact).max() > 1e-4  # and it was indeed wrong
        refined = quad.log_evidence(model, x, grid)
        assert refined.passed() and 0 in refined.refined
        np.testing.assert_allclose(refined.log_px, exact, rtol=0, atol=1e-8)
        # a digit's own grid has about the spacing of its narrowest scale, not one finer
        assert own_scale / 1.5 < refined.spacing[0] < own_scale * 1.5


def test_refinement_halves_the_spacing_until_the_check_passes(linear_and_x,
                                                              monkeypatch):
    model, x = linear_and_x
    # the rule at spacing h = sigma is good to 1e-8, the check at 2h only to ~1e-2:
    # demanding 1e-10 of the check takes one halving more than the digits' own scale
    monkeypatch.setitem(quad.TOLERANCES, "resolution_change", 1e-10)
    evidence = quad.log_evidence(model, x[:2])
    assert evidence.passed() and list(evidence.refined) == [0, 1]
    assert np.all(evidence.spacing < evidence.grid.spacing / 1.5)


def test_a_digit_whose_own_grid_would_be_too_large_stays_failed(linear_and_x,
                                                               monkeypatch):
    model, x = linear_and_x
    coarse = quad.grid_for(model, x, spacing=1.0)
    monkeypatch.setattr(quad, "MAX_GRID_POINTS", 100)
    evidence = quad.log_evidence(model, x, coarse)
    assert not evidence.passed() and len(evidence.refined) == 0


def test_the_vae_fast_path_equals_the_model_protocol(rng):
    model = VAE(Architecture(x_dim=12, hidden=16, z_dim=2), seed=1, dtype=np.float64)
    x = (rng.random((5, 12)) < 0.4) * 1.0
    z = 3 * rng.standard_normal((40, 2))
    np.testing.assert_allclose(quad.log_joint_table(model, x, z),
                               quad.log_joint_table(ProtocolOnly(model), x, z),
                               rtol=1e-12)


def test_quadrature_agrees_with_iwae_on_a_small_vae(rng):
    arch = Architecture(x_dim=30, hidden=16, z_dim=2)
    model = VAE(arch, seed=2, dtype=np.float64)  # untrained: q far from the posterior
    x = (rng.random((40, arch.x_dim)) < 0.4) * 1.0
    evidence = quad.log_evidence(model, x)
    assert evidence.passed()
    # K = 1 estimates the ELBO, which the grid computes: 100 draws for each digit.
    # Differences per digit cancel the spread between digits, leaving the Monte Carlo
    # error.
    single = iwae.iwae_bound(model, np.repeat(x, 100, axis=0), 1).reshape(40, 100)
    elbo_errors = (single - evidence.elbo[:, None]).ravel()
    elbo_error, elbo_se = mean_and_standard_error(elbo_errors)
    assert abs(elbo_error) < 3 * elbo_se
    assert evidence.gap.mean() > 10 * elbo_se  # a real gap, which this test resolves
    errors = iwae.iwae_bound(model, x, 2000) - evidence.log_px
    error, se = mean_and_standard_error(errors)
    print(f"ELBO: K = 1 - grid {elbo_error:.3f} +- {elbo_se:.3f}"
          f" (gap {evidence.gap.mean():.3f}); log p(x): K = 2000 - grid"
          f" {error:.4f} +- {se:.4f}")
    assert abs(error) < 3 * se and se < 0.02


def test_posterior_window_is_the_exact_posterior_on_the_linear_model(linear_and_x):
    model, x = linear_and_x
    evidence = quad.log_evidence(model, x)
    window = quad.posterior_window(model, x, evidence, 3, n=61)
    z = window.grid.points()
    post_mean, post_cov = model.posterior(x[3])
    np.testing.assert_allclose(window.log_posterior.ravel(),
                               mvn_log_density(z, post_mean, post_cov),
                               rtol=0, atol=1e-8)
    mean, logvar = model.encode(x[3:4])
    q_cov = np.diag(np.exp(logvar[0]))
    np.testing.assert_allclose(window.log_q.ravel(), mvn_log_density(z, mean[0], q_cov),
                               rtol=1e-12)
    mass = np.exp(window.log_posterior).sum() * window.grid.spacing**2
    assert mass == pytest.approx(1.0, abs=1e-3)  # the window holds (nearly) all of it


def test_importance_sampling_at_the_posterior_confirms_the_quadrature(rng):
    """An independent Monte Carlo check: a proposal on the posterior converges fast."""
    arch = Architecture(x_dim=30, hidden=16, z_dim=2)
    model = VAE(arch, seed=3, dtype=np.float64)
    x = (rng.random((60, arch.x_dim)) < 0.4) * 1.0
    evidence = quad.log_evidence(model, x)
    proposal = quad.PosteriorProposal(model, evidence)
    errors = iwae.iwae_bound(proposal, x, 500, seed=1) - evidence.log_px
    error, se = mean_and_standard_error(errors)
    assert abs(error) < 3 * se and se < 0.005
    shifted = quad.PosteriorProposal(model, replace(evidence, log_px=evidence.log_px + 0.05))
    wrong = iwae.iwae_bound(shifted, x, 500, seed=1) - evidence.log_px - 0.05
    assert abs(mean_and_standard_error(wrong)[0]) > 10 * se  # a 0.05-nat error shows
    with pytest.raises(ValueError, match="made for 60 digits, got 3"):
        proposal.encode(x[:3])
