"""The website's favicon: a small latent-space lattice (drawn, never hand-made)."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def draw(path: Path) -> None:
    fig = plt.figure(figsize=(0.64, 0.64), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_axis_off()
    ax.add_patch(plt.Circle((0, 0), 1.0, color="#1f4e79"))
    grid = np.linspace(-0.5, 0.5, 3)
    for x in grid:
        for y in grid:
            ax.add_patch(plt.Circle((x, y), 0.13, color="#f2c14e"))
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    fig.savefig(path, transparent=True)
    plt.close(fig)


if __name__ == "__main__":
    draw(Path(__file__).with_suffix(".png"))
