"""A convolutional VAE in PyTorch, on one page: the model the later chapters train and explore.

    encoder   x (N, 1, 28, 28) -> conv 4x4 /2 -> (C1, 14, 14) -> conv 4x4 /2 -> (C2, 7, 7)
              -> flatten [-> linear -> H] -> linear -> [mu, logvar]   (2d numbers: q(z | x))
    sample    z = mu + sigma * eps                          eps ~ N(0, I), an argument
    decoder   z (N, d) [-> linear -> H] -> linear -> (C2, 7, 7) -> transposed conv 4x4 x2
              -> (C1, 14, 14) -> transposed conv 4x4 x2 -> (N, k, 28, 28)   (k = 1 or 2)

with ReLU after every layer but the last of each half. The bracketed dense layers of H units
are there only when ``dense`` = H > 0: the bigger model of the benchmark's longer runs.

Two observation models, chosen by the config:
- "bernoulli": binary pixels (binarized digits), k = 1 logit per pixel; log p(x | z) in nats.
- "gaussian": dequantized gray levels x = (pixel + u) / 256, u ~ U(0, 1), k = 2: a mean and
  a standard deviation per pixel, sigma_x >= ``sigma_floor``. A real density, so it can be
  reported in bits per dimension.
q's log sigma^2 lies in (-8, 8) (``book.gaussian.bounded_logvar``, as in every model of the
book), so that exp never overflows and log q never meets a zero variance; sigma_x has a floor,
so that no pixel's density is unbounded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from book.configs import plain_fields, require
from book.data import require_binary
from book.gaussian import (bounded_logvar, gaussian_log_density, kl_to_standard_normal,
                           reparameterize)
from book.history import ELBOTerms
from book.seeding import initial_weights

SIDE = 28


@dataclass(frozen=True)
class ConvConfig:
    """The sizes and the observation model that define a convolutional VAE."""

    z_dim: int = 16
    channels: tuple[int, int] = (16, 32)
    dense: int = 0  # H: units of a dense layer before the code and after it (0: none)
    likelihood: str = "bernoulli"  # or "gaussian"
    # gaussian only: the smallest sigma_x. At 1 / (256 sqrt(2 pi)) a pixel's density peaks at
    # 256, the density of the uniform distribution on one gray level's interval of width 1/256.
    sigma_floor: float = 1 / (256 * math.sqrt(2 * math.pi))

    def __post_init__(self):
        plain_fields(self)  # plain Python values, whatever came in (book.configs)
        require(self, self.likelihood in ("bernoulli", "gaussian"), "likelihood",
                "'bernoulli' or 'gaussian'")
        require(self, self.z_dim >= 1, "z_dim", "at least 1")
        require(self, min(self.channels) >= 1, "channels", "two positive channel counts")
        require(self, self.dense >= 0, "dense", "0 (no dense layer) or more units")
        require(self, math.isfinite(self.sigma_floor) and self.sigma_floor >= 0,
                "sigma_floor", "a finite number >= 0")


def _dense(fan_in: int, units: int) -> list[nn.Module]:
    """A dense layer of ``units`` with its ReLU, or nothing when ``units`` is 0."""
    return [nn.Linear(fan_in, units), nn.ReLU()] if units else []


class ConvVAE(nn.Module):
    """The convolutional VAE above; ``forward(x, eps)`` gives each example's loss terms.

    ``seed`` sets the initial weights (PyTorch's default initialization, drawn from a generator
    seeded with it): the same seed gives the same model in any process.
    """

    input_shape = (1, SIDE, SIDE)
    outputs_per_code_dimension = 2  # the encoder gives mu and log sigma^2 for each z_j

    def __init__(self, config: ConvConfig = ConvConfig(), seed: int = 0):
        super().__init__()
        self.config = config
        c1, c2, d, h = *config.channels, config.z_dim, config.dense
        self.outputs_per_pixel = 1 if config.likelihood == "bernoulli" else 2
        with initial_weights(seed):
            self.encoder = nn.Sequential(
                nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.ReLU(),   # 28 -> 14
                nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),  # 14 -> 7
                nn.Flatten(), *_dense(c2 * 7 * 7, h),
                nn.Linear(h or c2 * 7 * 7, self.outputs_per_code_dimension * d))
            self.decoder = nn.Sequential(
                *_dense(d, h), nn.Linear(h or d, c2 * 7 * 7), nn.ReLU(),
                nn.Unflatten(1, (c2, 7, 7)),
                nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),  # 7 -> 14
                nn.ConvTranspose2d(c1, self.outputs_per_pixel, 4, stride=2, padding=1))  # 28

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def likelihood(self) -> str:
        return self.config.likelihood

    # --- the two halves ---------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and the (bounded) log-variance of q(z | x), each (N, d)."""
        mu, raw = self.encoder(self.check_images(x)).chunk(2, dim=-1)
        return mu, bounded_logvar(raw)  # in (-8, 8): book.gaussian.LOGVAR_BOUND

    def decode(self, z: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Bernoulli: the logits (N, 1, 28, 28). Gaussian: the mean and log-variance of x."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return out
        mean, raw = out.chunk(2, dim=1)
        sigma = self.config.sigma_floor + F.softplus(raw)
        return torch.sigmoid(mean), 2 * torch.log(sigma)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) for images x (N, 1, 28, 28) and codes z (..., N, d): one per code."""
        x = self.check_images(x)
        if self.likelihood == "bernoulli":
            require_binary(x, "a ConvVAE with a Bernoulli decoder")
        batch = z.shape[:-1]
        out = self.decode(z.reshape(-1, self.z_dim))
        x = x.expand(*batch[:-1], *x.shape).reshape(-1, *x.shape[1:])  # one x per code
        if self.likelihood == "bernoulli":
            per_pixel = -F.binary_cross_entropy_with_logits(out, x, reduction="none")
            return per_pixel.flatten(1).sum(-1).reshape(batch)
        mean, logvar = out
        return gaussian_log_density(x.flatten(1), mean.flatten(1),
                                    logvar.flatten(1)).reshape(batch)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> ELBOTerms:
        """-log p_theta(x | z) and KL(q_phi(z | x) || p(z)) of each example, for
        z = mu + sigma * eps."""
        mu, logvar = self.encode(x)
        if eps.shape != mu.shape:
            raise ValueError(f"eps must have shape {tuple(mu.shape)}, got {tuple(eps.shape)}")
        z = reparameterize(mu, logvar, eps)
        return ELBOTerms(-self.log_likelihood(x, z), kl_to_standard_normal(mu, logvar))

    # --- checks -------------------------------------------------------------------------------
    def check_images(self, x: torch.Tensor) -> torch.Tensor:
        """x itself if it is a float batch of shape (N, 1, 28, 28), else a clear error."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            hint = ""
            if tuple(x.shape[-2:]) == (SIDE, SIDE) and x.ndim == 3:
                hint = " (add the channel axis: x.unsqueeze(1))"
            elif x.ndim == 2 and x.shape[-1] == SIDE * SIDE:
                hint = " (reshape: x.view(-1, 1, 28, 28))"
            raise ValueError(f"a ConvVAE takes images of shape (N, 1, 28, 28), "
                             f"got {tuple(x.shape)}{hint}")
        if not x.is_floating_point():
            raise ValueError(f"a ConvVAE takes float images, got {x.dtype}: "
                             "book.data.observe(images, likelihood, generator) makes them")
        return x


