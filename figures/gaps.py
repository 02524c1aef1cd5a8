"""The two gaps of a VAE's bound on one number line: log p(x) >= ELBO(q*) >= ELBO(q_phi).

The encoder's gap, log p(x) - ELBO(q_phi) = KL(q_phi(z|x) || p(z|x)), splits into the
approximation gap (what the family of q costs, KL(q* || p(z|x)) for the best member q*) and the
amortization gap (what one encoder for every x costs). The importance-weighted bound L_K of the
encoder's q starts at its ELBO (K = 1) and rises towards log p(x). Chapter 1 draws it; the
chapters that measure the gaps show it again.
"""

# A bare Figure, not pyplot:
# importing this module never changes a notebook's matplotlib backend.
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

INK, APPROXIMATION, AMORTIZATION, IWAE = "#1a1a1a", "#1f4e79", "#b35900", "#555555"
# Where the three values sit on the line (inches): only their order means anything.
ENCODER_ELBO, BEST_ELBO, LOG_P = 1.3, 4.3, 6.7
LINE = 1.25  # the height of the number line


def _brace(ax, x0, x1, y, text, color, below=False) -> None:
    """A square bracket from x0 to x1 at height y, its label above (or below) it."""
    tick = -0.12 if not below else 0.12
    ax.plot([x0, x0, x1, x1], [y + tick, y, y, y + tick], color=color, lw=1.6)
    ax.text((x0 + x1) / 2, y + (0.08 if not below else -0.08), text, ha="center",
            va="bottom" if not below else "top", fontsize=10.5, color=color)


def figure() -> Figure:
    """The number line: the three values, the two gaps, the IWAE arrow (1 unit = 1 inch)."""
    fig = Figure(figsize=(7.6, 2.7))
    ax = fig.add_axes([0, 0, 1, 1], xlim=(0, 7.6), ylim=(0, 2.7))
    ax.set_axis_off()

    ax.add_patch(FancyArrowPatch((0.3, LINE), (7.35, LINE), arrowstyle="-|>",
                                 mutation_scale=14, lw=1.3, color=INK))
    ax.text(7.35, LINE + 0.1, "nats", ha="right", va="bottom", fontsize=9.5, color=INK)
    marks = [(ENCODER_ELBO, r"$\mathcal{L}(\theta, \phi; x)$", "the encoder's $q_\\phi$"),
             (BEST_ELBO, r"$\mathcal{L}(q^\star_x)$", "the best $q$ of the family"),
             (LOG_P, r"$\log p_\theta(x)$", "the evidence")]
    for x, value, what in marks:
        ax.plot([x, x], [LINE - 0.1, LINE + 0.1], color=INK, lw=2)
        ax.text(x, LINE - 0.17, value, ha="center", va="top", fontsize=12, color=INK)
        ax.text(x, LINE - 0.52, what, ha="center", va="top", fontsize=9.5, color=IWAE)

    _brace(ax, ENCODER_ELBO, BEST_ELBO, LINE + 0.3, "amortization gap", AMORTIZATION)
    _brace(ax, BEST_ELBO, LOG_P, LINE + 0.3,
           "approximation gap\n" + r"$\mathrm{KL}(q^\star_x\,\|\,p_\theta(z\mid x))$",
           APPROXIMATION)
    _brace(ax, ENCODER_ELBO, LOG_P, LINE + 1.05,
           r"the encoder's gap $\mathrm{KL}(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x))$", INK)

    ax.add_patch(FancyArrowPatch((ENCODER_ELBO, 0.18), (LOG_P, 0.18), arrowstyle="-|>",
                                 mutation_scale=12, lw=1.2, color=IWAE, ls="--"))
    ax.text((ENCODER_ELBO + LOG_P) / 2, 0.24,
            r"IWAE bound $\mathcal{L}_K$ of the encoder's $q$: $K = 1$ to $\infty$",
            ha="center", va="bottom", fontsize=9.5, color=IWAE)
    return fig
