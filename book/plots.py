"""Figures more than one chapter draws: image grids, loss curves, latent maps colored by digit.

Each function draws into matplotlib axes it is given (or returns a new figure), so that a
chapter composes them and shows the result; nothing here trains or evaluates a model.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from book.history import History

SIDE = 28  # MNIST images are SIDE x SIDE pixels


def image_grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """rows x cols images (each 784 values or 28 x 28) as one picture, 1 pixel between them."""
    cells = np.asarray(images).reshape(rows, cols, SIDE, SIDE)
    padded = np.pad(cells, ((0, 0), (0, 0), (0, 1), (0, 1)))
    return padded.transpose(0, 2, 1, 3).reshape(rows * (SIDE + 1), cols * (SIDE + 1))[:-1, :-1]


def show_images(ax: plt.Axes, images: np.ndarray, rows: int, cols: int,
                title: str = "") -> None:
    """Draw images with values in [0, 1] as a grid, dark on light, without axes."""
    ax.imshow(image_grid(images, rows, cols), cmap="gray_r", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_title(title)
    ax.set_axis_off()


def loss_curves(history: History) -> plt.Figure:
    """The negative ELBO (train and test) and its two terms against training images seen."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    seen = np.array(history.images) / 1e6
    train, test = history.curve("train"), history.curve("test")
    left.plot(seen, train, label="train")
    left.plot(seen, test, label="test")
    left.set(title="negative ELBO")
    left.set_ylim(min(train.min(), test.min()) - 5, min(250, test.max() + 5))
    for split, color in (("train", "C0"), ("test", "C1")):
        right.plot(seen, history.curve(split, "recon"), color, label=f"reconstruction, {split}")
        right.plot(seen, history.curve(split, "kl"), color + "--", label=f"KL, {split}")
    right.set(title="its two terms")
    for ax in (left, right):
        ax.set(xlabel="training images processed (millions)", ylabel="nats per image")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def latent_scatter(ax: plt.Axes, z: np.ndarray, labels: np.ndarray, title: str = "",
                   size: float = 4) -> None:
    """2-D codes as points colored by their digit, with a color bar of the ten digits."""
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=size, vmin=-0.5,
                        vmax=9.5)
    ax.figure.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set(xlabel="$z_1$", ylabel="$z_2$", title=title, aspect="equal")
