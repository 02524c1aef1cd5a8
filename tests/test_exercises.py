"""book.exercises: every checker passes the book's solution (the chapters' own solution cells),
fails wrong answers with the hint that names their mistake, and says "not attempted yet" for a
stub; every checker is used by an exercise of a chapter, which has its solution folded."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from book import exercises, mistakes
from book.exercises import NOT_ATTEMPTED, RIGHT, WRONG
from book.latent import aggregate_log_density
from book.vi import LinearGaussianModel, gaussian_kl
from tools.chapters import chapter_notebooks

CHAPTERS = chapter_notebooks()


def cells(tag: str) -> list[tuple[str, str]]:
    """(chapter, source) of every code cell carrying ``tag``."""
    found = []
    for notebook in CHAPTERS:
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            if tag in cell.get("metadata", {}).get("tags", []):
                found.append((notebook.stem, "".join(cell["source"])))
    return found


def stub(*args):
    raise NotImplementedError  # your code here


# Per checker: wrong answers written here (not taken from the checker's own list) and a word
# of the hint each must get.
WRONG_ANSWERS = {
    "check_kl_diagonal": [
        (mistakes.kl_wrong_sign, "sign"),
        (mistakes.kl_exp_variance, "exp(sigma^2)"),
        (lambda mu, lv: 0.5 * np.mean(np.exp(lv) + mu**2 - 1 - lv, axis=-1), "mean over"),
    ],
    "check_reparameterize": [
        (mistakes.reparameterize_with_variance, "sigma^2 for sigma"),
        (lambda mu, lv, e: mu + lv * e, "logvar used as sigma"),
    ],
    "check_kl_full_covariance": [
        (lambda m, c: 0.5 * (np.trace(c) + m @ m - len(m) + np.log(np.linalg.det(c))),
         "sign of log det"),
        (lambda m, c: 0.5 * (np.trace(c) + m @ m - np.log(np.linalg.det(c))), "-d"),
    ],
    "check_mean_field_variances": [
        (lambda p: np.linalg.inv(p).diagonal(), "KL(p || q)"),
        (lambda p: np.sqrt(1 / p.diagonal()), "square root"),
    ],
    "check_iwae_bound": [
        (lambda lw: np.mean(lw, axis=1), "K-sample ELBO"),
        (lambda lw: np.log(np.exp(lw).mean(axis=1)), "subtract the row's maximum"),
    ],
    "check_bernoulli_log_likelihood": [
        (lambda x, l: np.sum(x * np.log(torch.sigmoid(torch.as_tensor(l)).numpy())
                             + (1 - x) * np.log(1 - torch.sigmoid(torch.as_tensor(l))
                                                .numpy()), axis=-1), "-inf"),
        (lambda x, l: np.mean(x * l - np.logaddexp(0, l), axis=-1), "mean over the pixels"),
    ],
    "check_kl_gradients": [
        (lambda mu, lv: (mu, np.exp(lv) - 1.0), "1/2"),
        (lambda mu, lv: (-mu, (np.exp(lv) - 1) / 2), "sign of dKL/dmu"),
    ],
    "check_bounded_logvar_backward": [
        (lambda lv, up: up * (1 - np.tanh(lv) ** 2), "tanh of the log-variance"),
        (lambda lv, up: 1 - (lv / 8) ** 2, "chain rule"),
    ],
    "check_gray_level_mass": [(1.0, "not 1"), (0.5, "largest mass")],
    "check_transposed_conv_size": [
        (lambda n, k, s, p, op: math.floor((n + 2 * p - k) / s) + 1, "convolution's"),
        (lambda n, k, s, p, op: (n - 1) * s - 2 * p + k, "output_padding"),
    ],
    "check_gaussian_log_density": [
        (lambda x, m, lv: -0.5 * np.sum(lv + (x - m) ** 2 / np.exp(lv), axis=-1), "2 pi"),
        (lambda x, m, lv: -0.5 * np.sum(np.log(2 * np.pi) + lv + (x - m) ** 2
                                        / np.exp(lv / 2), axis=-1), "divided by sigma"),
    ],
    "check_dequantize": [
        (lambda p, u: (p + u) / 255.0, "/255"),
        (lambda p, u: p / 256.0, "noise is missing"),
    ],
    "check_bits_per_dimension": [
        (lambda nats, dims: nats / dims / np.log(2), "log 256"),
        (lambda nats, dims: nats / dims + np.log(256), "still in nats"),
    ],
    "check_ppca_fit": [
        (lambda ev, d: (ev[d:].mean(), np.sqrt(ev[:d])), "sqrt(lambda_j - s^2)"),
        (lambda ev, d: (ev.min(), np.sqrt(ev[:d] - ev.min())), "not the smallest"),
    ],
    "check_active_directions": [
        (lambda e, s2: int((e > np.sqrt(s2)).sum()), "not with s"),
        (lambda e, s2: len(e) - int((e > s2).sum()), "other way round"),
    ],
    "check_responsibilities": [
        (lambda lp, ll: np.exp(lp + ll), "not normalized"),
        (lambda lp, ll: np.exp(lp + ll) / np.exp(lp + ll).sum(1, keepdims=True), "underflows"),
    ],
    "check_em_bound": [("b", "latent"), ("c", "optimized")],
    "check_mutual_information": [
        (lambda mu, lv, e: float(np.mean(
            0.5 * np.sum(-np.log(2 * np.pi) - lv - e**2, -1)
            + 0.5 * np.sum(np.log(2 * np.pi) + (mu + np.exp(lv / 2) * e) ** 2, -1))),
         "log p(z) where log q(z)"),
        (lambda mu, lv, e: float(np.mean(aggregate_log_density(mu, lv, mu + np.exp(lv / 2) * e))),
         "log q(z | x) is missing"),
    ],
    "check_posterior_on_grid": [
        (lambda lj, a: (np.log(np.exp(lj).sum()), np.exp(lj) / np.exp(lj).sum()), "area"),
        (lambda lj, a: (np.log(np.exp(lj).sum() * a), np.exp(lj) / np.exp(lj).sum()),
         "underflows"),
        (lambda lj, a: (np.log(np.exp(lj - lj.max()).sum() * a) + lj.max(),
                        np.exp(lj - lj.max()) / np.exp(lj - lj.max()).sum() / a), "density"),
    ],
    "check_slerp": [
        (lambda za, zb, t: za + t * (zb - za), "straight line"),
        (lambda za, zb, t: (np.sin((1 - t) * np.arccos(za @ zb / np.linalg.norm(za)
                                                       / np.linalg.norm(zb))) * za
                            + np.sin(t * np.arccos(za @ zb / np.linalg.norm(za)
                                                   / np.linalg.norm(zb))) * zb)
         / np.sin(np.arccos(za @ zb / np.linalg.norm(za) / np.linalg.norm(zb))),
         "norms are equal"),
    ],
    "check_diagnosis_a": [("a", "Monte Carlo KL"), ("b", "A's sampler"), ("d", "partner")],
    "check_diagnosis_b": [("a", "Monte Carlo KL"), ("c", "B's KL"), ("d", "partner")],
}
# Checkers that take more than the answer: tested on their own below.
NOT_IN_TABLE = {"check_large_gap"}
CHECKERS = sorted(name for name in dir(exercises) if name.startswith("check_")
                  and name not in {"check_function", "check_number", "check_choice"})


def test_the_table_covers_every_checker():
    assert set(CHECKERS) == set(WRONG_ANSWERS) | NOT_IN_TABLE


@pytest.mark.parametrize("name", sorted(WRONG_ANSWERS))
def test_a_wrong_answer_fails_with_the_hint_that_names_it(name):
    checker = getattr(exercises, name)
    for answer, hint in WRONG_ANSWERS[name]:
        verdict = checker(answer)
        assert verdict.status == WRONG and not verdict, (name, verdict)
        assert hint in " ".join(verdict.message.split()), (name, hint, verdict.message)
        with pytest.raises(AssertionError, match="fails its checker"):
            checker(answer, strict=True)


def test_an_answer_matching_no_known_mistake_gets_no_hint():
    verdict = exercises.check_mutual_information(lambda mu, lv, e: -0.1)
    assert verdict.status == WRONG and "hint" not in verdict.message
    assert "expected" in verdict.message and "got      -0.1" in verdict.message


@pytest.mark.parametrize("name", sorted(WRONG_ANSWERS))
def test_a_stub_is_not_attempted_yet_not_an_error(name):
    checker = getattr(exercises, name)
    for untouched in ((None,) if not callable(WRONG_ANSWERS[name][0][0]) else
                      (stub, lambda *args: None)):
        verdict = checker(untouched)
        assert verdict.status == NOT_ATTEMPTED and NOT_ATTEMPTED in repr(verdict), name
        with pytest.raises(AssertionError):
            checker(untouched, strict=True)


def test_an_answer_that_raises_is_reported_with_its_input():
    verdict = exercises.check_kl_diagonal(lambda mu, lv: mu.no_such_method())
    assert verdict.status == WRONG and "AttributeError" in verdict.message
    assert "input" in verdict.message


def test_a_right_answer_of_the_wrong_shape_is_wrong():
    verdict = exercises.check_kl_diagonal(
        lambda mu, lv: 0.5 * (np.exp(lv) + mu**2 - 1 - lv))  # not summed
    assert verdict.status == WRONG and "shape" in verdict.message


@pytest.mark.parametrize("chapter, source", cells("solution"), ids=lambda v: str(v)[:30])
def test_the_books_solutions_pass_their_checkers(chapter, source):
    """Each solution cell calls its checker with strict=True: it raises if the solution
    is wrong. The cells need only numpy, math and the book."""
    namespace = {"np": np, "math": math, "torch": torch, "exercises": exercises}
    exec(compile(source, f"<{chapter} solution>", "exec"), namespace)
    assert "strict=True" in source and "exercises.check_" in source, source[:80]


def test_every_checker_closes_an_exercise_with_a_folded_solution():
    """Each checker is called by a chapter: by the reader's cell (after a stub), and by a
    solution cell that the website folds under "Show the solution"."""
    everything = "\n".join(source for _, source in cells("exercise") + cells("solution")
                           + cells("solution-in-context"))
    for name in CHECKERS:
        assert f"exercises.{name}(" in everything, f"no exercise uses {name}"
    for notebook in CHAPTERS:
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            tags = cell.get("metadata", {}).get("tags", [])
            if {"solution", "solution-in-context"} & set(tags):
                assert "hide-cell" in tags, notebook.stem  # its printed verdict too
                prompt = cell["metadata"].get("mystnb", {}).get("code_prompt_show", "")
                assert "solution" in prompt, (notebook.stem, prompt)
                assert cell["metadata"].get("jupyter", {}).get("source_hidden"), notebook.stem


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_exercises(notebook):
    source = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    markdown = "\n".join("".join(c["source"]) for c in source if c["cell_type"] == "markdown")
    count = markdown.count(":::{admonition} Exercise")
    low = 2 if notebook.stem.startswith("06") else 4
    assert low <= count <= 6, f"{notebook.stem}: {count} exercises"
    assert "## Exercises" in markdown


def test_a_large_gap_is_found_and_a_small_one_refused():
    """On the linear-Gaussian model the mean-field q's gap is KL(q || p(z|x)) in closed form."""
    rng = np.random.default_rng(0)
    model = LinearGaussianModel.random(rng, d=2, D=6, s=0.5)
    x = model.sample(rng, 3)[1]
    mean, logvar = model.encode(x)
    post_mean, post_cov = model.posterior(x)
    gaps = [gaussian_kl(mean[i], np.diag(np.exp(logvar[i])), post_mean[i], post_cov)
            for i in range(len(x))]
    i = int(np.argmax(gaps))
    assert exercises.check_large_gap(i, model, x, threshold=gaps[i] - 1e-3)
    refused = exercises.check_large_gap(i, model, x, threshold=gaps[i] + 1e-3)
    assert refused.status == WRONG and f"{gaps[i]:.2f} nats" in refused.message
    assert exercises.check_large_gap(None, model, x).status == NOT_ATTEMPTED
    assert exercises.check_large_gap(len(x), model, x).status == WRONG


def test_right_answers_say_so():
    verdict = exercises.check_active_directions(lambda e, s2: int(np.sum(e > s2)))
    assert verdict.status == RIGHT and verdict and repr(verdict).startswith("✓")
