"""Latent-space statistics (active units, KL per dimension) and the shared image grid."""
from __future__ import annotations

import numpy as np

from book.gaussian import kl_to_standard_normal
from book.latent import active_units, activity, kl_per_dimension
from book.plots import image_grid


def test_active_units_counts_the_dimensions_whose_mean_varies_with_x():
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((500, 6))
    mu[:, [1, 4]] = 0.05 * rng.standard_normal((500, 2))  # variance 0.0025: dead
    mu[:, 5] = 0.3  # the same for every x: dead
    assert active_units(mu) == 3
    assert activity(mu)[0] > 0.5 and activity(mu)[5] < 1e-20


def test_kl_per_dimension_adds_up_to_the_mean_kl():
    rng = np.random.default_rng(1)
    mu, logvar = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
    per_dim = kl_per_dimension(mu, logvar)
    assert per_dim.shape == (4,)
    np.testing.assert_allclose(per_dim.sum(), kl_to_standard_normal(mu, logvar).mean())
    np.testing.assert_allclose(kl_per_dimension(0 * mu, 0 * logvar), 0.0)


def test_image_grid_places_each_image_in_its_cell():
    images = np.arange(6)[:, None] * np.ones((6, 784)) / 10  # image k is all k / 10
    grid = image_grid(images, 2, 3)
    assert grid.shape == (2 * 29 - 1, 3 * 29 - 1)
    for k in range(6):
        row, col = divmod(k, 3)
        cell = grid[29 * row:29 * row + 28, 29 * col:29 * col + 28]
        np.testing.assert_allclose(cell, k / 10)
    assert np.all(grid[28, :] == 0) and np.all(grid[:, 28] == 0)  # the gaps


def test_principal_components_find_the_direction_of_largest_variance():
    from book.latent import principal_components

    rng = np.random.default_rng(2)
    codes = rng.standard_normal((400, 3)) * [0.1, 5.0, 1.0]
    projected, share = principal_components(codes, 2)
    assert projected.shape == (400, 2)
    np.testing.assert_allclose(np.abs(projected[:, 0]), np.abs(codes[:, 1] - codes[:, 1].mean()),
                               atol=0.5)
    assert share[0] > 0.9 and share[0] > share[1]
