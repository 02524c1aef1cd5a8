"""The live widgets, the latent-space paths they draw, PNG files and the aggregate posterior."""
from __future__ import annotations

import io

import matplotlib.image
import numpy as np
import pytest
import torch

from book import latent, widgets
from book.conv_vae import ConvConfig, ConvVAE
from book.gaussian import gaussian_log_density
from book.png import grey_levels, png_bytes


def read_png(data: bytes) -> np.ndarray:
    return np.round(matplotlib.image.imread(io.BytesIO(data)) * 255).astype(int)


@pytest.fixture(scope="module")
def models() -> dict[int, ConvVAE]:
    torch.manual_seed(0)
    return {d: ConvVAE(ConvConfig(z_dim=d)).eval() for d in (2, 4)}


def decoded_grey(model: ConvVAE, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        p = torch.sigmoid(model.decode(torch.tensor(z, dtype=torch.float32)[None]))
    return grey_levels(p.reshape(28, 28).numpy(), widgets.SCALE).astype(int)


# --- PNG -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(28, 30), (5, 7, 3)])
def test_png_round_trip(shape):
    image = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    decoded = read_png(png_bytes(image))
    np.testing.assert_array_equal(decoded[..., :3] if len(shape) == 3 else decoded, image)


def test_png_refuses_what_it_cannot_write():
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((4, 4, 4), np.uint8))


def test_grey_levels_are_dark_on_light_and_enlarged():
    grey = grey_levels(np.array([[0.0, 1.0]]), 3)
    assert grey.shape == (3, 6) and grey[0, 0] == 255 and grey[0, 5] == 0


# --- paths in the latent space ---------------------------------------------------------------
def test_spherical_interpolation_turns_at_a_steady_angle_with_a_steady_norm():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(8) * 1.5, rng.standard_normal(8)
    t = np.linspace(0, 1, 11)
    path = latent.interpolate(a, b, t, "spherical")
    np.testing.assert_allclose(path[0], a, atol=1e-12)
    np.testing.assert_allclose(path[-1], b, atol=1e-12)
    norms = np.linalg.norm(path, axis=1)
    np.testing.assert_allclose(norms, (1 - t) * np.linalg.norm(a) + t * np.linalg.norm(b))
    unit = path / norms[:, None]
    angles = np.arccos(np.clip(np.sum(unit[1:] * unit[:-1], axis=1), -1, 1))
    np.testing.assert_allclose(angles, angles[0], rtol=1e-9)  # steady angle
    linear = latent.interpolate(a, b, t, "linear")
    np.testing.assert_allclose(linear[5], (a + b) / 2)
    assert np.linalg.norm(linear[5]) < norms[5]  # the line cuts through the middle


def test_interpolation_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="linear"):
        latent.interpolate(np.ones(2), np.zeros(2), 0.5, "cubic")


def test_the_line_s_midpoint_shrinks_by_one_over_cos_of_half_the_angle():
    angles = np.array([0.3, np.pi / 2, 2.5, 3.1])  # acute, right, obtuse, nearly opposite
    a = np.stack([np.full_like(angles, 2.0), np.zeros_like(angles)], axis=1)
    b = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    shrink = latent.midpoint_shrink(a, b)
    np.testing.assert_allclose(shrink, 1 / np.cos(angles / 2))
    assert abs(shrink[1] - np.sqrt(2)) < 1e-12 and shrink[3] > 20  # not bounded by sqrt 2
    assert latent.midpoint_shrink(a[:1], -a[:1])[0] == np.inf
    for i in range(len(angles)):  # the same ratio as the two paths' midpoints
        line, arc = (latent.interpolate(a[i], b[i], 0.5, kind)[0]
                     for kind in ("linear", "spherical"))
        assert np.isclose(np.linalg.norm(arc) / np.linalg.norm(line), shrink[i])


def test_spherical_interpolation_refuses_opposite_codes_and_takes_the_line_from_zero():
    a = np.array([1.0, 2.0, -0.5])
    with pytest.raises(ValueError, match="opposite directions"):
        latent.interpolate(a, -3 * a, 0.5, "spherical")
    t = np.linspace(0, 1, 5)
    np.testing.assert_allclose(latent.interpolate(np.zeros(3), a, t, "spherical"),
                               latent.interpolate(np.zeros(3), a, t, "linear"))


