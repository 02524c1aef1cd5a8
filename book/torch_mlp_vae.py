"""The NumPy VAE of ``book.numpy_vae``, layer for layer, in PyTorch.

Three uses: autograd checks the hand-written backward pass (same weights, same eps, float64,
gradients compared), torch.optim.Adam checks the NumPy Adam, and the benchmark times the same
training step in both libraries.
``nn.Linear`` stores its weight as (outputs, inputs), the transpose of ``numpy_vae``'s W.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from book.gaussian import kl_to_standard_normal, reparameterize
from book.numpy_train import Adam
from book.numpy_vae import VAE, Architecture

# numpy_vae's parameter names -> (layer, attribute) here
LAYERS = {"W1": ("enc", "weight"), "b1": ("enc", "bias"),
          "W2": ("head", "weight"), "b2": ("head", "bias"),
          "W3": ("dec", "weight"), "b3": ("dec", "bias"),
          "W4": ("out", "weight"), "b4": ("out", "bias")}


class TorchVAE(nn.Module):
    """x -> tanh -> [mu, logvar]; z = mu + sigma eps -> tanh -> Bernoulli logits.

    The same model as ``numpy_vae.VAE``.
    """

    def __init__(self, arch: Architecture = Architecture(), dtype: torch.dtype = torch.float32):
        super().__init__()
        self.arch = arch
        D, H, d = arch.x_dim, arch.hidden, arch.z_dim
        self.enc, self.head = nn.Linear(D, H, dtype=dtype), nn.Linear(H, 2 * d, dtype=dtype)
        self.dec, self.out = nn.Linear(d, H, dtype=dtype), nn.Linear(H, D, dtype=dtype)

    def forward(self, x: torch.Tensor,
                eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch's mean negative ELBO, and per example the reconstruction term and KL."""
        mu, logvar = self.head(torch.tanh(self.enc(x))).chunk(2, dim=-1)
        z = reparameterize(mu, logvar, eps)
        logits = self.out(torch.tanh(self.dec(z)))
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        kl = kl_to_standard_normal(mu, logvar)
        return (recon + kl).mean(), recon, kl

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


def train_step(model: TorchVAE, optimizer: torch.optim.Optimizer,
               x: torch.Tensor) -> torch.Tensor:
    """One Adam step on the batch x, as ``numpy_vae.train_step``; returns the loss."""
    eps = torch.randn(len(x), model.arch.z_dim, dtype=x.dtype)
    loss, _, _ = model(x, eps)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


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
        torch_model(torch.from_numpy(x), torch.from_numpy(eps))[0].backward()
        theirs.step()
    after = TorchVAE.from_numpy(model).state_dict()
    return max((after[k] - v).abs().max().item() for k, v in torch_model.state_dict().items())
