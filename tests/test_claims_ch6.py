"""The appendix's corrected claims (issue 26), each proved where it can fail: the squared error's
sigma_x in both of its forms, the published number the copy of the gray levels is set beside,
what beta = 784 leaves of the code, and how wrong the exp(sigma^2) KL is.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from book import mistakes
from book.conv_vae import bits_per_dimension
from book.gaussian import gaussian_log_density, kl_to_standard_normal
from book.literature import BURDA_IWAE, BURDA_VAE
from tools.chapters import ROOT

APPENDIX = ROOT / "chapters" / "06_when_a_vae_misbehaves.ipynb"
D = 784


def cells(kind: str) -> list[str]:
    """The sources of the appendix's cells of one kind ("code" or "markdown")."""
    notebook = json.loads(APPENDIX.read_text())
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == kind]


def prose() -> str:
    return "\n".join(cells("markdown"))


def gaussian_up_to_a_constant(recon, sigma_x: float) -> bool:
    """Whether recon(x, mean) + log N(x; mean, sigma_x^2 I) is the same for several means."""
    x = torch.rand(4, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    means = [x * 0, x / 2, torch.rand(4, D, generator=torch.Generator().manual_seed(1),
                                      dtype=torch.float64)]
    logvar = torch.full_like(x, 2 * math.log(sigma_x))
    gaps = [recon(x, m) + gaussian_log_density(x, m, logvar) for m in means]
    return all(torch.allclose(gaps[0], gap, atol=1e-6) for gap in gaps[1:])


# --- WRONG 5: "MSE plus KL means sigma_x = 0.71" holds for the summed squared error only --------


def test_f_mse_loss_s_default_mean_is_the_weight_1_over_d_and_sigma_x_19_8():
    x = torch.rand(8, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mean = torch.rand(8, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    per_image = mistakes.mse_mean_reconstruction(x, mean)
    assert torch.isclose(per_image.mean(), F.mse_loss(mean, x))  # F.mse_loss's default
    assert torch.allclose(per_image, mistakes.mse_reconstruction(x, mean, 1 / D))
    sigma_sum, sigma_mean = mistakes.mse_sigma(1.0), mistakes.mse_sigma(1 / D)
    assert math.isclose(sigma_sum, 1 / math.sqrt(2)) and round(sigma_sum, 2) == 0.71
    assert math.isclose(sigma_mean, math.sqrt(D / 2)) and round(sigma_mean, 1) == 19.8
    # the summed squared error is a Gaussian with sigma_x = 0.71; F.mse_loss's mean is not
    summed = lambda x, m: mistakes.mse_reconstruction(x, m, 1.0)  # noqa: E731
    assert gaussian_up_to_a_constant(summed, sigma_sum)
    assert gaussian_up_to_a_constant(mistakes.mse_mean_reconstruction, sigma_mean)
    assert not gaussian_up_to_a_constant(mistakes.mse_mean_reconstruction, sigma_sum)


def test_a_fixed_sigma_x_pays_its_normalizer_whatever_the_mean():
    # -log N(x; m, sigma^2) >= log sigma + log(2 pi) / 2 per pixel: a bound on the bits per
    # dimension of any decoder with that sigma_x, above the uniform density's 8 for both forms
    bits = {w: bits_per_dimension(D * (math.log(mistakes.mse_sigma(w))
                                       + 0.5 * math.log(2 * math.pi))) for w in (1.0, 1 / D)}
    assert 8.8 < bits[1.0] < 8.9 and 13.6 < bits[1 / D] < 13.7
    # and F.mse_loss's squared-error term of an image in [0, 1] spans at most one nat
    x, worst = torch.zeros(1, D), torch.ones(1, D)
    assert mistakes.mse_mean_reconstruction(x, worst).item() == pytest.approx(1.0)


def test_the_appendix_computes_sigma_x_for_both_forms():
    (source,) = [c for c in cells("code") if "mistakes.mse_mean_reconstruction(x" in c]
    scope = {"D": D, "math": math, "torch": torch, "mistakes": mistakes,
             "gaussian_log_density": gaussian_log_density,
             "bits_per_dimension": bits_per_dimension}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(source, str(APPENDIX), "exec"), scope)  # its assertions run too
    assert "sigma_x = 0.707" in printed.getvalue()
    assert "sigma_x = 19.8" in printed.getvalue()
    assert scope["sigma_of"]["F.mse_loss (the mean)"] == pytest.approx(math.sqrt(D / 2))
    assert "19.8" in prose() and "F.mse_loss" in prose()


def test_the_docstring_says_which_squared_error_means_0_71():
    doc = mistakes.mse_reconstruction.__doc__
    assert "summed over the pixels" in doc and "1 / D" in doc
    assert "19.8" in mistakes.mse_mean_reconstruction.__doc__


# --- WRONG 6: 86.76 nats is Burda et al.'s one-layer VAE, not their best ------------------------


def test_the_copy_of_the_gray_levels_is_set_beside_burda_s_one_layer_vae():
    assert BURDA_VAE.nats == 86.76 and "1 stochastic layer" in BURDA_VAE.model
    assert BURDA_IWAE.nats < BURDA_VAE.nats  # the same table has better: 86.76 is not the best
    text = prose()
    assert "Burda et al.'s best" not in text
    assert "the one-layer VAE of {footcite:t}`burda2016importance` (86.76 nats)" in " ".join(
        text.split())


# --- WRONG 7: beta = 784 leaves at most one active dimension, which is what the cell asserts ----


def test_the_appendix_says_of_beta_784_what_its_cell_asserts():
    assert any("latent.active_units(mu_pm) <= 1" in c for c in cells("code"))
    text = " ".join(prose().split())
    assert "where every dimension collapsed" not in text
    assert "switches every dimension off" not in text
    assert text.count("all but at most one") >= 2


# --- the exp(sigma^2) KL: too large at every sigma, sigma = 1 included ---------------------------


def test_the_exp_variance_kl_is_too_large_at_every_sigma():
    logvar = np.linspace(-8, 4, 1201)  # sigma^2 = 1 (log sigma^2 = 0) is on the grid
    mu = np.zeros_like(logvar)
    excess = (mistakes.kl_exp_variance(mu[:, None], logvar[:, None])
              - kl_to_standard_normal(mu[:, None], logvar[:, None]))
    assert np.all(excess > 0.5)  # (exp(v) - v) / 2 > 1/2 for every variance v > 0
    assert np.isclose(excess[np.argmin(np.abs(logvar))], (math.e - 1) / 2)  # at sigma = 1
    # an unused dimension (mu = 0) is pulled to v exp(v) = 1: W(1) = 0.567, not 1
    v = np.exp(logvar)
    best = v[np.argmin(mistakes.kl_exp_variance(mu[:, None], logvar[:, None]))]
    assert abs(best - 0.5671) < 0.01
    text = " ".join(prose().split())
    assert "wherever $\\sigma^2 \\ne 1$" not in text


# --- the prior KL written with its arguments; the blur that no code fixes ------------------------


def test_the_prior_kl_is_written_with_its_arguments():
    bare = re.findall(r"\\mathrm\{KL\}(?!\s*(\\big)?\()", prose())
    assert not bare, "a KL without its arguments in the appendix's prose"


def test_the_symptom_table_names_the_blur_that_no_code_fixes():
    (row,) = [line for line in prose().splitlines() if line.startswith("| Reconstructions are")]
    assert "factorized decoder" in row
    for remedy in ("show a sample", "smaller $\\sigma_x$", "more expressive decoder"):
        assert remedy in row, remedy


# --- Issue 27: the appendix links to each derivation instead of re-deriving it ----------------

DERIVATIONS = {  # the appendix's section: the label of the place that derives the correct form
    "mistake-pixel-mean": "numpy-sums-not-means", "mistake-kl-formula": "vi-mistakes",
    "mistake-reparameterization": "vi-mistakes", "mistake-bernoulli-grey": "numpy-grey-levels",
    "mistake-no-floor": "conv-sigma-floor", "mistake-collapse": "comparison-collapse",
    "mistake-prior-holes": "aggregate-posterior"}


def test_each_section_links_to_the_labeled_place_that_derives_its_correct_form():
    chapters = " ".join(p.read_text() for p in (ROOT / "chapters").glob("*.ipynb"))
    sections = re.split(r"\(mistake-", "\n".join(cells("markdown")))
    for section, label in DERIVATIONS.items():
        (text,) = [s for s in sections if s.startswith(section.removeprefix("mistake-") + ")=")]
        assert re.search(rf"\{{ref\}}`(?:[^`<]*<)?{label}>?`", text), (section, label)
        assert f"({label})=" in chapters, f"no section is labeled {label}"


def test_beta_and_a_fixed_sigma_x_are_one_knob():
    """Weighting the KL by beta with sigma_x fixed is the plain ELBO with sigma_x^2 times beta."""
    rng = np.random.default_rng(0)
    residual2, kl, sigma2, beta = rng.uniform(1, 9, 4)
    weighted = residual2 / (2 * sigma2) + beta * kl
    assert weighted == pytest.approx(beta * (residual2 / (2 * beta * sigma2) + kl))
    assert "one knob" in " ".join(" ".join(cells("markdown")).split())
