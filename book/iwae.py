"""The importance-weighted (IWAE) estimate of log p(x): the one the whole book uses.

For K draws z_k ~ q(z | x), with weights w_k = p(x | z_k) p(z_k) / q(z_k | x),

    log p_K(x) = log (1/K) sum_k w_k  =  logsumexp_k log w_k - log K

is a lower bound on log p(x) in expectation (Burda et al., 2015): K = 1 is the ELBO,
and the bound rises with K to log p(x). The model protocol it needs:

    model.encode(x) -> (mu, logvar)      each (N, d): q(z|x) = N(mu, diag exp(logvar))
    model.log_likelihood(x, z) -> (S, N) log p(x_n | z_sn), x (N, D) and z (S, N, d)

and the prior is N(0, I). ``book.numpy_vae.VAE`` and ``book.vi.LinearGaussianModel``
follow it, and so can a PyTorch model: every function here takes NumPy arrays or torch
tensors (on any device), as ``book.gaussian`` does; the bound comes back in float64
NumPy.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from book.checks import mean_and_standard_error
# log_sum_exp and log_mean_exp live with the Gaussian math (mixtures below this layer use them
# too); they are imported here for this module and for readers of the estimator.
from book.gaussian import (_xp, gaussian_log_density, log_mean_exp, log_sum_exp,
                           reparameterize, standard_normal_log_density)

Array = Any  # a numpy.ndarray or a torch.Tensor

# Values of S * N * D (draws x examples x pixels) per call of the model: the decoder's
# output and its temporaries, a few arrays of this many floats, stay within 100s of MB.
MAX_CHUNK_ELEMENTS = 2**22


def log_importance_weights(model: Any, x: Array, eps: Array,
                           posterior: tuple[Array, Array] | None = None) -> Array:
    """log w = log p(x | z) + log p(z) - log q(z | x) at z = mu + sigma eps: (S, N).

    ``eps`` (S, N, d) holds S standard-normal draws for each of the N examples of x.
    q is the encoder's unless ``posterior`` gives its (mu, logvar), each (N, d).
    With torch it is differentiable (an IWAE training loss is log_mean_exp of it; the ELBO
    is its mean over the draws).
    """
    mu, logvar = posterior if posterior is not None else model.encode(x)
    return _log_weights(model, x, mu, logvar, eps)


def _log_weights(model: Any, x: Array, mu: Array, logvar: Array, eps: Array) -> Array:
    """``log_importance_weights`` for q(z | x) = N(mu, diag exp(logvar)), given."""
    z = reparameterize(mu, logvar, eps)
    log_q = gaussian_log_density(z, mu, logvar)
    return model.log_likelihood(x, z) + standard_normal_log_density(z) - log_q


def iwae_bound(model: Any, x: Array, K: int, *, seed: int = 0,
               chunk_size: int | None = None, batch_size: int | None = None,
               posterior: tuple[Array, Array] | None = None) -> np.ndarray:
    """log p_K(x) for every example of x (N, ...), from K seeded draws each: (N,) float64.

    The draws come from the encoder's q(z | x), or from ``posterior`` = (mu, logvar) given.

    The weights are computed ``chunk_size`` draws at a time for ``batch_size``
    examples per call of the model, and summed with a running log-sum-exp, so memory
    does not grow with K; by default S * N * D <= MAX_CHUNK_ELEMENTS per call. The noise
    of a chunk is drawn for all N examples at once, in the order of one (K, N, d)
    array: with NumPy the result depends on neither size. (A torch generator does not
    continue its stream across calls that way: there only ``batch_size`` is free.) The
    encoder, too, sees ``batch_size`` examples per call: memory does not grow with N either.
    """
    if K < 1:
        raise ValueError(f"K must be at least 1, got {K}")
    if len(x.shape) < 2:
        raise ValueError(f"x must be a batch of examples, (N, ...), got {tuple(x.shape)}")
    xp = _xp(x)
    if xp is np:
        return _iwae_bound(model, x, K, seed, chunk_size, batch_size, posterior)
    with xp.no_grad():  # an estimate: no graph of K decoder passes to keep
        return _iwae_bound(model, x, K, seed, chunk_size, batch_size, posterior)


def _iwae_bound(model: Any, x: Array, K: int, seed: int, chunk_size: int | None,
                batch_size: int | None, posterior: tuple[Array, Array] | None) -> np.ndarray:
    n, width = x.shape[0], math.prod(x.shape[1:])  # width: numbers per example
    batch_size = batch_size or max(1, min(n, MAX_CHUNK_ELEMENTS // width))
    # once: the K draws need only the decoder
    mu, logvar = posterior if posterior is not None else _encode(model, x, batch_size)
    chunk_size = chunk_size or max(1, MAX_CHUNK_ELEMENTS // (batch_size * width))
    draw = _standard_normal(mu, seed)
    total = np.full(n, -np.inf)  # log sum_k w_k over the draws so far, in float64
    for start in range(0, K, chunk_size):
        eps = draw((min(chunk_size, K - start), n, mu.shape[-1]))
        for b in range(0, n, batch_size):
            rows = slice(b, b + batch_size)
            log_w = _log_weights(model, x[rows], mu[rows], logvar[rows], eps[:, rows])
            chunk = _to_float64(log_sum_exp(log_w, axis=0))
            total[rows] = np.logaddexp(total[rows], chunk)
    return total - math.log(K)


def _encode(model: Any, x: Array, batch_size: int) -> tuple[Array, Array]:
    """q(z | x)'s (mu, logvar) of every example, ``batch_size`` examples per call."""
    if len(x) <= batch_size:
        return model.encode(x)
    parts = [model.encode(x[b:b + batch_size]) for b in range(0, len(x), batch_size)]
    xp = _xp(x)
    join = np.concatenate if xp is np else xp.cat
    return join([mu for mu, _ in parts]), join([logvar for _, logvar in parts])


def iwae_estimate(model: Any, x: Array, K: int, *, seed: int = 0,
                  chunk_size: int | None = None,
                  batch_size: int | None = None) -> tuple[float, float]:
    """The mean of ``iwae_bound`` over the examples of x, and its standard error.

    The error bar is over the examples (which differ far more than repeated draws
    would): how well these N examples pin down the data's mean log p(x).
    """
    bound = iwae_bound(model, x, K, seed=seed, chunk_size=chunk_size,
                       batch_size=batch_size)
    mean, se = mean_and_standard_error(bound)
    return float(mean), float(se)


def _standard_normal(like: Array, seed: int) -> Callable[[tuple[int, ...]], Array]:
    """shape -> N(0, 1) draws of ``like``'s kind, dtype and device, seeded by ``seed``.

    Successive calls continue one stream. NumPy draws float64 and casts, so a float32
    and a float64 model see the same noise; torch draws where the model lives (with a
    CUDA generator for a CUDA model): copying the noise there would cost more.
    """
    if _xp(like) is np:
        rng = np.random.default_rng(seed)
        return lambda shape: rng.standard_normal(shape).astype(like.dtype, copy=False)
    import torch

    generator = torch.Generator(device=like.device).manual_seed(seed)
    return lambda shape: torch.randn(shape, generator=generator, dtype=like.dtype,
                                     device=like.device)


def _to_float64(a: Array) -> np.ndarray:
    """A NumPy float64 copy of an array or a tensor (fetched from the GPU if there)."""
    if _xp(a) is np:
        return np.asarray(a, dtype=np.float64)
    return a.detach().cpu().double().numpy()
