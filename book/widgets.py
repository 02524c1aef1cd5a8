"""Live latent-space widgets for Jupyter and Colab: sliders, a map, the exact posterior of a
test digit, interpolation, traversals.

Written against the ipywidgets 7.7 API, which Colab ships and renders with no set-up (8 serves
it too), and with core widgets only: no ipympl, no ``interact`` with matplotlib. Each view is
an ``ipywidgets.Image`` holding PNG bytes, redrawn by callbacks wired with ``.observe``; the
decoder runs under ``torch.no_grad()``.

Each explorer displays as its live widget *and* a static HTML snapshot of its first view in
one output. A live notebook shows the widget; the website, where no kernel runs, shows the
snapshot and says where the live version runs (``_config.yml`` ranks the widget below HTML
for the website).
"""
from __future__ import annotations

import base64
import time
from typing import Any, Callable

import ipywidgets as widgets
import numpy as np

from book import quadrature
from book.conv_vae import decode_means
from book.latent import interpolate, traversal_codes
from book.plots import image_grid
from book.png import grey_levels, png_bytes

SCALE = 6  # screen pixels per image pixel: a digit is 168 x 168
LIVE_NOTE = ("A live widget stands here when this notebook runs in Jupyter or Colab; "
             "the website shows its first view.")
TAB10 = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40],
                  [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127],
                  [188, 189, 34], [23, 190, 207]], dtype=np.uint8)


def digit_png(model: Any, z: np.ndarray) -> bytes:
    """The decoded digit at one code z, as a PNG enlarged SCALE times."""
    return png_bytes(grey_levels(decode_means(model, z)[0], SCALE))


class LiveExplorer:
    """A live widget (``self.widget``) that shows as a snapshot where no kernel runs.

    Subclasses build ``self.widget`` and the ``self.images`` their snapshot shows.
    """

    widget: widgets.Widget
    images: list[tuple[str, widgets.Image]]  # (what it shows, the image)

    def snapshot_html(self) -> str:
        """The explorer's images as they are now, inline, with a note on the live version."""
        tags = "".join(
            f'<img src="data:image/png;base64,{base64.b64encode(image.value).decode()}" '
            f'alt="{alt}" style="margin:0 0.75rem 0.5rem 0">' for alt, image in self.images)
        return f'<div class="vae-widget-snapshot">{tags}<p><em>{LIVE_NOTE}</em></p></div>'

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        view = {"version_major": 2, "version_minor": 0, "model_id": self.widget.model_id}
        return {"text/plain": f"{type(self).__name__} (a live widget)",
                "text/html": self.snapshot_html(),
                "application/vnd.jupyter.widget-view+json": view}

    def time_update(self, change: Callable[[int], None], n: int = 100) -> np.ndarray:
        """Milliseconds of each of n updates: ``change(i)`` moves a control as a drag would,
        and the callback it fires decodes, encodes the PNG and updates the image."""
        times = []
        for i in range(n):
            start = time.perf_counter()
            change(i)
            times.append(1e3 * (time.perf_counter() - start))
        return np.array(times)


class LatentSliders(LiveExplorer):
    """One slider per latent dimension, buttons to sample from the prior and to reset, and
    the decoded digit, redrawn on every drag. ``order`` lists the dimensions to show, e.g.
    most informative first."""

    def __init__(self, model: Any, order: list[int] | None = None, seed: int = 0):
        self.model, self.z = model, np.zeros(model.z_dim)
        self.rng = np.random.default_rng(seed)
        order = list(range(model.z_dim)) if order is None else list(order)
        self.sliders = {j: widgets.FloatSlider(value=0.0, min=-3.0, max=3.0, step=0.05,
                                               description=f"z{j + 1}", continuous_update=True)
                        for j in order}
        self.image = widgets.Image(value=digit_png(model, self.z), format="png")
        self.images = [("the decoded digit", self.image)]
        self._holding = False
        for slider in self.sliders.values():
            slider.observe(self._moved, names="value")
        sample = widgets.Button(description="Sample from the prior")
        reset = widgets.Button(description="Reset to 0")
        sample.on_click(lambda _: self.set(self.rng.standard_normal(model.z_dim)))
        reset.on_click(lambda _: self.set(np.zeros(model.z_dim)))
        controls = widgets.VBox([*self.sliders.values(), widgets.HBox([sample, reset])])
        self.widget = widgets.HBox([self.image, controls])

    def set(self, z: np.ndarray) -> None:
        """Move every slider to z (clipped to the sliders' range) and redraw once."""
        self._holding = True
        for j, slider in self.sliders.items():
            slider.value = float(np.clip(z[j], slider.min, slider.max))
        self._holding = False
        self._moved(None)

    def _moved(self, _change: Any) -> None:
        if self._holding:
            return
        for j, slider in self.sliders.items():
            self.z[j] = slider.value
        self.image.value = digit_png(self.model, self.z)