def test_traversal_codes_change_one_dimension_per_row():
    z0 = np.array([0.5, -1.0, 2.0])
    values = np.array([-1.0, 0.0, 1.0, 2.0])
    codes = latent.traversal_codes(z0, values)
    assert codes.shape == (3, 4, 3)
    for j in range(3):
        np.testing.assert_array_equal(codes[j, :, j], values)
        others = np.delete(codes[j], j, axis=1)
        np.testing.assert_array_equal(others, np.broadcast_to(np.delete(z0, j), others.shape))


def test_aggregate_posterior_is_the_mean_of_the_encoder_gaussians():
    rng = np.random.default_rng(0)
    mu, logvar = rng.standard_normal((5, 2)), rng.standard_normal((5, 2)) * 0.3
    z = rng.standard_normal((7, 2)) * 2
    expected = np.log(np.mean([np.exp(gaussian_log_density(z, m, v)) for m, v in zip(mu, logvar)],
                              axis=0))
    for blocks in (2, 7, 2**22):  # blocks over the examples, over the points, none
        np.testing.assert_allclose(latent.aggregate_log_density(mu, logvar, z, blocks), expected)
    side = np.linspace(-8, 8, 321)  # a density: it integrates to 1
    grid = np.stack(np.meshgrid(side, side), -1).reshape(-1, 2)
    mass = np.exp(latent.aggregate_log_density(mu, logvar, grid)).sum() * (side[1] - side[0])**2
    assert mass == pytest.approx(1.0, abs=1e-3)


# --- the widgets -----------------------------------------------------------------------------
def test_sliders_redraw_the_decoded_digit_and_sample_and_reset(models):
    model = models[4]
    explorer = widgets.LatentSliders(model, order=[2, 0, 1, 3])
    assert [s.description for s in explorer.sliders.values()] == ["z3", "z1", "z2", "z4"]
    explorer.sliders[2].value = 1.5
    np.testing.assert_array_equal(explorer.z, [0, 0, 1.5, 0])
    np.testing.assert_array_equal(read_png(explorer.image.value),
                                  decoded_grey(model, explorer.z))
    before = explorer.image.value
    explorer.set(np.array([9.0, -1.0, 0.5, 0.25]))  # clipped to the sliders' range
    np.testing.assert_array_equal(explorer.z, [3.0, -1.0, 0.5, 0.25])
    assert explorer.image.value != before
    sample, reset = explorer.widget.children[1].children[-1].children
    sample.click()
    assert np.all(explorer.z != 0)
    reset.click()
    np.testing.assert_array_equal(explorer.z, 0)
    np.testing.assert_array_equal(read_png(explorer.image.value), decoded_grey(model, np.zeros(4)))
    times = explorer.time_update(lambda i: setattr(explorer.sliders[0], "value", i / 10), 5)
    assert times.shape == (5,) and np.all(times > 0)


def test_a_widget_shows_live_in_a_notebook_and_as_a_snapshot_on_the_website(models):
    explorer = widgets.LatentSliders(models[4])
    bundle = explorer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == \
        explorer.widget.model_id
    html = bundle["text/html"]
    assert widgets.LIVE_NOTE in html and html.count("<img") == 1
    assert "data:image/png;base64," in html


def test_the_map_decodes_where_its_point_is(models):
    model = models[2]
    mu = np.array([[0.5, -0.5], [2.0, 1.0], [-9.0, 0.0]])
    explorer = widgets.LatentMap(model, mu, np.array([3, 7, 1]), extent=3.0)
    explorer.go_to(1)
    assert (explorer.z1.value, explorer.z2.value) == (2.0, 1.0)
    assert "a 7" in explorer.caption.value
    np.testing.assert_array_equal(read_png(explorer.digit.value), decoded_grey(model, [2.0, 1.0]))
    col, row = np.round(explorer.pixel(np.array([2.0, 1.0]))[0]).astype(int)
    assert (col, row) == (250, 100)  # z_2 points up
    picture = read_png(explorer.map.value)
    assert picture[row, col].tolist()[:3] == [255, 255, 255]  # the point, white in a black ring
    assert picture[row, col + 6].tolist()[:3] == [0, 0, 0]
    explorer.go_to(2)  # a code off the map is clipped to its edge
    assert explorer.z1.value == -3.0
    with pytest.raises(ValueError, match="2-D"):
        widgets.LatentMap(models[4], np.zeros((3, 4)), np.zeros(3, int))


