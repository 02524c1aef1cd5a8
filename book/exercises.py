"""Checkers for the exercises that end each chapter: is a reader's answer right, if not, why?

An exercise cell holds a stub the reader fills in; the next cell passes it to a checker here,
``check_<name>(answer)``, whose verdict is the cell's output:

- "✓ right", with what was checked;
- "✗ not right", with the input on which it failed, the expected value against the one the
  answer gave, and, when the answer matches a mistake people make (the wrong KLs of
  ``book/mistakes.py``, sigma^2 for sigma, a mean over pixels, ...), a hint that names it;
- "not attempted yet" for a stub that raises ``NotImplementedError`` or returns None, so that
  "Run all" (in Colab, and when the website is built) passes over exercises nobody did.

A checker compares with the book's own code wherever the book has it (``gaussian``, ``vi``,
``numpy_vae``, ``conv_vae``, ``ppca``, ``quadrature``, ``latent``), on fixed random inputs that
include the awkward ones (large logits, far-off log-weights). The book's solutions call the
checkers with ``strict=True``, which raises when the verdict is not "right": a published
solution that is wrong fails the build.

This module sits on top of the book's layers, beside ``book.mistakes`` (whose wrong variants
are the catalogue of hints); nothing in ``book/`` imports it.
"""
from __future__ import annotations

import inspect
import math
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from book import mistakes
from book.conv_vae import bits_per_dimension
from book.gaussian import (LOGVAR_BOUND, gaussian_log_density, kl_to_standard_normal,
                           kl_to_standard_normal_grad, log_mean_exp, log_sum_exp,
                           reparameterize, standard_normal_log_density)
from book.latent import aggregate_log_density, interpolate
from book.numpy_vae import bernoulli_log_likelihood, grey_level_mass
from book.vi import gaussian_kl

RIGHT, WRONG, NOT_ATTEMPTED = "right", "not right", "not attempted yet"


