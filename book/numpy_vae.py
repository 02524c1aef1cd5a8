"""A variational autoencoder in plain NumPy: forward pass, hand-written backward pass, Adam, training.

The model (one tanh hidden layer each way, as in Kingma & Welling's MNIST experiments)::

    encoder   h = tanh(x W1 + b1)                  x: D pixels -> H hidden units
              [mu, logvar] = h W2 + b2             -> 2d numbers: the mean and log-variance of q(z|x)
    sample    z = mu + sigma * eps                 sigma = exp(logvar / 2), eps ~ N(0, I)
    decoder   g = tanh(z W3 + b3)                  z: d -> H
              logits = g W4 + b4                   -> D logits, p(x_i = 1 | z) = sigmoid(logits_i)

The loss is the negative ELBO of each example, averaged over the batch:

    -ELBO(x) = -log p(x | z) + KL(q(z | x) || N(0, I))
             = sum over the D pixels of [softplus(l_i) - x_i l_i]  +  1/2 sum over the d latents of
               [sigma_j^2 + mu_j^2 - 1 - log sigma_j^2].

Both terms are sums, so both are in nats per image. Averaging the reconstruction over the pixels
instead would divide it by D = 784 while the KL stays a sum: the KL would weigh 784 times too much,
q(z|x) would be pushed onto the prior, and the reconstructions would be blurry or all alike.

Every array is ``dtype`` (float32 for training, float64 for gradient checks). ``eps`` is an
argument, never drawn inside, so a forward and backward pass is a deterministic function of the
parameters, which is what makes the finite-difference check possible.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from book.data import binarize, minibatches
from book.gaussian import kl_to_standard_normal, reparameterize
from book.vi import central_difference


@dataclass(frozen=True)
class Architecture:
    """The sizes that define a model: D pixels, H hidden units, d latent dimensions."""

    x_dim: int = 784
    hidden: int = 512
    z_dim: int = 32

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each parameter's shape; weights are (inputs, outputs) so a layer is ``a @ W + b``."""
        D, H, d = self.x_dim, self.hidden, self.z_dim
        return {"W1": (D, H), "b1": (H,), "W2": (H, 2 * d), "b2": (2 * d,),
                "W3": (d, H), "b3": (H,), "W4": (H, D), "b4": (D,)}


