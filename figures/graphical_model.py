"""The VAE as a graphical model: z -> x inside a plate of N data points, theta and phi outside.

Solid arrows are the generative model p(z) p_theta(x|z); dashed arrows are the inference
model q_phi(z|x), the encoder, which runs against the generative direction.
"""

# A bare Figure, not pyplot:
# importing this module never changes a notebook's matplotlib backend.
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

INK, OBSERVED, R = "#1a1a1a", "#d9d9d9", 0.32  # line color, observed-node fill, node radius


def _arrow(ax, start, end, dashed=False, bend=0.0, shrink=(R, R)) -> None:
    ax.add_patch(FancyArrowPatch(
        start, end, arrowstyle="-|>", mutation_scale=16, lw=1.6, color=INK,
        linestyle=(0, (4, 3)) if dashed else "-", connectionstyle=f"arc3,rad={bend}",
        shrinkA=shrink[0] * 72, shrinkB=shrink[1] * 72))  # in points: 72 per inch = 1 unit


def figure() -> Figure:
    """The plate diagram, as a matplotlib figure (1 data unit = 1 inch)."""
    fig = Figure(figsize=(4.8, 3.9))
    ax = fig.add_axes([0, 0, 1, 1], xlim=(-2.4, 2.4), ylim=(-1.35, 2.55))
    ax.set_axis_off()
    z, x, theta, phi = (0.0, 1.5), (0.0, 0.0), (1.85, 0.0), (-1.95, 1.5)

    ax.add_patch(FancyBboxPatch((-1.3, -0.62), 2.45, 2.95,
                                boxstyle="round,pad=0,rounding_size=0.08",
                                fill=False, lw=1.3, ec=INK))
    ax.text(1.05, -0.53, "$N$", ha="right", va="bottom", fontsize=13)
    for (cx, cy), label, fill in [(z, "$z$", "white"), (x, "$x$", OBSERVED)]:
        ax.add_patch(Circle((cx, cy), R, fc=fill, ec=INK, lw=1.6, zorder=3))
        ax.text(cx, cy, label, ha="center", va="center", fontsize=17, zorder=4)
    for (cx, cy), label in [(theta, r"$\theta$"), (phi, r"$\phi$")]:
        ax.add_patch(Circle((cx, cy), 0.07, color=INK, zorder=3))
        ax.text(cx, cy + 0.2, label, ha="center", va="bottom", fontsize=15)

    _arrow(ax, z, x)
    _arrow(ax, theta, x, shrink=(0.07, R))
    _arrow(ax, phi, z, dashed=True, shrink=(0.07, R))
    _arrow(ax, x, z, dashed=True, bend=-0.55)
    ax.text(0.1, 0.75, r"$p_\theta(x\mid z)$", fontsize=12, va="center")
    ax.text(-0.5, 0.75, r"$q_\phi(z\mid x)$", fontsize=12, va="center", ha="right")
    ax.text(0.0, 1.88, r"$p(z)=\mathcal{N}(0, I)$", fontsize=11, ha="center", va="bottom")

    handles = [Line2D([], [], color=INK, lw=1.6,
                      label=r"generative model $p(z)\,p_\theta(x\mid z)$"),
               Line2D([], [], color=INK, lw=1.6, ls=(0, (4, 3)),
                      label=r"inference model $q_\phi(z\mid x)$")]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), frameon=False,
              fontsize=10)
    return fig
