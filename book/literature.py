"""Published test likelihoods of binarized MNIST, to set the book's own numbers beside.

Every entry is full MNIST (60,000 training and 10,000 test digits), trained on dynamically
binarized digits, in nats per test image (-log p(x), lower is better), estimated by importance
sampling with K samples from the model's q(z | x), log (1/K) sum_k p(x, z_k) / q(z_k | x): the
IWAE estimate. ``neg_elbo`` holds the negative ELBO where the paper reports it beside. The
chapters' literature tables and ``python -m book.bench`` print them; the book's own numbers
beside them say on which data and with which K they were measured.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    """One published result: what was trained, its -log p(x), how it was estimated, where."""

    model: str
    nats: float  # -log p(x) per test image
    k: int  # importance samples of the IWAE estimate
    source: str
    neg_elbo: float | None = None  # -ELBO per test image, where the paper reports it


# Burda, Grosse and Salakhutdinov (2015), Importance Weighted Autoencoders, Table 1: one
# stochastic layer of 50 units, two deterministic layers of 200 tanh units on each side,
# 3,280 passes over the training set.
BURDA_VAE = Published("VAE, 1 stochastic layer", 86.76, 5000, "Burda et al. 2015, Table 1")
BURDA_IWAE = Published("same, trained as IWAE (k = 50)", 84.78, 5000,
                       "Burda et al. 2015, Table 1")
LITERATURE = (BURDA_VAE, BURDA_IWAE)

# Kingma, Salimans, Jozefowicz, Chen, Sutskever and Welling (2016), Improving Variational
# Inference with Inverse Autoregressive Flow, Table 1, the row "Diagonal covariance": a
# convolutional ResNet VAE whose q(z | x) is a diagonal Gaussian (the IAF rows of the table
# add flows to it). Its log p(x) is importance-sampled with 128 samples; its ELBO is 3 nats
# below. Not in LITERATURE (the chapters' common table): chapter 2 sets it beside the rest.
KINGMA_RESNET_VAE = Published("ResNet VAE, diagonal Gaussian q", 81.08, 128,
                              "Kingma et al. 2016, Table 1", neg_elbo=84.08)