def bernoulli_log_likelihood(x: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log p(x | logits) = sum_i x_i l_i - softplus(l_i), summed over the last axis.

    softplus(l) = log(1 + e^l) is computed as max(l, 0) + log1p(e^-|l|): e^-|l| <= 1 never
    overflows, and no probability sigmoid(l) is formed whose log would be -inf when it rounds to 0.
    """
    softplus = np.maximum(logits, 0) + np.log1p(np.exp(-np.abs(logits)))
    return np.sum(x * logits - softplus, axis=-1)


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


@dataclass
class ForwardPass:
    """What the backward pass needs from the forward pass, and the loss's two parts per example."""

    x: np.ndarray
    eps: np.ndarray
    h: np.ndarray
    mu: np.ndarray
    logvar: np.ndarray
    z: np.ndarray
    g: np.ndarray
    logits: np.ndarray
    recon: np.ndarray  # -log p(x | z), summed over pixels, one per example
    kl: np.ndarray  # KL(q(z | x) || p(z)), summed over latent dimensions, one per example

    @property
    def loss(self) -> float:
        """The batch's mean negative ELBO in nats per example: the number that is minimised."""
        return float(np.mean(self.recon + self.kl))


class VAE:
    """The MLP VAE above, with its parameters in one flat vector.

    ``params`` and ``grads`` map names ("W1", "b1", ..., "b4") to views into the flat vectors
    ``flat`` and ``grad_flat``, so the optimiser can update every parameter at once.
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
            # Glorot-uniform weights keep the tanh layers' activations O(1); the biases stay 0.
            if name.startswith("W"):
                bound = math.sqrt(6.0 / sum(W.shape))
                W[...] = rng.uniform(-bound, bound, W.shape)

    # --- forward ------------------------------------------------------------------------------
    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mean and log-variance of q(z | x) for a batch x of shape (N, D)."""
        _, mu, logvar = self._encoder(self._batch(x, "x", self.arch.x_dim))
        return mu, logvar

    def decode(self, z: np.ndarray) -> np.ndarray:
        """The Bernoulli logits of p(x | z) for a batch z of shape (N, d); sigmoid gives pixel means."""
        return self._decoder(self._batch(z, "z", self.arch.z_dim))[1]

    def forward(self, x: np.ndarray, eps: np.ndarray) -> ForwardPass:
        """The loss of a batch x (N, D) for the noise eps (N, d), keeping what backward needs."""
        x = self._batch(x, "x", self.arch.x_dim)
        eps = self._batch(eps, "eps", self.arch.z_dim, rows=len(x))
        h, mu, logvar = self._encoder(x)
        z = reparameterize(mu, logvar, eps)
        g, logits = self._decoder(z)
        recon = -bernoulli_log_likelihood(x, logits)
        kl = kl_to_standard_normal(mu, logvar)
        return ForwardPass(x, eps, h, mu, logvar, z, g, logits, recon, kl)

    def _encoder(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """h = tanh(x W1 + b1), then [mu, logvar] = h W2 + b2; returns (h, mu, logvar)."""
        P, d = self.params, self.arch.z_dim
        h = _tanh_layer(x, P["W1"], P["b1"])
        head = _affine(h, P["W2"], P["b2"])
        return h, head[:, :d], head[:, d:]

    def _decoder(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """g = tanh(z W3 + b3), then logits = g W4 + b4; returns (g, logits)."""
        P = self.params
        g = _tanh_layer(z, P["W3"], P["b3"])
        return g, _affine(g, P["W4"], P["b4"])

    # --- backward -----------------------------------------------------------------------------
    def backward(self, f: ForwardPass) -> dict[str, np.ndarray]:
        """Gradients of ``f.loss`` (the batch mean) for every parameter, written into ``grads``.

        The chain rule, layer by layer from the output; ``d_a`` is d loss / d a.
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
        # z = mu + sigma eps, sigma = exp(logvar / 2): dz/dmu = 1, dz/dlogvar = sigma eps / 2.
        # KL = 1/2 sum(sigma^2 + mu^2 - 1 - logvar): dKL/dmu = mu, dKL/dlogvar = (sigma^2 - 1)/2,
        # and each example's KL enters the batch mean with weight 1 / n.
        sigma = np.exp(0.5 * f.logvar)
        d_mu = d_z + f.mu / n
        d_logvar = 0.5 * (d_z * sigma * f.eps + (sigma * sigma - 1) / n)
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
        """Write the weights and the architecture to an ``.npz`` file; returns its path."""
        path = Path(path)
        path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")  # as np.savez names it
        arch = {f"arch_{k}": np.int64(v) for k, v in asdict(self.arch).items()}
        np.savez(path, **self.params, **arch)
        return path

    @classmethod
    def load(cls, path: str | Path, *, dtype: npt.DTypeLike = np.float32) -> VAE:
        """A model with the architecture and weights stored in ``path`` (written by ``save``)."""
        with np.load(path, allow_pickle=False) as file:
            arch = _stored_architecture(file, path)
        model = cls(arch, dtype=dtype)
        model.load_weights(path)
        return model

    def load_weights(self, path: str | Path) -> None:
        """Replace this model's weights by those in ``path``, which must be of the same architecture."""
        with np.load(path, allow_pickle=False) as file:
            stored = _stored_architecture(file, path)
            if stored != self.arch:
                raise ValueError(f"{path} holds the weights of a VAE with {stored}, "
                                 f"but this model has {self.arch}; build it with VAE.load({str(path)!r}).")
            for name, p in self.params.items():
                p[...] = file[name]

    # --- checks -------------------------------------------------------------------------------
    def _batch(self, a: np.ndarray, name: str, width: int, rows: int | None = None) -> np.ndarray:
        """``a`` as a (rows, width) array of the model's dtype (copied only if its dtype differs)."""
        a = np.asarray(a, dtype=self.dtype)
        if a.ndim != 2 or a.shape[1] != width or (rows is not None and len(a) != rows):
            expected = f"({rows if rows is not None else 'N'}, {width})"
            hint = " (flatten 28x28 images with images.reshape(len(images), -1))" if name == "x" else ""
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
        raise ValueError(f"{path} is not a file written by VAE.save: it lacks the architecture ({', '.join(keys)})")
    return Architecture(*(int(file[k]) for k in keys))


# --- optimiser and training --------------------------------------------------------------------


class Adam:
    """Adam (Kingma & Ba, 2015) on one flat parameter vector, in place, as torch.optim.Adam.

    m and v are running means of the gradient and its square; dividing by 1 - beta^t undoes their
    bias towards the zeros they start from.
    """

    def __init__(self, params: np.ndarray, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m, self.v, self._tmp = (np.zeros_like(params) for _ in range(3))

    def step(self, grad: np.ndarray) -> None:
        """Update m and v with grad; params -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)."""
        (b1, b2), m, v, tmp = self.betas, self.m, self.v, self._tmp
        self.t += 1
        m *= b1
        np.multiply(grad, 1 - b1, out=tmp)
        m += tmp  # m = b1 m + (1 - b1) g
        v *= b2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1 - b2
        v += tmp  # v = b2 v + (1 - b2) g^2
        np.multiply(v, 1 / (1 - b2**self.t), out=tmp)
        np.sqrt(tmp, out=tmp)
        tmp += self.eps
        np.divide(m, tmp, out=tmp)
        tmp *= self.lr / (1 - b1**self.t)
        self.params -= tmp


def train_step(model: VAE, optimizer: Adam, x: np.ndarray,
               rng: np.random.Generator) -> ForwardPass:
    """One step of stochastic gradient descent on the negative ELBO of the batch x."""
    eps = rng.standard_normal((len(x), model.arch.z_dim), dtype=model.dtype)
    f = model.forward(x, eps)
    model.backward(f)
    optimizer.step(model.grad_flat)
    return f


def evaluate(model: VAE, x: np.ndarray, *, seed: int = 0,
             batch_size: int = 1000) -> dict[str, float]:
    """Mean negative ELBO, reconstruction and KL of x in nats per example, one seeded z each."""
    rng, totals = np.random.default_rng(seed), np.zeros(2)
    for idx in minibatches(len(x), batch_size):
        eps = rng.standard_normal((len(idx), model.arch.z_dim), dtype=model.dtype)
        f = model.forward(x[idx], eps)
        totals += f.recon.sum(), f.kl.sum()
    recon, kl = totals / len(x)
    return {"neg_elbo": recon + kl, "recon": recon, "kl": kl}


def train(model: VAE, x_train: np.ndarray, x_test: np.ndarray, *, epochs: int,
          batch_size: int = 100, lr: float = 1e-3, seed: int = 0, eval_every: int = 1,
          dynamic_binarization: bool = True, progress: bool = True) -> dict[str, list[float]]:
    """Train with Adam on shuffled minibatches; record the losses every ``eval_every`` epochs.

    ``x_train`` holds intensities in [0, 1]. With ``dynamic_binarization`` every epoch trains
    on a fresh Bernoulli draw of it (binary targets for the Bernoulli likelihood; new draws
    each epoch act against overfitting); otherwise it is used as given. ``x_test`` is used as
    given: binarise it once, with a fixed seed, so that every evaluation scores the same
    images. The train numbers are means over the minibatches since the last evaluation, as
    they were trained on.
    """
    rng = np.random.default_rng(seed)
    optimizer = Adam(model.flat, lr=lr)
    history: dict[str, list[float]] = {k: [] for k in (
        "epoch", "images", "seconds", "train_neg_elbo", "train_recon", "train_kl",
        "test_neg_elbo", "test_recon", "test_kl")}
    start, sums, seen = time.perf_counter(), np.zeros(2), 0
    steps = epochs * math.ceil(len(x_train) / batch_size)
    with tqdm(total=steps, desc="training", unit="step", disable=not progress) as bar:
        for epoch in range(1, epochs + 1):
            targets = binarize(x_train, rng) if dynamic_binarization else x_train
            for idx in minibatches(len(targets), batch_size, rng):
                f = train_step(model, optimizer, targets[idx], rng)
                sums += f.recon.sum(), f.kl.sum()
                seen += len(idx)
                bar.update()
            # record every eval_every epochs, and always the first and the last
            if epoch % eval_every and epoch not in (1, epochs):
                continue
            (train_recon, train_kl), sums, seen = sums / seen, np.zeros(2), 0
            test = evaluate(model, x_test)
            record = {"epoch": epoch, "images": epoch * len(x_train),
                      "seconds": time.perf_counter() - start,
                      "train_neg_elbo": train_recon + train_kl, "train_recon": train_recon,
                      "train_kl": train_kl, "test_neg_elbo": test["neg_elbo"],
                      "test_recon": test["recon"], "test_kl": test["kl"]}
            for key, value in record.items():
                history[key].append(float(value))
            bar.set_postfix(train=f"{record['train_neg_elbo']:.1f}",
                            test=f"{test['neg_elbo']:.1f}")
    return history


# --- gradient check ----------------------------------------------------------------------------


def numerical_gradients(model: VAE, x: np.ndarray, eps: np.ndarray,
                        step: float = 1e-5) -> dict[str, np.ndarray]:
    """d loss / d theta by central differences (L(theta + h) - L(theta - h)) / 2h, entry by entry.

    ``central_difference`` is the variational-inference chapter's, applied to each parameter
    tensor in turn. Two forward passes per parameter entry: use a tiny model. In float32 the
    round-off of the losses (~1e-7 |L| / h) would swamp the comparison, so it must be float64.
    """
    if model.dtype != np.float64:
        raise ValueError(f"finite differences need a float64 model, got {model.dtype}: "
                         "VAE(arch, dtype=np.float64)")

    def loss_with(p: np.ndarray) -> Callable[[np.ndarray], float]:
        def loss(value: np.ndarray) -> float:  # the loss with parameter p set to value
            p[...] = value
            return model.forward(x, eps).loss
        return loss

    grads = {}
    for name, p in model.params.items():
        original = p.copy()
        grads[name] = central_difference(loss_with(p), original, step)
        p[...] = original
    return grads


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max_i |a_i - b_i| / max_i max(|a_i|, |b_i|): largest difference over largest entry.

    Relative to the tensor's scale rather than entry by entry: an entry whose true gradient is
    nearly 0 would otherwise show the finite differences' round-off (~1e-11) as a large ratio.
    """
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0))
    return float(np.abs(a - b).max(initial=0.0) / scale) if scale > 0 else 0.0


def gradient_check(model: VAE, x: np.ndarray, eps: np.ndarray,
                   step: float = 1e-5) -> dict[str, float]:
    """For each parameter: relative error of the hand-written gradient vs central differences."""
    analytic = {k: g.copy() for k, g in model.backward(model.forward(x, eps)).items()}
    numeric = numerical_gradients(model, x, eps, step)
    return {name: relative_error(analytic[name], numeric[name]) for name in analytic}
