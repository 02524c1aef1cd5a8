"""The amortization gap: how much ELBO the encoder gives away by guessing q(z | x) in one pass.

An encoder is *amortized* inference: one network outputs q(z | x) = N(mu, diag sigma^2) for
every x at the cost of a forward pass. The best Gaussian for one particular x can be found
instead by optimizing its own (mu, log sigma^2) to maximize that x's ELBO, with the decoder
fixed, as variational inference did before VAEs (stochastic VI: Hoffman et al., 2013). For a
trained model (Cremer, Li & Duvenaud, 2018, "Inference Suboptimality in VAEs"):

    log p(x) - ELBO_encoder  =  [log p(x) - ELBO_best]  +  [ELBO_best - ELBO_encoder]
                                 approximation gap          amortization gap

The first is what no diagonal Gaussian can close; the second is the encoder's own shortfall.
The ELBO here is the mean of the book's importance weights (``book.iwae``), not a second
estimator.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from book.iwae import MAX_CHUNK_ELEMENTS, log_importance_weights


def fit_posterior(model: Any, x: torch.Tensor, *, steps: int = 300, samples: int = 16,
                  lr: float = 0.05, seed: int = 0,
                  progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example's own (mu, logvar), maximizing its ELBO by Adam with the model fixed.

    Starts from the encoder's output; every step averages the ELBO over ``samples`` fresh
    draws of z per example. The examples do not interact (the loss is a sum of their ELBOs),
    so they are fitted together as one batch.
    """
    frozen = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():  # gradients for q's numbers only, not the decoder's weights
        p.requires_grad_(False)
    try:
        with torch.no_grad():
            mu, logvar = (a.clone() for a in model.encode(x))
        mu.requires_grad_(True)
        logvar.requires_grad_(True)
        optimizer = torch.optim.Adam([mu, logvar], lr=lr)
        generator = torch.Generator(x.device).manual_seed(seed)
        for _ in tqdm(range(steps), desc="fitting q per example", disable=not progress):
            eps = torch.randn(samples, *mu.shape, generator=generator, device=x.device)
            loss = -log_importance_weights(model, x, eps, (mu, logvar)).mean(0).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        for p, requires_grad in zip(model.parameters(), frozen):
            p.requires_grad_(requires_grad)
    return mu.detach(), logvar.detach()


@torch.no_grad()
def elbo(model: Any, x: torch.Tensor,
         posterior: tuple[torch.Tensor, torch.Tensor] | None = None, *,
         samples: int = 1000, seed: int = 1) -> np.ndarray:
    """Each example's ELBO (N,) under q = ``posterior`` (default: the encoder's), averaged
    over ``samples`` draws of z, in float64 nats."""
    mu, logvar = posterior if posterior is not None else model.encode(x)
    generator = torch.Generator(x.device).manual_seed(seed)
    # draws per call of the model, so that draws x examples x pixels stays within iwae's limit
    chunk = max(1, MAX_CHUNK_ELEMENTS // x[0].numel() // len(x))
    total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    for start in range(0, samples, chunk):
        eps = torch.randn(min(chunk, samples - start), *mu.shape, generator=generator,
                          device=x.device)
        total += log_importance_weights(model, x, eps, (mu, logvar)).double().sum(0)
    return (total / samples).cpu().numpy()
