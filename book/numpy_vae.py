"""A variational autoencoder in plain NumPy: forward pass, loss and hand-written backward pass.

The model (one tanh hidden layer each way, as in Kingma & Welling's MNIST experiments)::

    encoder   h = tanh(x W1 + b1)          x: D pixels -> H hidden units
              [mu, a] = h W2 + b2          -> 2d numbers: the mean and, through
              logvar = 8 tanh(a / 8),         the log-variance of q(z|x), kept in (-8, 8)
    sample    z = mu + sigma * eps         sigma = exp(logvar / 2), eps ~ N(0, I)
    decoder   g = tanh(z W3 + b3)          z: d -> H
              logits = g W4 + b4           -> D logits, p(x_i = 1 | z) = sigmoid(logits_i)

The loss is the negative ELBO of each example, averaged over the batch:

    -ELBO(x) = -log p(x | z) + KL(q(z | x) || N(0, I))
             = sum over the D pixels of [softplus(l_i) - x_i l_i]
               + 1/2 sum over the d latents of [sigma_j^2 + mu_j^2 - 1 - log sigma_j^2].

Both terms are sums, so both are in nats per image. Averaging the reconstruction over the
pixels instead would divide it by D = 784 while the KL stays a sum: the KL would weigh 784
times too much, q(z|x) would be pushed onto the prior, and the reconstructions would be blurry
or all alike.

Every array is ``dtype`` (float32 for training, float64 for gradient checks). ``eps`` is an
argument, never drawn inside, so a forward and backward pass is a deterministic function of the
parameters, which is what makes the finite-difference check possible. Training (Adam, the loop)
is in ``book.numpy_train``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from book.checks import gradient_errors
from book.configs import plain_fields, require
from book.data import require_binary
from book.files import atomic_write
from book.gaussian import (LOGVAR_BOUND, bounded_logvar, kl_to_standard_normal,
                           kl_to_standard_normal_grad, reparameterize)
from book.history import ELBOTerms


@dataclass(frozen=True)
class Architecture:
    """The sizes that define a model: D pixels, H hidden units, d latent dimensions."""

    x_dim: int = 784
    hidden: int = 512
    z_dim: int = 32

    def __post_init__(self):
        plain_fields(self)  # ints, whatever integer type came in (book.configs)
        for name in ("x_dim", "hidden", "z_dim"):
            require(self, getattr(self, name) >= 1, name, "at least 1")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each parameter's shape; weights are (inputs, outputs) so a layer is ``a @ W + b``."""
        D, H, d = self.x_dim, self.hidden, self.z_dim
        return {"W1": (D, H), "b1": (H,), "W2": (H, 2 * d), "b2": (2 * d,),
                "W3": (d, H), "b3": (H,), "W4": (H, D), "b4": (D,)}


