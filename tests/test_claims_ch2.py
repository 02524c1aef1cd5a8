"""Chapter 2's claims that are facts rather than runs: the mass a Bernoulli likelihood gives
gray levels, and the published numbers the chapter quotes."""
from __future__ import annotations

import numpy as np
import pytest

from book.literature import BURDA_IWAE, BURDA_VAE, KINGMA_RESNET_VAE, LITERATURE
from book.numpy_vae import grey_level_mass


def integral_over_grey_levels(p: float, n: int = 20_001) -> float:
    """The integral over x in [0, 1] of p^x (1 - p)^(1 - x), by Simpson's rule."""
    x = np.linspace(0, 1, n)
    f = p**x * (1 - p) ** (1 - x)
    return float((f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum()) / (3 * (n - 1)))


def test_the_mass_is_the_integral_of_the_bernoulli_over_grey_levels():
    for p in (0.001, 0.05, 0.3, 0.49, 0.5, 0.51, 0.7, 0.9, 0.999):
        assert grey_level_mass(p) == pytest.approx(integral_over_grey_levels(p), abs=1e-9), p


def test_the_mass_never_exceeds_one_half_and_is_never_one():
    # The chapter once said the mass "is 1 only in the limit p -> 1/2": it is at most 1/2.
    p = np.linspace(0, 1, 100_001)
    mass = grey_level_mass(p)
    assert np.all(mass <= 0.5), f"largest mass {mass.max()} above 1/2"
    assert np.all(mass >= 0)
    assert mass.max() == pytest.approx(0.5, abs=1e-12)
    assert np.abs(mass - 1).min() > 0.49, "the mass came near 1"
    np.testing.assert_allclose(mass, mass[::-1], rtol=0, atol=1e-12)  # symmetric in p, 1 - p
    assert grey_level_mass(0.0) == 0 and grey_level_mass(1.0) == 0


def test_the_mass_tends_to_one_half_as_p_tends_to_one_half_and_falls_away_from_it():
    for eps in (1e-1, 1e-2, 1e-3, 1e-5, 1e-7):
        for p in (0.5 - eps, 0.5 + eps):
            # y / artanh(y) = 1 - y^2 / 3 + O(y^4), y = 1 - 2p
            assert 0.5 - grey_level_mass(p) == pytest.approx(2 * eps**2 / 3, rel=0.05), p
    upper = np.linspace(0.5, 1, 1001)
    assert np.all(np.diff(grey_level_mass(upper)) < 0), "not falling from p = 1/2 to 1"
    # the numbers the review checked: 0.493 at 0.6, 0.472 at 0.7, 0.364 at 0.9, 0.213 at 0.99
    np.testing.assert_allclose(grey_level_mass([0.6, 0.7, 0.9, 0.99]),
                               [0.493, 0.472, 0.364, 0.213], atol=5e-4)


def test_the_continuous_bernoulli_normalizer_is_the_reciprocal_and_at_least_two():
    p = np.linspace(0.001, 0.999, 999)
    y = 1 - 2 * p
    with np.errstate(invalid="ignore", divide="ignore"):
        normalizer = np.where(y == 0, 2.0, 2 * np.arctanh(y) / y)  # Loaiza-Ganem et al.
    np.testing.assert_allclose(normalizer * grey_level_mass(p), 1, rtol=1e-12)
    assert np.all(normalizer >= 2)


def test_the_mass_refuses_what_is_no_probability():
    with pytest.raises(ValueError, match="probabilities"):
        grey_level_mass([0.5, 1.2])


def test_the_resnet_vae_of_kingma_et_al_is_an_importance_sampled_estimate_with_128_samples():
    # Kingma et al. (2016), Table 1, "Diagonal covariance": ELBO 84.08, log p(x) 81.08
    # importance-sampled with 128 samples (the book's chapters use K = 1,000 and 5,000)
    assert KINGMA_RESNET_VAE.k == 128
    assert KINGMA_RESNET_VAE.nats == 81.08 and KINGMA_RESNET_VAE.neg_elbo == 84.08
    assert "Kingma et al. 2016, Table 1" == KINGMA_RESNET_VAE.source
    assert KINGMA_RESNET_VAE not in LITERATURE


def test_every_published_likelihood_lies_below_its_negative_elbo():
    for paper in (*LITERATURE, KINGMA_RESNET_VAE):
        assert paper.k >= 1 and paper.nats > 0, paper
        if paper.neg_elbo is not None:
            assert paper.nats < paper.neg_elbo, paper  # -log p(x) <= -ELBO
    assert (BURDA_VAE.k, BURDA_IWAE.k) == (5000, 5000)


# --- Issue 27: the chapter as a learner's path ---------------------------------------------------

def _chapter() -> list[dict]:
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "chapters" / "02_numpy_vae.ipynb"
    return json.loads(path.read_text())["cells"]


def test_the_chapter_opens_for_a_learner_and_ends_with_summary_bridge_and_references():
    cells = _chapter()
    opening = "".join(cells[0]["source"])
    for part in ("**You will learn**", "**You need**", "**Time**", "{doc}`01_variational_inference`",
                 "reparameterization"):
        assert part in opening, part
    prose = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    # the labels other chapters link to, and the sections this one is read by
    for label in ("numpy-sums-not-means", "numpy-grey-levels", "numpy-literature", "numpy-backward",
                  "numpy-gaps", "numpy-summary"):
        assert f"({label})=" in prose, label
    assert ":name: numpy-performance" in prose and ":class: dropdown" in prose
    assert "reparametrization" in prose  # the other spelling, once, for the site's search
    assert "{doc}`03_conv_vae`" in prose  # the bridge
    last = "".join(cells[-1]["source"])
    assert cells[-1]["cell_type"] == "markdown" and last.startswith("## References")
    assert "{footbibliography}" in last
    # the lesson's code stays open; the set-up, parameters and imports are folded
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    for lesson in ("VAE.forward", "VAE.backward", "iwae.iwae_bound"):
        assert any(f"show_source({lesson}, folded=False)" in s for s in code), lesson
    for c in [c for c in cells if c["cell_type"] == "code"][:3]:
        assert "hide-input" in c["metadata"].get("tags", [])


def test_the_quadrature_spacing_is_delta_not_the_hidden_activations_h():
    # One notation (the opening page's table); the citations are tests/test_pages.py's.
    cells = _chapter()
    prose = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "spacing $\\Delta$" in prose and "spacing $h$" not in prose