class LatentMap(LiveExplorer):
    """The encoded test set of a 2-D model as a map colored by digit, a point on it moved by
    two sliders (or sent to a random test digit's code), and the digit decoded there."""

    SIZE = 300  # pixels of the map

    def __init__(self, model: Any, mu: np.ndarray, labels: np.ndarray, extent: float = 3.0,
                 seed: int = 0):
        if model.z_dim != 2:
            raise ValueError(f"the map needs a 2-D latent space, this model has {model.z_dim}")
        self.model, self.mu, self.labels, self.extent = model, mu, labels, extent
        self.rng = np.random.default_rng(seed)
        self.background = self._background()
        self.z1, self.z2 = (widgets.FloatSlider(value=0.0, min=-extent, max=extent, step=0.02,
                                                description=name, continuous_update=True)
                            for name in ("z1", "z2"))
        self.map = widgets.Image(value=png_bytes(self.background), format="png")
        self.digit = widgets.Image(value=digit_png(model, np.zeros(2)), format="png")
        self.images = [("the latent map", self.map), ("the decoded digit", self.digit)]
        self.caption = widgets.Label()
        jump = widgets.Button(description="A random test digit")
        jump.on_click(lambda _: self.go_to(int(self.rng.integers(len(mu)))))
        for slider in (self.z1, self.z2):
            slider.observe(lambda _: self.update(), names="value")
        self.widget = widgets.HBox([self.map, widgets.VBox(
            [self.digit, self.z1, self.z2, jump, self.caption])])
        self.update()

    def pixel(self, z: np.ndarray) -> np.ndarray:
        """Map pixels (column, row) of codes z (n, 2); z_2 points up."""
        z = np.atleast_2d(z)
        return np.stack([(z[:, 0] / self.extent + 1) * self.SIZE / 2,
                         (1 - z[:, 1] / self.extent) * self.SIZE / 2], axis=1)

    def _background(self) -> np.ndarray:
        """White, with each code a 3 x 3 square in its digit's color."""
        image = np.full((self.SIZE, self.SIZE, 3), 255, np.uint8)
        cols, rows = np.round(self.pixel(self.mu)).astype(int).T
        inside = (cols >= 1) & (cols < self.SIZE - 1) & (rows >= 1) & (rows < self.SIZE - 1)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                image[rows[inside] + dr, cols[inside] + dc] = TAB10[self.labels[inside]]
        return image

    def go_to(self, index: int) -> None:
        """Move the point to the code of test digit ``index``."""
        z1, z2 = np.clip(self.mu[index], -self.extent, self.extent)
        self.z1.value, self.z2.value = float(z1), float(z2)
        self.caption.value = f"test digit #{index}, a {self.labels[index]}"

    def update(self) -> None:
        z = np.array([self.z1.value, self.z2.value])
        image = self.background.copy()
        col, row = np.round(self.pixel(z)[0]).astype(int)
        rr, cc = np.ogrid[:self.SIZE, :self.SIZE]
        distance = np.hypot(rr - row, cc - col)
        image[distance <= 6] = 255
        image[(distance > 4.5) & (distance <= 6.5)] = 0  # a ring around the point
        self.map.value = png_bytes(image)
        self.digit.value = digit_png(self.model, z)


class ExactPosterior(LiveExplorer):
    """For a 2-D model: a test digit, its exact posterior p(z | x) by quadrature
    (``book.quadrature``) shaded in blue, and the encoder's q(z | x) as its 2-sigma ellipse,
    with log p(x), the ELBO of q and their gap KL(q(z | x) || p(z | x)) in nats.

    ``digits`` (N, 784) are test digits as the model scores them (binary for a Bernoulli
    decoder); the view spans 4 standard deviations around the posterior and around q.
    """

    def __init__(self, model: Any, digits: np.ndarray, labels: np.ndarray, index: int = 0):
        if model.z_dim != 2:
            raise ValueError(f"the exact posterior needs a 2-D latent space, this model has "
                             f"{model.z_dim}: use book.iwae to bound log p(x) instead")
        self.model, self.digits, self.labels = model, np.asarray(digits), labels
        self.index = widgets.BoundedIntText(value=index, min=0, max=len(digits) - 1,
                                            description="test digit #",
                                            layout=widgets.Layout(width="200px"))
        self.board, self.digit = widgets.Image(format="png"), widgets.Image(format="png")
        self.numbers = widgets.HTML()
        self.images = [("the exact posterior (blue) and the encoder's q (black ellipse, "
                        "2 sigma)", self.board), ("the test digit", self.digit)]
        self.index.observe(lambda _: self.update(), names="value")
        self.widget = widgets.HBox([self.board, widgets.VBox(
            [self.index, self.digit, self.numbers])])
        self.update()

    def update(self) -> None:
        i = self.index.value
        x = self.digits[i : i + 1].reshape(1, -1)
        evidence = quadrature.log_evidence(self.model, x)
        window = quadrature.posterior_window(self.model, x, evidence, 0, n=120)
        self.board.value = png_bytes(posterior_picture(window))
        self.digit.value = png_bytes(grey_levels(x.reshape(28, 28), 3))
        checks = "" if evidence.passed() else " (its checks failed)"
        lines = [f"test digit #{i}, a {self.labels[i]}",
                 f"log p(x) {evidence.log_px[0]:.2f} nats, exact{checks}",
                 f"ELBO of the encoder's q {evidence.elbo[0]:.2f}",
                 f"gap KL(q(z|x) || p(z|x)) {evidence.gap[0]:.2f}"]
        self.numbers.value = "<pre>" + "\n".join(lines) + "</pre>"