def test_interpolation_runs_from_the_first_code_to_the_second(models):
    model = models[4]
    mu = np.random.default_rng(0).standard_normal((5, 4))
    explorer = widgets.Interpolation(model, mu, np.arange(5), first=1, second=3)
    for kind in ("linear", "spherical"):
        explorer.kind.value = kind
        explorer.t.value = 0.0
        np.testing.assert_array_equal(read_png(explorer.digit.value), decoded_grey(model, mu[1]))
        explorer.t.value = 1.0
        np.testing.assert_array_equal(read_png(explorer.digit.value), decoded_grey(model, mu[3]))
    strips = read_png(explorer.strips.value)
    assert strips.shape[:2] == (2 * (2 * 29 - 1), 2 * (9 * 29 - 1))


def test_traversal_grid_has_one_row_per_dimension(models):
    model = models[4]
    mu = np.random.default_rng(0).standard_normal((5, 4))
    explorer = widgets.Traversal(model, mu, order=[3, 1], start=2)
    codes = explorer.codes()
    assert codes.shape == (2, explorer.STEPS, 4)
    np.testing.assert_array_equal(codes[0, :, 0], mu[2, 0])
    np.testing.assert_allclose(codes[0, :, 3], np.linspace(-3, 3, explorer.STEPS))
    assert read_png(explorer.grid.value).shape[0] == 2 * (2 * 29 - 1)
    explorer.start.value = -1  # from the prior's mean
    assert np.all(explorer.codes()[1, :, 0] == 0)


def test_the_exact_posterior_widget_shows_book_quadratures_numbers_and_picture(models):
    from book import quadrature

    model = models[2]
    digits = (np.random.default_rng(0).random((3, 784)) < 0.2).astype(float)
    view = widgets.ExactPosterior(model, digits, np.array([4, 5, 6]), index=1)
    evidence = quadrature.log_evidence(model, digits[1:2])
    assert evidence.passed()
    text = view.numbers.value
    assert "a 5" in text and f"log p(x) {evidence.log_px[0]:.2f} nats, exact\n" in text
    assert f"ELBO of the encoder's q {evidence.elbo[0]:.2f}" in text
    assert f"gap KL(q(z|x) || p(z|x)) {evidence.gap[0]:.2f}" in text
    picture = read_png(view.board.value)[..., :3]
    window = quadrature.posterior_window(model, digits[1:2], evidence, 0, n=120)
    # the bluest pixel is the posterior's mode; black pixels ring q's mean at 2 sigma
    red = np.where(picture.sum(-1) == 0, 255, picture[..., 0])  # not the ellipse's black
    row, col = np.unravel_index(np.argmin(red), red.shape)
    n1, n2 = window.grid.shape
    mode = np.unravel_index(np.argmax(window.log_posterior), (n1, n2))
    assert (col // 2, n2 - 1 - row // 2) == mode
    black = np.argwhere(picture.sum(-1) == 0)
    assert len(black) > 20
    with torch.no_grad():
        mu, logvar = (a[0].numpy() for a in model.encode(
            torch.tensor(digits[1:2]).float().view(1, 1, 28, 28)))
    z1, z2 = window.grid.axes()
    z = np.stack([z1[black[:, 1] // 2], z2[n2 - 1 - black[:, 0] // 2]], 1)
    radius = np.sqrt((((z - mu) / np.exp(logvar / 2)) ** 2).sum(1))
    assert np.all(np.abs(radius - 2) < 0.25), radius
    view.index.value = 2
    assert "a 6" in view.numbers.value
    with pytest.raises(ValueError, match="2-D"):
        widgets.ExactPosterior(models[4], digits, np.zeros(3))