def bernoulli_log_likelihood(x: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log p(x | logits) = sum_i x_i l_i - softplus(l_i), summed over the last axis.

    softplus(l) = log(1 + e^l) is computed as max(l, 0) + log1p(e^-|l|): e^-|l| <= 1
    never overflows, and no probability sigmoid(l) is formed whose log would be -inf when
    it rounds to 0. x must be binary: gray levels are refused (``book.data.require_binary``).
    """
    require_binary(x)
    softplus = np.maximum(logits, 0) + np.log1p(np.exp(-np.abs(logits)))
    return np.sum(x * logits - softplus, axis=-1)


def grey_level_mass(p: npt.ArrayLike) -> np.ndarray:
    """The integral over x in [0, 1] of p^x (1 - p)^(1 - x), for pixel probabilities p.

    A cross-entropy on gray levels treats p^x (1 - p)^(1 - x) as a density of the gray level
    x; this is its total mass, (2p - 1) / (log p - log(1 - p)) = y / (2 artanh y) with
    y = 1 - 2p. It is never 1: at most 1/2 (its limit as p -> 1/2, where y / artanh y -> 1),
    falling to 0 as p nears 0 or 1. The continuous Bernoulli (Loaiza-Ganem and Cunningham,
    2019) multiplies by its reciprocal, the normalizer C(p) = 2 artanh(y) / y >= 2.
    """
    p = np.asarray(p, np.float64)
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("p must be probabilities in [0, 1]")
    y = 1 - 2 * p
    near_half = np.abs(y) < 1e-4  # y / artanh y = 1 - y^2 / 3 + O(y^4) there
    safe = np.where(near_half, 0.5, y)
    with np.errstate(divide="ignore"):  # artanh(+-1) = +-inf: the mass is 0 at p = 0, 1
        ratio = np.where(near_half, 1 - y**2 / 3, safe / np.arctanh(safe))
    return ratio / 2


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """sigmoid(l) = (1 + tanh(l / 2)) / 2 in a new array: no exp(-l) that could overflow."""
    s = np.multiply(logits, 0.5)
    np.tanh(s, out=s)
    s *= 0.5
    s += 0.5
    return s


def _affine(a: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ W + b, adding the bias in place (no second temporary)."""
    out = a @ W
    out += b
    return out


def _tanh_layer(a: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """tanh(a @ W + b), in place."""
    out = _affine(a, W, b)
    return np.tanh(out, out=out)


@dataclass(frozen=True)
class ForwardPass(ELBOTerms):
    """The loss's two terms per example (``recon``, ``kl``) and what the backward pass needs."""

    x: np.ndarray
    eps: np.ndarray
    h: np.ndarray
    mu: np.ndarray
    logvar: np.ndarray
    z: np.ndarray
    g: np.ndarray
    logits: np.ndarray

    @property
    def loss(self) -> float:
        """The batch's mean negative ELBO in nats per example: the number that is minimized."""
        return float(np.mean(self.recon + self.kl))


class VAE:
    """The MLP VAE above, with its parameters in one flat vector.

    ``params`` and ``grads`` map names ("W1", "b1", ..., "b4") to views into the flat vectors
    ``flat`` and ``grad_flat``, so the optimizer can update every parameter at once.
    """

    def __init__(self, arch: Architecture = Architecture(), *, seed: int = 0,
                 dtype: npt.DTypeLike = np.float32):
        self.arch, self.dtype = arch, np.dtype(dtype)
        shapes = arch.shapes()
        self.flat = np.zeros(sum(math.prod(s) for s in shapes.values()), self.dtype)
        self.grad_flat = np.zeros_like(self.flat)
        self.params, self.grads = _views(self.flat, shapes), _views(self.grad_flat, shapes)
        rng = np.random.default_rng(seed)
        for name, W in self.params.items():
            # Glorot-uniform weights keep the tanh layers' activations O(1);
            # the biases stay 0.
            if name.startswith("W"):
                bound = math.sqrt(6.0 / sum(W.shape))
                W[...] = rng.uniform(-bound, bound, W.shape)

    # --- forward ------------------------------------------------------------------------------
    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mean and log-variance of q(z | x) for a batch x of shape (N, D)."""
        _, mu, logvar = self._encoder(self._batch(x, "x", self.arch.x_dim))
        return mu, logvar

    def decode(self, z: np.ndarray) -> np.ndarray:
        """The Bernoulli logits of p(x | z) for a batch z (N, d); sigmoid gives pixel means."""
        return self._decoder(self._batch(z, "z", self.arch.z_dim))[1]

    def log_likelihood(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """log p(x | z) for images x (N, D) and codes z (..., N, d): one value per code."""
        logits = self.decode(np.reshape(z, (-1, self.arch.z_dim)))
        return bernoulli_log_likelihood(x, logits.reshape(*np.shape(z)[:-1], -1))

    def forward(self, x: np.ndarray, eps: np.ndarray) -> ForwardPass:
        """The loss of a batch x (N, D) for noise eps (N, d), keeping what backward needs."""
        x = self._batch(x, "x", self.arch.x_dim)
        eps = self._batch(eps, "eps", self.arch.z_dim, rows=len(x))
        h, mu, logvar = self._encoder(x)
        z = reparameterize(mu, logvar, eps)
        g, logits = self._decoder(z)
        recon = -bernoulli_log_likelihood(x, logits)
        kl = kl_to_standard_normal(mu, logvar)
        return ForwardPass(recon, kl, x, eps, h, mu, logvar, z, g, logits)

    def _encoder(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """h = tanh(x W1 + b1), then [mu, a] = h W2 + b2 and logvar = 8 tanh(a / 8);
        returns (h, mu, logvar)."""
        P, d = self.params, self.arch.z_dim
        h = _tanh_layer(x, P["W1"], P["b1"])
        head = _affine(h, P["W2"], P["b2"])
        return h, head[:, :d], bounded_logvar(head[:, d:])

    def _decoder(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """g = tanh(z W3 + b3), then logits = g W4 + b4; returns (g, logits)."""
        P = self.params
        g = _tanh_layer(z, P["W3"], P["b3"])
        return g, _affine(g, P["W4"], P["b4"])

    # --- backward -----------------------------------------------------------------------------
    def backward(self, f: ForwardPass, beta: float = 1.0) -> dict[str, np.ndarray]:
        """Gradients of ``f.loss`` (the batch mean) for every parameter, written into ``grads``.

        The chain rule, layer by layer from the output; ``d_a`` is d loss / d a. With
        ``beta`` they are the gradients of the mean of recon + beta * KL instead.
        """
        P, G, n = self.params, self.grads, len(f.x)
        # loss = mean over the n examples of (sum_i [softplus(l_i) - x_i l_i] + KL),
        # so d loss / d l = (sigmoid(l) - x) / n
        d_logits = sigmoid(f.logits)
        d_logits -= f.x
        d_logits *= 1.0 / n
        np.matmul(f.g.T, d_logits, out=G["W4"])
        np.sum(d_logits, axis=0, out=G["b4"])
        d_g = d_logits @ P["W4"].T
        d_g *= 1 - f.g * f.g  # now d loss / d(z W3 + b3), as tanh'(u) = 1 - tanh(u)^2
        np.matmul(f.z.T, d_g, out=G["W3"])
        np.sum(d_g, axis=0, out=G["b3"])
        d_z = d_g @ P["W3"].T
        # z = mu + sigma eps with sigma = exp(logvar / 2): dz/dmu = 1 and
        # dz/dlogvar = sigma eps / 2. The KL's own gradient is chapter 1's; each example's KL
        # enters the mean with weight 1/n.
        kl_mu, kl_logvar = kl_to_standard_normal_grad(f.mu, f.logvar)
        d_mu = d_z + beta * kl_mu / n
        d_logvar = 0.5 * d_z * np.exp(0.5 * f.logvar) * f.eps + beta * kl_logvar / n
        # logvar = B tanh(a / B), so d logvar / d a = 1 - tanh^2 = 1 - (logvar / B)^2
        d_logvar *= 1 - (f.logvar / LOGVAR_BOUND) ** 2
        d_head = np.concatenate([d_mu, d_logvar], axis=1)
        np.matmul(f.h.T, d_head, out=G["W2"])
        np.sum(d_head, axis=0, out=G["b2"])
        d_h = d_head @ P["W2"].T
        d_h *= 1 - f.h * f.h  # now d loss / d(x W1 + b1)
        np.matmul(f.x.T, d_h, out=G["W1"])
        np.sum(d_h, axis=0, out=G["b1"])
        return G

    # --- saving and loading -------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the weights and the architecture to an ``.npz`` file, atomically
        (``book.files.atomic_write``); returns its path."""
        path = Path(path)
        # as np.savez names it:
        path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
        arch = {f"arch_{k}": np.int64(v) for k, v in asdict(self.arch).items()}
        with atomic_write(path) as out:
            np.savez(out, **self.params, **arch)
        return path

    @classmethod
    def load(cls, path: str | Path, *, dtype: npt.DTypeLike = np.float32) -> VAE:
        """A model with the architecture and weights in ``path`` (written by ``save``)."""
        with np.load(path, allow_pickle=False) as file:
            arch = _stored_architecture(file, path)
        model = cls(arch, dtype=dtype)
        model.load_weights(path)
        return model

    def load_weights(self, path: str | Path) -> None:
        """Replace the weights by those in ``path``, which must be of the same architecture."""
        with np.load(path, allow_pickle=False) as file:
            stored = _stored_architecture(file, path)
            if stored != self.arch:
                raise ValueError(f"{path} holds the weights of a VAE with {stored}, "
                                 f"but this model has {self.arch}; "
                                 f"build it with VAE.load({str(path)!r}).")
            for name, p in self.params.items():
                p[...] = file[name]

    # --- checks -------------------------------------------------------------------------------
    def _batch(self, a: np.ndarray, name: str, width: int,
               rows: int | None = None) -> np.ndarray:
        """``a`` as a (rows, width) array of the model's dtype.

        It is copied only if its dtype differs.
        """
        a = np.asarray(a, dtype=self.dtype)
        if a.ndim != 2 or a.shape[1] != width or (rows is not None and len(a) != rows):
            expected = f"({rows if rows is not None else 'N'}, {width})"
            hint = (" (flatten 28x28 images with images.reshape(len(images), -1))"
                    if name == "x" else "")
            raise ValueError(f"{name} must have shape {expected} for a VAE with {self.arch}, "
                             f"got {a.shape}{hint}")
        return a


def _views(flat: np.ndarray, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Consecutive slices of ``flat``, reshaped: arrays that share ``flat``'s memory."""
    views, start = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        views[name] = flat[start : start + size].reshape(shape)
        start += size
    return views


def _stored_architecture(file: np.lib.npyio.NpzFile, path: str | Path) -> Architecture:
    """The architecture recorded in a file written by ``VAE.save``."""
    keys = [f"arch_{k}" for k in asdict(Architecture())]
    if not all(k in file for k in keys):
        raise ValueError(f"{path} is not a file written by VAE.save: "
                         f"it lacks the architecture ({', '.join(keys)})")
    return Architecture(*(int(file[k]) for k in keys))


# --- gradient check ---------------------------------------------------------------------------


def gradient_check(model: VAE, x: np.ndarray, eps: np.ndarray,
                   step: float = 1e-5) -> dict[str, float]:
    """For each parameter: relative error of ``backward`` vs central differences of the loss.

    In float32 the round-off of the losses (~1e-7 |L| / h) would swamp the comparison, so
    the model must be float64; use a tiny one (two forward passes per parameter entry).
    """
    if model.dtype != np.float64:
        raise ValueError(f"finite differences need a float64 model, got {model.dtype}: "
                         "VAE(arch, dtype=np.float64)")
    analytic = {k: g.copy() for k, g in model.backward(model.forward(x, eps)).items()}
    return gradient_errors(lambda: model.forward(x, eps).loss, model.params, analytic, step)