class ConvAutoencoder(ConvVAE):
    """The same networks as a plain autoencoder: one code z = f(x) per image, no noise, no KL.

    The encoder's last layer outputs d numbers (the code) instead of 2d; the loss is the
    reconstruction term -log p(x | f(x)) alone. It fits ``book.train``'s protocol (the KL it
    reports is 0 and ``eps`` is ignored), so the book's one loop trains it. With no prior and
    no posterior it has no likelihood; what its codes are is whatever the training made them.
    """

    outputs_per_code_dimension = 1  # the code itself

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The code (N, d), and a log-variance of -inf: a point mass, sigma = 0."""
        code = self.encoder(self.check_images(x))
        return code, torch.full_like(code, -math.inf)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> ELBOTerms:
        """-log p(x | f(x)) of each example, and a KL of 0 (there is none)."""
        code, _ = self.encode(x)
        return ELBOTerms(-self.log_likelihood(x, code), torch.zeros_like(code[:, 0]))


@torch.no_grad()
def decode_means(model: nn.Module, z: np.ndarray) -> np.ndarray:
    """The mean of p(x | z) at codes z (n, d) as NumPy images (n, 28, 28), values in [0, 1]:
    pixel probabilities for a Bernoulli decoder, mean gray levels for a Gaussian one.

    For figures and widgets: z goes to the model's device, and the model's mode is restored.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = model.decode(torch.as_tensor(np.atleast_2d(z), dtype=torch.float32, device=device))
    model.train(was_training)
    mean = torch.sigmoid(out) if model.likelihood == "bernoulli" else out[0]
    return mean.reshape(-1, SIDE, SIDE).cpu().numpy()


def bits_per_dimension(nats_per_image: float, dims: int = SIDE * SIDE) -> float:
    """-log p(x) of dequantized images x = (pixel + u) / 256 in bits per pixel of 0..255.

    The density of y = pixel + u = 256 x is p(x) / 256^D, so each dimension adds log 256.
    """
    return (nats_per_image / dims + math.log(256)) / math.log(2)


def layer_shapes(model: ConvVAE) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(half, layer, output shape of one example, parameters) of every layer, in order.

    Read from the model itself by passing one example through each half.
    """
    rows = []
    device = next(model.parameters()).device
    for half, a in (("encoder", torch.zeros(1, *model.input_shape, device=device)),
                    ("decoder", torch.zeros(1, model.z_dim, device=device))):
        with torch.no_grad():
            for layer in getattr(model, half):
                a = layer(a)
                params = sum(p.numel() for p in layer.parameters())
                rows.append((half, type(layer).__name__, tuple(a.shape[1:]), params))
    return rows
