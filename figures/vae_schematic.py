"""The VAE's forward pass: encoder -> (mu, log sigma^2) -> z = mu + sigma * eps -> decoder.

eps ~ N(0, I) enters from outside as an input, so the path from the encoder's outputs to the
loss is deterministic and differentiable: that is the reparameterization trick.
"""

# A bare Figure, not pyplot:
# importing this module never changes a notebook's matplotlib backend.
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Polygon

INK, ENCODER, DECODER, LATENT, NOISE = "#1a1a1a", "#1f4e79", "#f2c14e", "#dbe9f6", "#eeeeee"
Y = 1.6  # the height of the main data path


def _box(ax, x, y, text, fc="white", w=0.9, h=0.6, ls="-", size=13) -> None:
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                boxstyle="round,pad=0,rounding_size=0.1",
                                fc=fc, ec=INK, lw=1.3, ls=ls, zorder=2))
    ax.text(x, y, text, ha="center", va="center", fontsize=size, zorder=3)


def _network(ax, x0, x1, h0, h1, fc, text, color) -> None:
    """A trapezoid, wide where the layer is wide.

    The encoder narrows to d, the decoder widens to D.
    """
    ax.add_patch(Polygon([(x0, Y - h0 / 2), (x1, Y - h1 / 2),
                          (x1, Y + h1 / 2), (x0, Y + h0 / 2)],
                         closed=True, fc=fc, ec=INK, lw=1.3, zorder=2))
    ax.text((x0 + x1) / 2, Y, text, ha="center", va="center", fontsize=12, color=color,
            zorder=3)


def _arrow(ax, start, end, **kw) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, lw=1.4,
                                 color=INK, zorder=1, **kw))


def figure() -> Figure:
    """The schematic, as a matplotlib figure (1 data unit = 1 inch)."""
    fig = Figure(figsize=(9.6, 3.3))
    ax = fig.add_axes([0, 0, 1, 1], xlim=(0, 9.6), ylim=(0, 3.3))
    ax.set_axis_off()

    _box(ax, 0.45, Y, "$x$", fc="#d9d9d9", w=0.6, h=1.6, size=16)
    _network(ax, 1.05, 2.55, 1.8, 0.9, ENCODER, "encoder\n" + r"$q_\phi(z\mid x)$", "white")
    _box(ax, 3.35, Y + 0.45, r"$\mu$", fc=LATENT)
    _box(ax, 3.35, Y - 0.45, r"$\log\sigma^2$", fc=LATENT)
    _box(ax, 5.3, Y, r"$z=\mu+\sigma\odot\varepsilon$", fc=LATENT, w=1.9, h=0.7)
    _box(ax, 5.3, 0.35, r"$\varepsilon\sim\mathcal{N}(0, I)$", fc=NOISE, w=1.7, h=0.5, ls="--",
         size=12)
    _network(ax, 6.75, 8.25, 0.9, 1.8, DECODER, "decoder\n" + r"$p_\theta(x\mid z)$", INK)
    _box(ax, 8.95, Y, r"$\hat{x}$", fc="#d9d9d9", w=0.6, h=1.6, size=16)

    _arrow(ax, (0.75, Y), (1.05, Y))
    for dy in (0.45, -0.45):
        _arrow(ax, (2.55, Y + dy * 0.75), (2.9, Y + dy))
    _arrow(ax, (3.8, Y + 0.45), (4.35, Y + 0.15))
    _arrow(ax, (3.8, Y - 0.45), (4.35, Y - 0.15))
    ax.text(3.35, 0.6, r"$\sigma=\exp(\frac{1}{2}\log\sigma^2)$", ha="center", va="center",
            fontsize=11)
    _arrow(ax, (5.3, 0.6), (5.3, Y - 0.35))
    _arrow(ax, (6.25, Y), (6.75, Y))
    _arrow(ax, (8.25, Y), (8.65, Y))

    ax.text(3.35, 2.75,
            r"$\mathrm{KL}\left(q_\phi(z\mid x)\,\|\,p(z)\right)$" + "\nin closed form",
            ha="center", va="center", fontsize=11, color=ENCODER)
    ax.text(8.95, 2.75, "reconstruction\n" + r"$\log p_\theta(x\mid z)$",
            ha="center", va="center", fontsize=11, color="#8a6200")
    ax.text(6.25, 0.35,
            "independent of $\\phi$: gradients\nflow through $\\mu$ and $\\sigma$ only",
            ha="left", va="center", fontsize=10, color="#555555")
    return fig
