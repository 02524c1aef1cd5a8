"""The one training loop of every PyTorch model in the book, its evaluation and checkpoints.

A model takes part by following a small protocol (``book.conv_vae.ConvVAE`` is the example):
``forward(x, eps) -> ELBOTerms``, ``z_dim``, ``input_shape`` (of one example),
``likelihood`` ("bernoulli": trained on binarized digits; "gaussian": on dequantized gray
levels) and ``config`` (a frozen dataclass). The uint8 images go to the device once; every
pass over them draws its binarization or dequantization there. The device is CUDA when there
is one, else the CPU.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from book import data
from book.files import atomic_write
from book.history import Divergence, History, Losses

TEST_SEED = 0  # the one fixed draw of the test set's observations, for every evaluation


def default_device() -> torch.device:
    """CUDA when PyTorch sees a GPU (Colab's, say), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 images (N, 28, 28) as a tensor on the device, checked."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.ndim != 3:
        raise ValueError(f"expected uint8 images of shape (N, 28, 28) as load_dataset returns, "
                         f"got {images.dtype} {tuple(images.shape)}")
    return images.to(device)


# What each observation model may be trained and scored on, its default first (see
# book.data.observe): a Bernoulli likelihood is a probability of binary images only.
ADMITTED = {"bernoulli": ("binary",), "gaussian": ("dequantized", "grey")}
OBSERVATION = {likelihood: kinds[0] for likelihood, kinds in ADMITTED.items()}


def observation_kind(model: Any, kind: str | None = None) -> str:
    """``kind`` (default: what the model's likelihood is trained on) if the model's likelihood
    admits it, else a ValueError: gray levels are no data for a Bernoulli likelihood."""
    kind = kind or OBSERVATION[model.likelihood]
    if kind not in ADMITTED[model.likelihood]:
        admitted = " or ".join(ADMITTED[model.likelihood])
        raise ValueError(f"a {model.likelihood} likelihood cannot be trained or scored on "
                         f"{kind!r} observations; it takes {admitted} (for gray levels, use "
                         "ConvConfig(likelihood='gaussian'))")
    return kind


def observe(model: Any, images: torch.Tensor, generator: torch.Generator,
            kind: str | None = None) -> torch.Tensor:
    """uint8 images as the model takes them (by default binarized or dequantized, as its
    likelihood needs), in its input shape."""
    x = data.observe(images, observation_kind(model, kind), generator)
    return x.reshape(len(x), *model.input_shape)


def fixed_observations(images: np.ndarray | torch.Tensor, kind: str) -> torch.Tensor:
    """uint8 test images binarized or dequantized (``kind``) once, with the fixed seed.

    Drawn on the CPU, then moved: the same test set on every device, so numbers compare;
    a model that is not a PyTorch one (a mixture, PPCA) is scored on these same images.
    """
    images = torch.as_tensor(images)
    generator = torch.Generator().manual_seed(TEST_SEED)
    return data.observe(images.cpu(), kind, generator).to(images.device)


def observe_test_set(model: Any, images: torch.Tensor, kind: str | None = None) -> torch.Tensor:
    """The test images as the model sees them (``fixed_observations``), in its input shape."""
    x = fixed_observations(images, observation_kind(model, kind))
    return x.reshape(len(x), *model.input_shape)


def kl_weight(images_seen: int, beta: float, warmup_images: int) -> float:
    """beta_t: rises linearly from 0 with no image seen to ``beta`` after ``warmup_images``
    (KL warm-up)."""
    return beta * min(1.0, images_seen / warmup_images) if warmup_images else beta


LR_SCHEDULES = ("constant", "cosine")


def learning_rate(lr: float, schedule: str, progress: float) -> float:
    """The learning rate at ``progress`` in [0, 1] of the budget: ``lr`` throughout
    ("constant"), or ``lr`` decayed to 0 along half a cosine ("cosine": Loshchilov and Hutter,
    2017, without restarts)."""
    if schedule == "constant":
        return lr
    return 0.5 * lr * (1 + math.cos(math.pi * min(1.0, progress)))


def divergence_watch(model: Any) -> Divergence:
    """The model's ``Divergence``: with the Bernoulli likelihood's scale (its pixels), or, for a
    density, for losses that are not finite only."""
    pixels = math.prod(model.input_shape) if model.likelihood == "bernoulli" else None
    return Divergence(pixels)


def train_step(model: Any, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               eps: torch.Tensor, kl_weight: float = 1.0,
               divergence: Divergence | None = None) -> Any:
    """One Adam step on the batch mean of recon + kl_weight * KL; returns the batch's terms.

    Raises ``book.history.TrainingDiverged``, before the step, once the loss is not finite
    (or, watched by the run's ``divergence``, has exploded).
    """
    terms = model(x, eps)
    loss = (terms.recon + kl_weight * terms.kl).mean()
    (divergence or divergence_watch(model)).check(
        terms.loss.item(), optimizer.param_groups[0]["lr"],  # the negative ELBO
        lambda: all(bool(torch.isfinite(p).all()) for p in model.parameters()))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return terms


@torch.no_grad()
def evaluate(model: Any, x: torch.Tensor, *, seed: int = 0, batch_size: int = 1000) -> Losses:
    """The losses of observations x in nats per example, one seeded z per example."""
    was_training = model.training
    model.eval()
    generator = torch.Generator(x.device).manual_seed(seed)
    recon, kl = [], []
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        eps = torch.randn(len(batch), model.z_dim, generator=generator, device=x.device,
                          dtype=x.dtype)
        terms = model(batch, eps)
        recon.append(terms.recon.double().cpu())
        kl.append(terms.kl.double().cpu())
    model.train(was_training)
    return Losses.of(torch.cat(recon).numpy(), torch.cat(kl).numpy())


def train(model: Any, train_images: np.ndarray | torch.Tensor,
          test_images: np.ndarray | torch.Tensor, *, images: int | None = None,
          seconds: float | None = None, batch_size: int = 128, lr: float = 1e-3,
          lr_schedule: str = "constant", seed: int = 0, beta: float = 1.0,
          warmup_images: int = 0, eval_every: int | None = None,
          device: torch.device | str | None = None, observation: str | None = None,
          progress: bool = True) -> History:
    """Train with Adam on shuffled minibatches until ``images`` training images have been
    processed or ``seconds`` have passed, whichever comes first.

    The budget counts images, never epochs: a run costs the same on any training set (on a
    small one it makes more passes over fewer images). Each pass draws a fresh binarization or
    dequantization of the whole set and a fresh order; the last pass may stop part-way.
    The loss is the minibatch mean of recon + beta_t * KL, where beta_t rises linearly from 0 to
    ``beta`` over the first ``warmup_images`` (KL warm-up) and beta = 1 is the negative ELBO.
    ``lr_schedule`` is "constant" or "cosine" (``learning_rate``; progress through the budget
    is the larger of the images' and the seconds' share).
    Every ``eval_every`` images (by default a twentieth of ``images``; with a budget in
    seconds alone, only at the end) and at the end, the history records the mean losses of the
    minibatches since the last record and the test images' negative ELBO, recon and KL: pass
    as many test images as the evaluations should cost.
    ``observation`` overrides what the images are turned into (``book.data.observe``).
    ``seed`` seeds torch's global generator too (a run on the CPU repeats exactly; on CUDA,
    some kernels are not deterministic).
    Raises ``book.history.TrainingDiverged`` (a ``FloatingPointError``) on the first minibatch
    whose loss is not finite or has exploded (``book.history.Divergence``), before its step.
    """
    if images is None and seconds is None:
        raise ValueError("give a budget: images (training images to process), seconds, or both")
    if images is not None and images < 1:
        raise ValueError(f"images must be at least 1, got {images}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if eval_every is None:
        eval_every = max(1, images // 20) if images is not None else None
    device = torch.device(device) if device is not None else default_device()
    torch.manual_seed(seed)
    model.to(device).train()
    generator = torch.Generator(device).manual_seed(seed)
    train_set = to_device(train_images, device)
    x_test = observe_test_set(model, to_device(test_images, device), observation)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history, recon, kl, divergence = History(), [], [], divergence_watch(model)
    seen, next_record, start = 0, eval_every, time.perf_counter()

    def progress_made() -> float:  # the share of the budget used so far
        shares = [seen / images if images else 0.0,
                  (time.perf_counter() - start) / seconds if seconds else 0.0]
        return max(shares)

    total = math.ceil(images / batch_size) if images is not None else None
    with tqdm(total=total, desc="training", unit="step", disable=not progress) as bar:
        done = False
        while not done:  # one pass over the training set: a fresh draw, a fresh order
            x = observe(model, train_set, generator, observation)
            order = torch.randperm(len(x), generator=generator, device=device)
            for idx in order.split(batch_size):
                if images is not None:
                    idx = idx[:images - seen]
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(lr, lr_schedule, progress_made())
                eps = torch.randn(len(idx), model.z_dim, generator=generator, device=device)
                weight = kl_weight(seen, beta, warmup_images)
                terms = train_step(model, optimizer, x[idx], eps, weight, divergence)
                recon.append(terms.recon.detach())
                kl.append(terms.kl.detach())
                seen += len(idx)
                bar.update()
                done = progress_made() >= 1.0
                if done or (next_record is not None and seen >= next_record):
                    seen_losses = Losses.of(torch.cat(recon).double().cpu().numpy(),
                                            torch.cat(kl).double().cpu().numpy())
                    test = evaluate(model, x_test)
                    history.record(seen / len(x), seen, time.perf_counter() - start,
                                   seen_losses, test)
                    recon, kl = [], []
                    while next_record is not None and next_record <= seen:
                        next_record += eval_every
                    bar.set_postfix(train=f"{seen_losses.neg_elbo:.1f}",
                                    test=f"{test.neg_elbo:.1f}")
                if done:
                    break
    return history


# --- checkpoints -----------------------------------------------------------------------------


def save_checkpoint(model: Any, path: str | Path) -> Path:
    """Write the model's class, config and weights to ``path``, atomically and durably
    (``book.files.atomic_write``: synced to the disk before it takes the name).

    Every file written here loads with ``weights_only=True``: the config must hold plain
    Python values (the book's configs convert theirs when built), else a TypeError.
    """
    path = Path(path)
    config = dataclasses.asdict(model.config)
    for name, value in config.items():
        if not _plain(value):
            raise TypeError(f"{type(model.config).__name__}.{name} = {value!r} is not a plain "
                            "Python value, so torch.load(weights_only=True) could not read "
                            "the checkpoint back; give the config int, float, str or tuples")
    checkpoint = {"model": type(model).__name__, "config": config,
                  "state": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_write(path) as out:
        torch.save(checkpoint, out)
    return path


def _plain(value: Any) -> bool:
    """Whether ``value`` is data that ``torch.load(weights_only=True)`` reads back as is."""
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


def load_checkpoint(model: Any, path: str | Path) -> Any:
    """Load the weights in ``path`` into ``model``, which must have the same class and config.

    Read with ``weights_only=True``: a checkpoint is data, never code to run.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or set(checkpoint) != {"model", "config", "state"}:
        raise ValueError(f"{path} is not a checkpoint written by book.train.save_checkpoint")
    if checkpoint["model"] != type(model).__name__:
        raise ValueError(f"{path} holds a {checkpoint['model']}, not a {type(model).__name__}")
    ours = dataclasses.asdict(model.config)
    stored = {k: tuple(v) if isinstance(v, list) else v
              for k, v in checkpoint["config"].items()}
    differ = [f"{k}: stored {stored.get(k)!r}, this model {ours.get(k)!r}"
              for k in sorted(set(ours) | set(stored)) if stored.get(k) != ours.get(k)]
    if differ:
        raise ValueError(f"{path} was trained with another config; build the model with "
                         f"the stored one. Differences: {'; '.join(differ)}")
    model.load_state_dict(checkpoint["state"])
    return model
