"""Seeded initial weights: a model's starting point is a stated seed, never the global state.

PyTorch initialises a layer from its global generator when the layer is built, so a model
built without care starts from whatever earlier code left in that generator: another run,
another start. The book's models build their layers inside ``initial_weights(seed)``, so the
same seed gives the same weights in any process, whatever ran before, and building a model
leaves the global generator as it found it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def initial_weights(seed: int) -> Iterator[None]:
    """Inside: torch's CPU generator is seeded with ``seed``; after: restored as it was.

    Raises TypeError for a seed that is not an integer (a float seed would be truncated).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    with torch.random.fork_rng(devices=[]):  # layers are built on the CPU
        torch.manual_seed(seed)
        yield