@dataclass(frozen=True)
class Verdict:
    """A checker's answer: ``status`` (RIGHT, WRONG or NOT_ATTEMPTED) and the message shown.

    It displays as its message (the output of the cell that calls the checker) and is true
    only when the answer is right.
    """

    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == RIGHT

    def __repr__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer: what it computes (same signature as the answer) and the hint."""

    answer: Callable[..., Any]
    hint: str


class _NotAttempted(Exception):
    """The answer is still the stub."""


# --- the engine -------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A short, one-line picture of a value: a number, a tuple, or an array's first row."""
    if isinstance(value, (bool, int, np.integer)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    a = np.asarray(value)
    if a.dtype == object:
        return repr(value)[:60]
    first = a if a.ndim < 2 else a[0]
    text = np.array2string(first, precision=4, threshold=4, edgeitems=2, max_line_width=10**4)
    return text + (f" ... (shape {a.shape})" if a.ndim >= 2 else "")


def _arguments(answer: Callable[..., Any] | None, args: tuple) -> str:
    """The inputs, one per line, named as the answer names its parameters."""
    try:
        names = list(inspect.signature(answer).parameters)[:len(args)]
    except (TypeError, ValueError):
        names = []
    names += [f"argument {i + 1}" for i in range(len(names), len(args))]
    return "".join(f"\n    {name} = {_show(arg)}" for name, arg in zip(names, args))


def _hint(text: str) -> str:
    """A hint's lines, wrapped to the width of a notebook's output."""
    return "\n" + textwrap.fill(f"hint: {text}", 88, initial_indent="  ",
                                subsequent_indent="        ")


def _call(answer: Callable[..., Any] | None, args: tuple) -> Any:
    if answer is None:
        raise _NotAttempted
    try:
        got = answer(*args)
    except NotImplementedError:
        raise _NotAttempted from None
    if got is None:
        raise _NotAttempted
    return got


def _close(got: Any, expected: Any, rtol: float, atol: float, equal_nan: bool = False) -> bool:
    """Whether got matches expected: same structure and shape, equal within the tolerances."""
    if isinstance(expected, tuple):
        return (isinstance(got, (tuple, list)) and len(got) == len(expected)
                and all(_close(g, e, rtol, atol, equal_nan) for g, e in zip(got, expected)))
    try:
        g, e = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return g.shape == e.shape and bool(np.allclose(g, e, rtol, atol, equal_nan=equal_nan))


def _finite(got: Any) -> bool:
    if isinstance(got, (tuple, list)):
        return all(_finite(g) for g in got)
    try:
        return bool(np.all(np.isfinite(np.asarray(got, dtype=np.float64))))
    except (TypeError, ValueError):
        return True  # not numbers at all: the shapes or types are what differ


def _finish(verdict: Verdict, strict: bool) -> Verdict:
    if strict and not verdict:
        raise AssertionError(f"a solution of the book fails its checker:\n{verdict.message}")
    return verdict


def check_function(answer: Callable[..., Any] | None, reference: Callable[..., Any],
                   cases: Sequence[tuple], *, name: str, mistakes: Sequence[Mistake] = (),
                   rtol: float = 1e-6, atol: float = 1e-8, strict: bool = False) -> Verdict:
    """Compare ``answer(*case)`` with ``reference(*case)`` on every case, in order.

    The first case where they differ (in shape, or beyond ``rtol``/``atol``), or where the
    answer raises, is reported with both results; a mistake whose own result matches the
    answer's there adds its hint. ``strict`` raises ``AssertionError`` unless it is right.
    """
    for args in cases:
        expected = reference(*args)
        try:
            got = _call(answer, args)
        except _NotAttempted:
            return _finish(Verdict(NOT_ATTEMPTED, f"{name}: {NOT_ATTEMPTED}"), strict)
        except Exception as error:  # the reader's code failed: say how, and on what
            return _finish(Verdict(WRONG, f"✗ {name} is {WRONG}: it raised "
                                   f"{type(error).__name__}: {error}\n  on the input"
                                   f"{_arguments(answer, args)}"), strict)
        if _close(got, expected, rtol, atol):
            continue
        message = (f"✗ {name} is {WRONG}.\n  on the input{_arguments(answer, args)}\n"
                   f"  expected {_show(expected)}\n  got      {_show(got)}")
        for mistake in mistakes:
            with np.errstate(all="ignore"):
                theirs = mistake.answer(*args)
            if _close(got, theirs, 1e-4, 1e-6, equal_nan=True):
                message += _hint(mistake.hint)
                break
        else:
            if not _finite(got):
                message += _hint("a result that is not finite: exp overflowed or log(0)?")
        return _finish(Verdict(WRONG, message), strict)
    inputs = "1 input" if len(cases) == 1 else f"{len(cases)} inputs"
    return _finish(Verdict(RIGHT, f"✓ {name} is {RIGHT} on {inputs}"), strict)


def check_number(answer: float | None, expected: float, *, name: str,
                 mistakes: Sequence[tuple[float, str]] = (), rtol: float = 1e-3,
                 strict: bool = False) -> Verdict:
    """A number the reader computed (on paper or in code) against the book's.

    ``mistakes`` pairs the values that known mistakes give with their hints.
    """
    if answer is None:
        return _finish(Verdict(NOT_ATTEMPTED, f"{name}: {NOT_ATTEMPTED}"), strict)
    if math.isclose(float(answer), expected, rel_tol=rtol, abs_tol=1e-9):
        return _finish(Verdict(RIGHT, f"✓ {name} = {float(answer):.6g} is {RIGHT}"), strict)
    message = f"✗ {name} is {WRONG}: expected {expected:.6g}, got {float(answer):.6g}"
    for value, hint in mistakes:
        if math.isclose(float(answer), value, rel_tol=rtol, abs_tol=1e-9):
            message += _hint(hint)
            break
    return _finish(Verdict(WRONG, message), strict)


def check_choice(answer: str | None, right: str, *, name: str, why: str,
                 hints: dict[str, str], strict: bool = False) -> Verdict:
    """One letter of a multiple choice: ``why`` is said when right, ``hints[letter]`` if not."""
    if answer is None:
        return _finish(Verdict(NOT_ATTEMPTED, f"{name}: {NOT_ATTEMPTED}"), strict)
    letter = str(answer).strip().lower().strip("()")
    if letter == right:
        verdict = f"✓ {name}: ({right}) is {RIGHT}. {why}"
        return _finish(Verdict(RIGHT, textwrap.fill(verdict, 88, subsequent_indent="  ")),
                       strict)
    if letter not in hints:
        return _finish(Verdict(WRONG, f"✗ {name}: answer one of "
                               f"{', '.join(sorted([*hints, right]))}, not {answer!r}"), strict)
    return _finish(Verdict(WRONG, f"✗ {name}: ({letter}) is {WRONG}." + _hint(hints[letter])),
                   strict)


def _gaussians(seed: int, n: int = 5, d: int = 3, wide: bool = True) -> list[tuple]:
    """Cases (mu, logvar) of q(z|x): a batch of n codes, then one with sigma far from 1."""
    rng = np.random.default_rng(seed)
    cases = [(rng.normal(size=(n, d)), rng.normal(size=(n, d)))]
    if wide:
        cases.append((rng.normal(size=(2, d)), rng.uniform(-6, 3, size=(2, d))))
    return cases


# --- chapter 1: variational inference ---------------------------------------------------------

_SUM_NOT_MEAN = ("a mean over the latent dimensions: the KL of independent coordinates is "
                 "their sum, over the last axis")


def check_kl_diagonal(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: KL(N(mu, diag exp(logvar)) || N(0, I)) per row, summed over the last axis."""
    return check_function(answer, kl_to_standard_normal, _gaussians(1), name="kl_diagonal",
                          strict=strict, mistakes=[
        Mistake(mistakes.kl_wrong_sign, "the sign: that is the term as it appears in the "
                "ELBO, -KL; the KL itself is never negative"),
        Mistake(mistakes.kl_exp_variance, "exp(sigma^2): exp(logvar) already is sigma^2, "
                "do not exponentiate it again"),
        Mistake(mistakes.kl_for_log_std, "the KL of an encoder that outputs log sigma; here "
                "logvar is log sigma^2, so sigma^2 = exp(logvar)"),
        Mistake(lambda mu, lv: kl_to_standard_normal(mu, lv) / mu.shape[-1], _SUM_NOT_MEAN),
        Mistake(lambda mu, lv: 0.5 * np.sum(np.exp(lv) + mu**2 - lv, axis=-1),
                "the -1 inside the sum is missing: without it the KL of q = p is d/2, not 0"),
    ])


def check_reparameterize(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: z = mu + sigma eps with sigma = exp(logvar / 2)."""
    rng = np.random.default_rng(2)
    cases = [(mu, lv, rng.standard_normal(mu.shape)) for mu, lv in _gaussians(2)]
    return check_function(answer, reparameterize, cases, name="reparameterize",
                          strict=strict, mistakes=[
        Mistake(mistakes.reparameterize_with_variance, "sigma^2 for sigma: the noise is "
                "scaled by the standard deviation exp(logvar / 2), not the variance"),
        Mistake(lambda mu, lv, e: mu + lv * e, "logvar used as sigma: sigma = exp(logvar / 2)"),
        Mistake(lambda mu, lv, e: np.exp(0.5 * lv) * e, "the mean is missing: z = mu + ..."),
        Mistake(lambda mu, lv, e: mu + np.exp(-0.5 * lv) * e, "exp(-logvar / 2) is 1 / sigma"),
    ])


def _full_covariances(seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    cases = []
    for d in (2, 3, 5):
        a = rng.normal(size=(d, d))
        cases.append((rng.normal(size=d), a @ a.T / d + 0.1 * np.eye(d)))
    return cases


def check_kl_full_covariance(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: KL(N(mean, cov) || N(0, I)) for a full covariance (d, d)."""

    def reference(mean, cov):
        return gaussian_kl(mean, cov, np.zeros(len(mean)), np.eye(len(mean)))

    def terms(mean, cov):  # trace, |mean|^2, d, log det
        return np.trace(cov), mean @ mean, len(mean), np.linalg.slogdet(cov)[1]

    return check_function(answer, reference, _full_covariances(3), name="kl_full_covariance",
                          strict=strict, mistakes=[
        Mistake(lambda m, c: 0.5 * (terms(m, c)[0] + terms(m, c)[1] - terms(m, c)[2]
                                    + terms(m, c)[3]),
                "the sign of log det: KL = 1/2 (tr + |mu|^2 - d - log det cov)"),
        Mistake(lambda m, c: 0.5 * (terms(m, c)[0] + terms(m, c)[1] - terms(m, c)[3]),
                "the -d is missing: without it KL(N(0, I) || N(0, I)) is d/2, not 0"),
        Mistake(lambda m, c: 0.5 * (np.trace(np.linalg.inv(c)) + m @ m - len(m)
                                    - terms(m, c)[3]),
                "tr(cov^-1): that belongs to KL(N(0, I) || q), the other direction"),
        Mistake(lambda m, c: 0.5 * (np.sum(np.diag(c)) + m @ m - len(m)
                                    - np.sum(np.log(np.diag(c)))),
                "only the diagonal of cov: its log det is not the sum of the log variances "
                "when the coordinates are correlated"),
    ])


def check_mean_field_variances(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: the variances sigma_j^2 of the best factorized q of N(m, Lambda^-1)."""
    rng = np.random.default_rng(4)
    cases = []
    for d in (2, 3, 4):
        a = rng.normal(size=(d, d))
        cases.append((a @ a.T + 0.5 * np.eye(d),))
    return check_function(answer, lambda precision: 1 / np.diag(precision), cases,
                          name="mean_field_variances", strict=strict, mistakes=[
        Mistake(lambda p: np.diag(np.linalg.inv(p)), "the posterior's marginal variances "
                "diag(Lambda^-1): what minimizing KL(p || q) gives (moment matching); the ELBO "
                "minimizes KL(q || p), which gives 1 / Lambda_jj"),
        Mistake(lambda p: 1 / np.sqrt(np.diag(p)), "a standard deviation: the variance is "
                "1 / Lambda_jj, not its square root"),
        Mistake(lambda p: np.diag(p), "the precision itself: the variance is its reciprocal"),
    ])


def check_iwae_bound(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: the IWAE bound log (1/K) sum_k w_k from log-weights (N, K), per row."""
    rng = np.random.default_rng(5)
    cases = [(rng.normal(size=(4, 10)),),
             (rng.normal(-800, 3, size=(3, 50)),),  # a digit's log-weights: exp underflows
             (np.array([[900.0, 890.0, 880.0]]),)]  # and overflows
    return check_function(answer, log_mean_exp, cases, name="iwae_bound", strict=strict,
                          mistakes=[
        Mistake(lambda lw: lw.mean(axis=-1), "the mean of the log-weights: that is the "
                "K-sample ELBO estimate; IWAE takes the log of the mean weight"),
        Mistake(lambda lw: log_sum_exp(lw), "a log of the sum: subtract log K for the mean"),
        Mistake(lambda lw: np.log(np.mean(np.exp(lw), axis=-1)), "exp of log-weights of "
                "hundreds of nats under- or overflows: subtract the row's maximum first, "
                "log-mean-exp(a) = max + log mean exp(a - max)"),
    ])


# --- chapter 2: the NumPy VAE -----------------------------------------------------------------


def _binary_batch(seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    x = (rng.random((3, 12)) < 0.3).astype(np.float64)
    big = np.array([[40.0, -40.0, 800.0, -800.0, 0.0, 3.0]])
    return [(x, rng.normal(0, 2, size=x.shape)),
            (np.array([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]]), big)]


def check_bernoulli_log_likelihood(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: log p(x | logits) of binary pixels, summed over the last axis, stable."""
    return check_function(answer, bernoulli_log_likelihood, _binary_batch(6),
                          name="bernoulli_log_likelihood", strict=strict, mistakes=[
        Mistake(lambda x, l: np.sum(x * np.log(1 / (1 + np.exp(-l)))
                                    + (1 - x) * np.log(1 - 1 / (1 + np.exp(-l))), axis=-1),
                "log(sigmoid(l)) is -inf once sigmoid rounds to 0 or 1 (|l| > 37 in float64): "
                "write it with logits, x l - softplus(l), softplus(l) = max(l, 0) + "
                "log1p(exp(-|l|))"),
        Mistake(lambda x, l: bernoulli_log_likelihood(x, l) / x.shape[-1], "a mean over the "
                "pixels: the likelihood of an image is the product over its pixels, so the "
                "log sums them (the appendix's pixel-mean fault)"),
        Mistake(lambda x, l: -bernoulli_log_likelihood(x, l), "the sign: this is the "
                "cross-entropy loss, -log p; the log-likelihood of binary pixels is <= 0"),
    ])


def check_kl_gradients(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: (dKL/dmu, dKL/dlogvar) of the KL to N(0, I), elementwise."""
    return check_function(answer, kl_to_standard_normal_grad, _gaussians(7),
                          name="kl_gradients", strict=strict, mistakes=[
        Mistake(lambda mu, lv: (mu, np.exp(lv) - 1), "dKL/dlogvar is missing its 1/2: "
                "KL = 1/2 (sigma^2 + mu^2 - 1 - log sigma^2)"),
        Mistake(lambda mu, lv: (mu, 0.5 * (1 - np.exp(lv))), "the sign of dKL/dlogvar: "
                "a sigma above 1 costs KL, so the gradient is positive there"),
        Mistake(lambda mu, lv: (-mu, 0.5 * (np.exp(lv) - 1)), "the sign of dKL/dmu: the KL "
                "grows with mu^2 / 2, so its gradient is +mu"),
        Mistake(lambda mu, lv: (mu, 0.5 * (np.exp(lv) - 1) * np.exp(lv)), "d sigma^2 / "
                "dlogvar is already inside: differentiate 1/2 (exp(logvar) - logvar) directly"),
    ])


def check_bounded_logvar_backward(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: d loss / d raw from d loss / d logvar, for logvar = B tanh(raw / B)."""
    rng = np.random.default_rng(8)
    raw = rng.normal(0, 6, size=(4, 3))
    cases = [(LOGVAR_BOUND * np.tanh(raw / LOGVAR_BOUND), rng.normal(size=raw.shape))]

    def reference(logvar, upstream):
        return upstream * (1 - (logvar / LOGVAR_BOUND) ** 2)

    return check_function(answer, reference, cases, name="bounded_logvar_backward",
                          strict=strict, mistakes=[
        Mistake(lambda lv, up: up * (1 - np.tanh(lv) ** 2), "tanh of the log-variance: its "
                "own value is B tanh(raw / B), so tanh(raw / B) = logvar / B"),
        Mistake(lambda lv, up: 1 - (lv / LOGVAR_BOUND) ** 2, "the chain rule: multiply the "
                "local derivative by the upstream gradient"),
        Mistake(lambda lv, up: up * (1 - lv**2), "the bound: tanh(raw / B) = logvar / B, "
                f"with B = {LOGVAR_BOUND:g}"),
        Mistake(lambda lv, up: up, "the derivative of B tanh(raw / B) is 1 - tanh^2, not 1 "
                "(it is 1 only near raw = 0)"),
    ])


def check_gray_level_mass(answer: float | None, strict: bool = False) -> Verdict:
    """Exercise: the mass over x in [0, 1] of 0.9^x 0.1^(1 - x)."""
    return check_number(answer, float(grey_level_mass(0.9)), name="the mass at p = 0.9",
                        strict=strict, mistakes=[
        (1.0, "it is not a density of gray levels: compute the integral, it is not 1"),
        (0.5, "1/2 is the largest mass, at p = 1/2; at p = 0.9 it is smaller"),
        (0.8 / math.log(0.9), "the sign of the logarithm: the integral of a^x is "
         "a^x / log a, and log(0.9 / 0.1) > 0"),
    ])


# --- chapter 3: the conv-VAE ------------------------------------------------------------------


def _transposed_conv_size(n: int, kernel: int, stride: int, padding: int,
                          output_padding: int) -> int:
    """What PyTorch's ConvTranspose2d itself gives: the reference, measured, not a formula."""
    import torch

    layer = torch.nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding,
                                     output_padding=output_padding)
    with torch.no_grad():
        return int(layer(torch.zeros(1, 1, n, n)).shape[-1])


def check_transposed_conv_size(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: the side of ConvTranspose2d's output for a square input of side n."""
    cases = [(7, 4, 2, 1, 0), (14, 4, 2, 1, 0), (5, 3, 2, 1, 1), (4, 5, 3, 2, 0),
             (3, 3, 1, 0, 0)]
    return check_function(answer, _transposed_conv_size, cases, name="transposed_conv_size",
                          strict=strict, mistakes=[
        Mistake(lambda n, k, s, p, op: (n + 2 * p - k) // s + 1, "that is a convolution's "
                "output size; a transposed convolution inverts it: (n - 1) s - 2p + k + op"),
        Mistake(lambda n, k, s, p, op: (n - 1) * s - 2 * p + k, "output_padding adds to "
                "one side of the output"),
        Mistake(lambda n, k, s, p, op: (n - 1) * s + k + op, "the padding: it is taken "
                "off both sides of the output (-2p)"),
        Mistake(lambda n, k, s, p, op: n * s, "n s only when k = s + 2p (the book's layers "
                "happen to be so)"),
    ])


def check_gaussian_log_density(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: log N(x; mean, diag exp(logvar)), summed over the last axis."""
    rng = np.random.default_rng(9)
    cases = [(rng.random((3, 6)), rng.random((3, 6)), rng.uniform(-6, 1, (3, 6)))]
    log_2pi = math.log(2 * math.pi)
    return check_function(answer, gaussian_log_density, cases, name="gaussian_log_density",
                          strict=strict, mistakes=[
        Mistake(lambda x, m, lv: -0.5 * np.sum(lv + (x - m) ** 2 / np.exp(lv), axis=-1),
                "log 2 pi is missing: a constant for training, but a density needs it"),
        Mistake(lambda x, m, lv: -0.5 * np.sum(log_2pi + lv + (x - m) ** 2
                                               / np.exp(0.5 * lv), axis=-1),
                "(x - mean)^2 divided by sigma: it is divided by the variance sigma^2"),
        Mistake(lambda x, m, lv: -0.5 * np.sum(log_2pi + 0.5 * lv + (x - m) ** 2
                                               / np.exp(lv), axis=-1),
                "log sigma where log sigma^2 belongs: -1/2 log(2 pi sigma^2)"),
        Mistake(lambda x, m, lv: -np.sum(log_2pi + lv + (x - m) ** 2 / np.exp(lv), axis=-1),
                "the factor 1/2 in front"),
    ])


def check_dequantize(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: gray levels 0..255 and uniform noise u in [0, 1) to y = (pixel + u) / 256."""
    rng = np.random.default_rng(10)
    pixels = np.array([[0, 1, 127, 254, 255]], dtype=np.uint8)
    cases = [(pixels, rng.random(pixels.shape)), (pixels, np.zeros(pixels.shape))]
    return check_function(answer, lambda p, u: (p.astype(np.float64) + u) / 256, cases,
                          name="dequantize", strict=strict, mistakes=[
        Mistake(lambda p, u: (p.astype(np.float64) + u) / 255, "divide by 256: there are "
                "256 levels, each a bin of width 1/256 in [0, 1); /255 puts level 255 "
                "beyond 1"),
        Mistake(lambda p, u: p.astype(np.float64) / 256, "the noise is missing: without it "
                "the density can pile up on the 256 levels and grow without bound"),
        Mistake(lambda p, u: p.astype(np.float64) / 255 + u / 256, "scale the level and "
                "the noise alike: (pixel + u) / 256"),
        Mistake(lambda p, u: (p + u) / 256, "pixel + u in uint8 arithmetic? Convert to "
                "float first"),
    ])


def check_bits_per_dimension(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: nats per image of a density on [0, 1)^784 to bits per gray level."""
    cases = [(-2500.0, 784), (-1000.0, 784), (300.0, 784), (-10.0, 4)]
    return check_function(answer, bits_per_dimension, cases, name="bits_per_dimension",
                          strict=strict, mistakes=[
        Mistake(lambda nats, dims: nats / dims / math.log(2), "the log 256 per dimension is "
                "missing: a density on [0, 1) is 256 times the density per gray level"),
        Mistake(lambda nats, dims: (nats / dims - math.log(256)) / math.log(2), "its sign: "
                "the probability of a level is the density / 256, which adds log 256 nats"),
        Mistake(lambda nats, dims: nats / dims + math.log(256), "still in nats: divide by "
                "log 2 for bits"),
        Mistake(lambda nats, dims: (nats / dims + math.log(255)) / math.log(2), "256 levels, "
                "not 255"),
    ])


# --- chapter 4: comparison --------------------------------------------------------------------


def _spectra(seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    cases = []
    for D, d in ((6, 2), (10, 3), (8, 1)):
        eigenvalues = np.sort(rng.gamma(1.0, 1.0, D))[::-1]
        cases.append((eigenvalues, d))
    return cases


def check_ppca_fit(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: PPCA's maximum-likelihood (s^2, scales) from the sorted eigenvalues."""

    def reference(eigenvalues, d):
        s2 = float(np.mean(eigenvalues[d:]))
        return s2, np.sqrt(eigenvalues[:d] - s2)

    return check_function(answer, reference, _spectra(11), name="ppca_fit", strict=strict,
                          mistakes=[
        Mistake(lambda ev, d: (float(np.mean(ev[d:])), np.sqrt(ev[:d])), "the scales: the "
                "noise takes s^2 of each direction's variance, so a column of W has length "
                "sqrt(lambda_j - s^2)"),
        Mistake(lambda ev, d: (float(ev[-1]), np.sqrt(ev[:d] - ev[-1])), "s^2 is the mean "
                "of all the discarded eigenvalues, not the smallest"),
        Mistake(lambda ev, d: (float(np.mean(ev)), np.sqrt(np.maximum(ev[:d] - np.mean(ev),
                                                                       0))),
                "s^2 averages the discarded eigenvalues only, lambda_(d+1) .. lambda_D"),
    ])


def check_active_directions(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: how many directions a linear VAE with fixed noise s^2 keeps."""
    ev = np.array([4.0, 2.5, 1.0, 0.6, 0.3, 0.1])
    cases = [(ev, 0.5), (ev, 0.09), (ev, 1.0), (ev, 3.0), (ev, 5.0)]
    return check_function(answer, lambda e, s2: int(np.sum(e > s2)), cases,
                          name="active_directions", strict=strict, mistakes=[
        Mistake(lambda e, s2: int(np.sum(e > math.sqrt(s2))), "compare eigenvalues (variances) "
                "with the variance s^2, not with s"),
        Mistake(lambda e, s2: int(np.sum(e >= s2)), "at lambda_j = s^2 the direction's "
                "scale sqrt(lambda_j - s^2) is 0: it is off"),
        Mistake(lambda e, s2: int(np.sum(e < s2)), "the other way round: a direction "
                "stays on when its variance exceeds the noise's"),
    ])


def check_responsibilities(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: EM's E-step, p(c | x_n) from log pi (C,) and log p(x_n | c) (N, C)."""
    rng = np.random.default_rng(12)
    cases = [(np.log(rng.dirichlet(np.ones(4))), rng.normal(-5, 2, (3, 4))),
             (np.log(rng.dirichlet(np.ones(5))), rng.normal(-800, 20, (2, 5)))]

    def reference(log_pi, log_lik):
        joint = log_pi + log_lik
        return np.exp(joint - log_sum_exp(joint, axis=1)[:, None])

    def naive(log_pi, log_lik):
        joint = np.exp(log_pi + log_lik)
        return joint / joint.sum(axis=1, keepdims=True)

    return check_function(answer, reference, cases, name="responsibilities", strict=strict,
                          mistakes=[
        Mistake(lambda lp, ll: np.exp(lp + ll), "not normalized: divide each row by its sum "
                "p(x_n) (in logs: subtract log-sum-exp)"),
        Mistake(naive, "exp of log-likelihoods of hundreds of nats underflows to 0/0: "
                "subtract each row's log-sum-exp before exp"),
        Mistake(lambda lp, ll: np.exp(ll - log_sum_exp(ll, axis=1)[:, None]), "the mixing "
                "weights pi_c are missing: p(c | x) is proportional to pi_c p(x | c)"),
    ])


def check_em_bound(answer: str | None, strict: bool = False) -> Verdict:
    """Exercise (choice): why the mixture of chapter 4 needs no bound."""
    return check_choice(answer, "a", name="why the mixture needs no bound", strict=strict,
                        why="The latent is one of C components: p(c | x) is C numbers, the "
                            "E-step computes them exactly, and the ELBO with that q equals "
                            "log p(x).",
                        hints={"b": "the VAE's pixels are Bernoulli too: what differs is the "
                                    "latent, C values against a continuum",
                               "c": "how the parameters are optimized does not decide whether "
                                    "log p(x) can be computed"})


# --- chapter 5: the latent space --------------------------------------------------------------


def _codes(seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    mu = np.concatenate([rng.normal(-1.5, 0.3, (20, 2)), rng.normal(1.5, 0.3, (20, 2))])
    logvar = rng.uniform(-3, -1, mu.shape)
    return [(mu, logvar, rng.standard_normal(mu.shape))]


def check_mutual_information(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: I_q(x; z) by Monte Carlo, one z per code, against the aggregate q(z)."""

    def reference(mu, logvar, eps):
        z = reparameterize(mu, logvar, eps)
        log_q_z_x = gaussian_log_density(z, mu, logvar)
        return float(np.mean(log_q_z_x - aggregate_log_density(mu, logvar, z)))

    def with_prior(mu, logvar, eps):
        z = reparameterize(mu, logvar, eps)
        return float(np.mean(gaussian_log_density(z, mu, logvar)
                             - standard_normal_log_density(z)))

    return check_function(answer, reference, _codes(13), name="mutual_information",
                          strict=strict, rtol=1e-5, mistakes=[
        Mistake(with_prior, "log p(z) where log q(z) belongs: that estimates the average "
                "KL(q(z|x) || p(z)), the rate; I_q(x; z) compares q(z|x) with the aggregate "
                "q(z) = (1/M) sum_m q(z | x_m)"),
        Mistake(lambda mu, lv, e: float(np.mean(aggregate_log_density(
                    mu, lv, reparameterize(mu, lv, e)))),
                "log q(z | x) is missing: I = E[log q(z | x) - log q(z)]"),
        Mistake(lambda mu, lv, e: -reference(mu, lv, e), "the sign: I_q(x; z) >= 0"),
    ])


def check_large_gap(index: int | None, model: Any, x: np.ndarray, *, threshold: float = 1.0,
                    strict: bool = False) -> Verdict:
    """Exercise (explore): a digit x[index] whose amortization gap exceeds ``threshold`` nats.

    The gap log p(x) - ELBO(q) is integrated by ``book.quadrature`` for the 2-D ``model``;
    x holds binary digits, (N, 784) or (N, 28, 28).
    """
    from book.quadrature import log_evidence

    name = "a digit with a large gap"
    if index is None:
        return _finish(Verdict(NOT_ATTEMPTED, f"{name}: {NOT_ATTEMPTED}"), strict)
    if not 0 <= int(index) < len(x):
        return _finish(Verdict(WRONG, f"✗ {name}: the index must be in 0 .. {len(x) - 1}"),
                       strict)
    digit = np.asarray(x[int(index)]).reshape(1, -1)  # (1, 784), whatever the image's shape
    evidence = log_evidence(model, digit)
    gap = float(evidence.gap[0])
    if gap > threshold:
        return _finish(Verdict(RIGHT, f"✓ {name}: {RIGHT}, digit {index}'s gap is {gap:.2f} "
                               f"nats, above {threshold:g}"), strict)
    return _finish(Verdict(WRONG, f"✗ {name}: digit {index}'s gap is only {gap:.2f} nats."
                           + _hint("look for a digit whose exact posterior is far from a "
                                   "round Gaussian: try digits between two classes' clouds "
                                   "on the map, or far from any")),
                   strict)


def check_posterior_on_grid(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: (log p(x), each cell's posterior mass) from log p(x, z_g) and the cell area."""
    rng = np.random.default_rng(14)
    cases = [(rng.normal(-3, 1, 25), 0.04), (rng.normal(-800, 5, 100), 0.01)]

    def reference(log_joint, cell_area):
        total = log_sum_exp(log_joint)
        return float(total + math.log(cell_area)), np.exp(log_joint - total)

    def naive(log_joint, cell_area):
        px = np.sum(np.exp(log_joint)) * cell_area
        return float(np.log(px)), np.exp(log_joint) * cell_area / px

    return check_function(answer, reference, cases, name="posterior_on_grid", strict=strict,
                          mistakes=[
        Mistake(lambda lj, a: (float(log_sum_exp(lj)), np.exp(lj - log_sum_exp(lj))),
                "log p(x) = log(h^2 sum_g p(x, z_g)): the cell area is missing"),
        Mistake(naive, "exp of log-joints of hundreds of nats underflows to 0: subtract the "
                "largest before exp (log-sum-exp)"),
        Mistake(lambda lj, a: (float(log_sum_exp(lj) + math.log(a)),
                               np.exp(lj - log_sum_exp(lj)) / a),
                "that is the density p(z_g | x); a cell's mass is the density times h^2"),
    ])


def check_slerp(answer: Callable | None, strict: bool = False) -> Verdict:
    """Exercise: the spherical path from z_a to z_b at t (directions by slerp, norm linear)."""
    rng = np.random.default_rng(15)
    cases = [(rng.normal(size=8), 2 * rng.normal(size=8), t) for t in (0.25, 0.5, 0.9)]
    cases.append((np.array([3.0, 0.0]), np.array([0.0, 1.0]), 0.5))

    def reference(z_a, z_b, t):
        return interpolate(z_a, z_b, t, kind="spherical")[0]

    def raw_slerp(z_a, z_b, t):
        angle = np.arccos(z_a @ z_b / (np.linalg.norm(z_a) * np.linalg.norm(z_b)))
        return (np.sin((1 - t) * angle) * z_a + np.sin(t * angle) * z_b) / np.sin(angle)

    def unit_slerp(z_a, z_b, t):
        return raw_slerp(z_a / np.linalg.norm(z_a), z_b / np.linalg.norm(z_b), t)

    return check_function(answer, reference, cases, name="slerp", strict=strict, mistakes=[
        Mistake(lambda z_a, z_b, t: (1 - t) * z_a + t * z_b, "the straight line: its middle "
                "is shorter than both ends when they point apart"),
        Mistake(raw_slerp, "slerp of the codes themselves: right only when their norms are "
                "equal; interpolate the unit directions, and the norm linearly"),
        Mistake(unit_slerp, "the direction is right, but its norm is 1: scale it by "
                "(1 - t) |z_a| + t |z_b|"),
    ])


# --- the appendix: diagnose -------------------------------------------------------------------

# The KL and the sampler of two VAEs: in each pair, neither, one or both are among the
# appendix's faults. The reader finds out with its checks, without reading this source.
MYSTERY_A = (kl_to_standard_normal, mistakes.reparameterize_with_variance)
MYSTERY_B = (mistakes.kl_for_log_std, reparameterize)

def _diagnosis(pair: str, answer: str | None, broken: str, why: str, strict: bool) -> Verdict:
    """Which part of MYSTERY_<pair> is broken: ``broken`` is "KL" or "sampler"."""
    right, passes = ("b", "sampler") if broken == "KL" else ("c", "KL")
    return check_choice(answer, right, name=f"mystery {pair}", why=why, strict=strict, hints={
        "a": "run the Monte Carlo KL check on the pair as it is: it fails by many standard "
             "errors",
        "d": "pair each part with the book's own partner: one of the two passes",
        "c" if broken == "KL" else "b":
            f"{pair}'s {passes} beside the book's {broken} passes the check; try {pair}'s "
            f"{broken} beside the book's {passes}"})


def check_diagnosis_a(answer: str | None, strict: bool = False) -> Verdict:
    """Exercise (diagnose): which part of ``MYSTERY_A`` is broken."""
    return _diagnosis("A", answer, "sampler", strict=strict,
                      why="Its KL agrees with the book's sampler; its sampler scales the noise "
                          "by the variance exp(logvar) where the standard deviation "
                          "exp(logvar / 2) belongs.")


def check_diagnosis_b(answer: str | None, strict: bool = False) -> Verdict:
    """Exercise (diagnose): which part of ``MYSTERY_B`` is broken."""
    return _diagnosis("B", answer, "KL", strict=strict,
                      why="Its sampler is the book's; its KL is the one of an encoder that "
                          "outputs log sigma, exp(2 logvar) and 2 logvar, so it charges for "
                          "another q than the one sampled.")