def posterior_picture(window: quadrature.Window, scale: int = 2) -> np.ndarray:
    """RGB (rows, cols, 3) of a ``quadrature.Window``: p(z | x) relative to its largest value
    in shades of blue, q's 2-sigma ellipse in black; z_2 points up, each point ``scale``
    pixels wide."""
    density = np.exp(window.log_posterior - window.log_posterior.max()).T[::-1]
    image = np.stack([255 - 225 * density, 255 - 160 * density, 255 - 40 * density], -1)
    # inside q's 2-sigma ellipse: log q within 2 of its largest value (diagonal Gaussian)
    inside = (window.log_q >= window.log_q.max() - 2).T[::-1]
    edge = inside.copy()
    edge[1:-1, 1:-1] &= ~(inside[:-2, 1:-1] & inside[2:, 1:-1]
                          & inside[1:-1, :-2] & inside[1:-1, 2:])
    image[edge] = 0
    return np.repeat(np.repeat(image.astype(np.uint8), scale, 0), scale, 1)


class Interpolation(LiveExplorer):
    """The path between the codes (means) of two test digits, linear or spherical: both paths
    as strips, and the digit at the slider's position on the chosen one."""

    STEPS = 9

    def __init__(self, model: Any, mu: np.ndarray, labels: np.ndarray, first: int = 0,
                 second: int = 1):
        self.model, self.mu, self.labels = model, mu, labels
        pick = dict(min=0, max=len(mu) - 1, layout=widgets.Layout(width="200px"))
        self.first = widgets.BoundedIntText(value=first, description="from #", **pick)
        self.second = widgets.BoundedIntText(value=second, description="to #", **pick)
        self.kind = widgets.ToggleButtons(options=["linear", "spherical"], value="spherical")
        self.t = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="t")
        self.strips, self.digit = widgets.Image(format="png"), widgets.Image(format="png")
        self.images = [("both paths: linear above, spherical below", self.strips),
                       ("the decoded digit at t", self.digit)]
        self.caption = widgets.Label()
        for control in (self.first, self.second):
            control.observe(lambda _: self.update(), names="value")
        for control in (self.kind, self.t):
            control.observe(lambda _: self.update_digit(), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.first, self.second, self.kind]),
                                    self.strips, widgets.HBox([self.digit, widgets.VBox(
                                        [self.t, self.caption])])])
        self.update()

    def path(self, kind: str, t: np.ndarray | float) -> np.ndarray:
        return interpolate(self.mu[self.first.value], self.mu[self.second.value], t, kind)

    def update(self) -> None:
        t = np.linspace(0, 1, self.STEPS)
        rows = [decode_means(self.model, self.path(kind, t))
                for kind in ("linear", "spherical")]
        strips = image_grid(np.concatenate(rows), 2, self.STEPS)
        self.strips.value = png_bytes(grey_levels(strips, 2))
        self.update_digit()

    def update_digit(self) -> None:
        z = self.path(self.kind.value, self.t.value)
        self.digit.value = digit_png(self.model, z)
        a, b = self.first.value, self.second.value
        self.caption.value = (f"a {self.labels[a]} to a {self.labels[b]}: "
                              f"|z| = {np.linalg.norm(z):.2f} at t = {self.t.value:.2f}")


class Traversal(LiveExplorer):
    """A traversal grid: row j changes dimension j alone across [-span, span], from the
    code of a chosen test digit (or from 0, the prior's mean)."""

    STEPS = 9

    def __init__(self, model: Any, mu: np.ndarray, order: list[int] | None = None,
                 start: int = -1):
        self.model, self.mu = model, mu
        self.order = list(range(model.z_dim)) if order is None else list(order)
        self.start = widgets.BoundedIntText(value=start, min=-1, max=len(mu) - 1,
                                            description="from #",
                                            layout=widgets.Layout(width="200px"))
        self.span = widgets.FloatSlider(value=3.0, min=0.5, max=4.0, step=0.25,
                                        description="span")
        self.grid = widgets.Image(format="png")
        self.images = [("the traversal grid", self.grid)]
        note = widgets.Label("from # -1 starts at z = 0, the prior's mean")
        for control in (self.start, self.span):
            control.observe(lambda _: self.update(), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.start, self.span]), note, self.grid])
        self.update()

    def codes(self) -> np.ndarray:
        z0 = np.zeros(self.model.z_dim) if self.start.value < 0 else self.mu[self.start.value]
        values = np.linspace(-self.span.value, self.span.value, self.STEPS)
        return traversal_codes(z0, values)[self.order]

    def update(self) -> None:
        codes = self.codes()
        decoded = decode_means(self.model, codes.reshape(-1, codes.shape[-1]))
        self.grid.value = png_bytes(grey_levels(image_grid(decoded, len(codes), self.STEPS), 2))
