"""What evaluating and training report: a data set's losses, and their history over training.

Every model of the book, NumPy or PyTorch, is scored the same way: the mean over examples of the
reconstruction term -log p(x | z) and of KL(q(z | x) || p(z)), both in nats per example, and
their sum, the negative ELBO, with its standard error over the examples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from book.checks import mean_and_standard_error

Array = Any  # a numpy.ndarray or a torch.Tensor


@dataclass(frozen=True)
class ELBOTerms:
    """Each example's reconstruction term -log p(x | z) and KL, as a forward pass returns them.

    Every model of the book returns these from ``forward(x, eps)`` (the NumPy VAE a subclass
    with what its backward pass needs), so training and evaluation treat all models alike.
    """

    recon: Array
    kl: Array

    @property
    def loss(self) -> Array:
        """The batch's mean negative ELBO, in nats per example."""
        return (self.recon + self.kl).mean()


@dataclass(frozen=True)
class Losses:
    """Mean reconstruction term and KL (nats per example), and the negative ELBO's error bar."""

    recon: float
    kl: float
    neg_elbo_se: float  # standard error of the mean negative ELBO over the examples

    @property
    def neg_elbo(self) -> float:
        """The mean negative ELBO: reconstruction + KL."""
        return self.recon + self.kl

    @classmethod
    def of(cls, recon: np.ndarray, kl: np.ndarray) -> Losses:
        """The losses of a data set from its per-example terms."""
        recon, kl = np.asarray(recon, np.float64), np.asarray(kl, np.float64)
        _, se = mean_and_standard_error(recon + kl)
        return cls(float(recon.mean()), float(kl.mean()), float(se))


class TrainingDiverged(FloatingPointError):
    """A minibatch's loss is no longer finite, or has exploded: training has diverged."""


EXPLOSION = 10.0  # a Bernoulli model has diverged at 10 times a coin flip's loss per pixel


class Divergence:
    """Watches one training run's minibatch losses and stops the run once it has diverged.

    Diverged means a negative ELBO (nats per example) that is not finite; or, for a Bernoulli
    likelihood over ``pixels`` pixels, one above ``EXPLOSION`` x pixels x log 2: ten times the
    loss of a model that gives every pixel probability 1/2, which an untrained model already
    scores and any training beats. (A bounded log-variance keeps a run with too large a learning
    rate finite; its loss then explodes instead, to 100,000 nats and more.) A density (the
    Gaussian decoder) has no such scale: its loss may swing by thousands of nats while sigma_x
    settles (chapter 3), so only a loss that is not finite stops it. Both training loops,
    NumPy's and PyTorch's, call ``check`` on every minibatch before its step, so a diverged run
    stops at once and never steps on its gradients; the error says whether the model's weights
    are still finite (those of the last step) or not.
    """

    def __init__(self, pixels: int | None = None) -> None:
        self.limit = EXPLOSION * pixels * math.log(2) if pixels else math.inf

    def check(self, loss: float, lr: float, weights_finite: Callable[[], bool]) -> float:
        """``loss`` (a minibatch's mean negative ELBO, in nats per example) if the run has not
        diverged, else ``TrainingDiverged``, which names the learning rate ``lr`` to lower."""
        if math.isfinite(loss) and loss <= self.limit:
            return loss
        what = (f"{loss} nats" if not math.isfinite(loss) else
                f"{loss:,.0f} nats, above {self.limit:,.0f} ({EXPLOSION:g} times the loss of "
                "a coin flip for every pixel)")
        state = ("the model keeps the weights of the last step, which are finite"
                 if weights_finite() else
                 "the model's weights are no longer finite: build the model afresh")
        raise TrainingDiverged(
            f"training diverged: a minibatch's loss is {what}, so no step was taken; {state}. "
            f"Lower the learning rate (it is {lr:g}), or check that the data are what the "
            "likelihood expects")


@dataclass
class History:
    """The losses recorded during training, one entry per evaluation.

    ``train`` holds the mean losses of the minibatches trained on since the previous record
    (as they were trained on), ``test`` the losses of the test set at the moment of the record.
    """

    epochs: list[float] = field(default_factory=list)  # passes over the training set so far
    images: list[int] = field(default_factory=list)  # training images processed so far
    seconds: list[float] = field(default_factory=list)  # wall-clock time since the start
    train: list[Losses] = field(default_factory=list)
    test: list[Losses] = field(default_factory=list)

    def record(self, epochs: float, images: int, seconds: float, train: Losses,
               test: Losses) -> None:
        """Append one evaluation."""
        for name, value in (("epochs", epochs), ("images", images), ("seconds", seconds),
                            ("train", train), ("test", test)):
            getattr(self, name).append(value)

    def curve(self, split: str, term: str = "neg_elbo") -> np.ndarray:
        """One term ("neg_elbo", "recon" or "kl") of one split ("train" or "test") over time."""
        return np.array([getattr(losses, term) for losses in getattr(self, split)])
