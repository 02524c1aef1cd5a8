"""The website's favicon: a small latent-space lattice (drawn, never hand-made)."""
from pathlib import Path

import numpy as np
# A bare Figure, not pyplot:
# importing this module never changes a notebook's matplotlib backend.
from matplotlib.figure import Figure
from matplotlib.patches import Circle


def draw(path: Path) -> None:
    fig = Figure(figsize=(0.64, 0.64), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1], xlim=(-1, 1), ylim=(-1, 1))
    ax.set_axis_off()
    ax.add_patch(Circle((0, 0), 1.0, color="#1f4e79"))
    for x in np.linspace(-0.5, 0.5, 3):
        for y in np.linspace(-0.5, 0.5, 3):
            ax.add_patch(Circle((x, y), 0.13, color="#f2c14e"))
    fig.savefig(path, transparent=True)


if __name__ == "__main__":
    draw(Path(__file__).with_suffix(".png"))
