"""Training the NumPy VAE of ``book.numpy_vae``: Adam, one step, evaluation, the loop.

The loop draws the noise eps, runs the model's forward and backward passes and lets Adam update
the one flat parameter vector. The training images are binarized afresh at every pass.
"""
from __future__ import annotations

import math
import time

import numpy as np
from tqdm.auto import tqdm

from book.data import binarize, minibatches
from book.history import Divergence, History, Losses
from book.numpy_vae import VAE, ForwardPass


class Adam:
    """Adam (Kingma & Ba, 2015) on one flat parameter vector, in place, as torch.optim.Adam.

    m and v are running means of the gradient and its square; dividing by 1 - beta^t undoes
    their bias towards the zeros they start from.
    """

    def __init__(self, params: np.ndarray, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m, self.v, self._tmp = (np.zeros_like(params) for _ in range(3))

    def step(self, grad: np.ndarray) -> None:
        """params -= lr m_hat / (sqrt(v_hat) + eps), after updating m and v with grad."""
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


def train_step(model: VAE, optimizer: Adam, x: np.ndarray, rng: np.random.Generator,
               beta: float = 1.0, divergence: Divergence | None = None) -> ForwardPass:
    """One Adam step on the batch x's mean of recon + beta * KL (beta = 1: the -ELBO).

    Raises ``book.history.TrainingDiverged``, before the step, once the loss is not finite
    (or, watched by the run's ``divergence``, has exploded).
    """
    eps = rng.standard_normal((len(x), model.arch.z_dim), dtype=model.dtype)
    f = model.forward(x, eps)
    (divergence or Divergence(model.arch.x_dim)).check(
        f.loss, optimizer.lr, lambda: bool(np.isfinite(model.flat).all()))
    model.backward(f, beta)
    optimizer.step(model.grad_flat)
    return f


def evaluate(model: VAE, x: np.ndarray, *, seed: int = 0,
             batch_size: int = 1000) -> Losses:
    """The losses of x in nats per example, one seeded z per example."""
    rng, recon, kl = np.random.default_rng(seed), [], []
    for idx in minibatches(len(x), batch_size):
        eps = rng.standard_normal((len(idx), model.arch.z_dim), dtype=model.dtype)
        f = model.forward(x[idx], eps)
        recon.append(f.recon)
        kl.append(f.kl)
    return Losses.of(np.concatenate(recon), np.concatenate(kl))


def train(model: VAE, x_train: np.ndarray, x_test: np.ndarray, *, images: int,
          batch_size: int = 100, lr: float = 1e-3, seed: int = 0, eval_every: int | None = None,
          beta: float = 1.0, dynamic_binarization: bool = True,
          progress: bool = True) -> History:
    """Train with Adam on shuffled minibatches until ``images`` training images are processed.

    The budget counts images, never epochs, so that a run costs the same on any training set;
    the last pass over the data may stop part-way. ``x_train`` holds intensities in [0, 1].
    With ``dynamic_binarization`` every pass trains on a fresh Bernoulli draw of it; otherwise
    it is used as given. ``x_test`` is used as given: binarize it once, with a fixed seed, so
    that every evaluation scores the same images. ``beta`` weighs the KL in the loss trained
    on (1: the negative ELBO); the recorded losses are always the negative ELBO's two terms,
    every ``eval_every`` images (by default a twentieth of the budget) and at the end.
    """
    if images < 1:
        raise ValueError(f"images must be at least 1, got {images}")
    eval_every = eval_every or max(1, images // 20)
    rng = np.random.default_rng(seed)
    optimizer = Adam(model.flat, lr=lr)
    history, divergence = History(), Divergence(model.arch.x_dim)
    start, recon, kl = time.perf_counter(), [], []
    seen, next_record = 0, eval_every
    with tqdm(total=math.ceil(images / batch_size), desc="training", unit="step",
              disable=not progress) as bar:
        while seen < images:  # one pass: a fresh binarization, a fresh order
            targets = binarize(x_train, rng) if dynamic_binarization else x_train
            for idx in minibatches(len(targets), batch_size, rng):
                idx = idx[:images - seen]
                f = train_step(model, optimizer, targets[idx], rng, beta, divergence)
                recon.append(f.recon)
                kl.append(f.kl)
                seen += len(idx)
                bar.update()
                if seen < next_record and seen < images:
                    continue
                seen_losses = Losses.of(np.concatenate(recon), np.concatenate(kl))
                test = evaluate(model, x_test)
                history.record(seen / len(x_train), seen, time.perf_counter() - start,
                               seen_losses, test)
                recon, kl = [], []
                while next_record <= seen:
                    next_record += eval_every
                bar.set_postfix(train=f"{seen_losses.neg_elbo:.1f}",
                                test=f"{test.neg_elbo:.1f}")
                if seen >= images:
                    break
    return history
