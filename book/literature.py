"""Published test likelihoods of binarised MNIST, to set the book's own numbers beside.

Every entry is full MNIST (60,000 training and 10,000 test digits), trained on dynamically
binarised digits, in nats per test image (-log p(x), lower is better), estimated by IWAE with
K importance samples. The chapters' literature tables and ``python -m book.bench`` print them;
the book's own numbers beside them say on which data and with which K they were measured.
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


# Burda, Grosse and Salakhutdinov (2015), Importance Weighted Autoencoders, Table 1: one
# stochastic layer of 50 units, two deterministic layers of 200 tanh units on each side,
# 3,280 passes over the training set.
BURDA_VAE = Published("VAE, 1 stochastic layer", 86.76, 5000, "Burda et al. 2015, Table 1")
BURDA_IWAE = Published("same, trained as IWAE (k = 50)", 84.78, 5000,
                       "Burda et al. 2015, Table 1")
LITERATURE = (BURDA_VAE, BURDA_IWAE)
