"""The NumPy VAE of ``book.numpy_vae``, layer for layer, in PyTorch; and MLP VAEs like it.

Uses: autograd checks the hand-written backward pass (same weights, same eps, float64,
gradients compared), torch.optim.Adam checks the NumPy Adam, the benchmark times the same
training step in both libraries, and ``book.train`` trains it (with ReLU and 784-400-20 it is
pytorch/examples' VAE, the baseline of the convolutional one).
``nn.Linear`` stores its weight as (outputs, inputs), the transpose of ``numpy_vae``'s W.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from book.configs import plain_fields, require
from book.data import require_binary
from book.gaussian import bounded_logvar, kl_to_standard_normal, reparameterize
from book.history import ELBOTerms
from book.numpy_train import Adam
from book.numpy_vae import VAE, Architecture
from book.seeding import initial_weights

# numpy_vae's parameter names -> (layer, attribute) here
LAYERS = {"W1": ("enc", "weight"), "b1": ("enc", "bias"),
          "W2": ("head", "weight"), "b2": ("head", "bias"),
          "W3": ("dec", "weight"), "b3": ("dec", "bias"),
          "W4": ("out", "weight"), "b4": ("out", "bias")}


@dataclass(frozen=True)
class MLPConfig:
    """An MLP VAE: sizes as ``numpy_vae.Architecture``, and the hidden layers' activation."""

    x_dim: int = 784
    hidden: int = 512
    z_dim: int = 32
    activation: str = "tanh"  # the NumPy chapter's; "relu" for pytorch/examples' VAE

    def __post_init__(self):
        plain_fields(self)  # plain Python values, whatever came in (book.configs)
        require(self, self.activation in ACTIVATIONS, "activation",
                f"one of {sorted(ACTIVATIONS)}")
        for name in ("x_dim", "hidden", "z_dim"):
            require(self, getattr(self, name) >= 1, name, "at least 1")


ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}
# The VAE of pytorch/examples (vae/main.py), which readers would otherwise copy:
# 784-400-20, ReLU, Bernoulli output, trained with Adam 1e-3 on batches of 128.
PYTORCH_EXAMPLES = MLPConfig(x_dim=784, hidden=400, z_dim=20, activation="relu")


class TorchVAE(nn.Module):
    """x -> act -> [mu, 8 tanh(a / 8)]; z = mu + sigma eps -> act -> Bernoulli logits.

    With tanh, the same model as ``numpy_vae.VAE``; it follows ``book.train``'s protocol, so
    the one training loop trains it too. ``seed`` sets the initial weights (PyTorch's default
    initialisation, from a generator seeded with it): the same seed, the same model.
    """

    likelihood = "bernoulli"

    def __init__(self, config: MLPConfig | Architecture = MLPConfig(),
                 dtype: torch.dtype = torch.float32, seed: int = 0):
        super().__init__()
        if isinstance(config, Architecture):  # the NumPy model's sizes: tanh
            config = MLPConfig(config.x_dim, config.hidden, config.z_dim)
        self.config, self.act = config, ACTIVATIONS[config.activation]
        D, H, d = config.x_dim, config.hidden, config.z_dim
        with initial_weights(seed):
            self.enc, self.head = nn.Linear(D, H, dtype=dtype), nn.Linear(H, 2 * d, dtype=dtype)
            self.dec, self.out = nn.Linear(d, H, dtype=dtype), nn.Linear(H, D, dtype=dtype)

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def input_shape(self) -> tuple[int]:
        return (self.config.x_dim,)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and the (bounded) log-variance of q(z | x) for a batch x (N, D)."""
        mu, raw = self.head(self.act(self.enc(x))).chunk(2, dim=-1)
        return mu, bounded_logvar(raw)  # in (-8, 8), as in every model of the book

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The Bernoulli logits of p(x | z) for a batch z (N, d)."""
        return self.out(self.act(self.dec(z)))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) for x (N, D) and codes z (..., N, d): one value per code."""
        logits = self.decode(z)
        x = require_binary(x, "an MLP VAE with a Bernoulli decoder").expand_as(logits)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> ELBOTerms:
        """Each example's reconstruction term and KL, for z = mu + sigma * eps."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, eps)
        return ELBOTerms(-self.log_likelihood(x, z), kl_to_standard_normal(mu, logvar))

    @classmethod
    def from_numpy(cls, model: VAE) -> TorchVAE:
        """A copy of a NumPy VAE: same architecture, dtype and weights."""
        torch_model = cls(model.arch, dtype=getattr(torch, model.dtype.name))
        with torch.no_grad():
            for name, value in model.params.items():
                layer, attribute = LAYERS[name]
                getattr(getattr(torch_model, layer), attribute).copy_(
                    torch.from_numpy(value.T.copy()))
        return torch_model

    def numpy_grads(self) -> dict[str, np.ndarray]:
        """The ``.grad`` of every parameter, named and laid out as ``numpy_vae.VAE.grads``."""
        return {name: getattr(getattr(self, layer), attribute).grad.numpy().T
                for name, (layer, attribute) in LAYERS.items()}


def adam_difference(model: VAE, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                    lr: float = 0.01) -> float:
    """The largest parameter difference after both Adams take the same steps.

    ``numpy_train.Adam`` trains ``model`` (in place) and ``torch.optim.Adam`` a PyTorch copy of
    it, each on the same (x, eps) batches.
    """
    torch_model = TorchVAE.from_numpy(model)
    ours, theirs = Adam(model.flat, lr=lr), torch.optim.Adam(torch_model.parameters(), lr=lr)
    for x, eps in batches:
        model.backward(model.forward(x, eps))
        ours.step(model.grad_flat)
        theirs.zero_grad()
        torch_model(torch.from_numpy(x), torch.from_numpy(eps)).loss.backward()
        theirs.step()
    after = TorchVAE.from_numpy(model).state_dict()
    return max((after[k] - v).abs().max().item() for k, v in torch_model.state_dict().items())
