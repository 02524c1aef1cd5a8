"""The static latent-space explorer: trained 2-D ConvVAEs exported for the browser.

``export_model`` writes a model's weights compactly (float16, base64: 75 kB for the book's
2-D model) and ``load_exported`` reads them back into PyTorch, so that tests compare the
browser's decoder with PyTorch's on the same numbers. ``explorer_html`` puts the exports of
one or more models (a VAE, the same VAE at other weights of its KL term, an autoencoder),
each with its encoded test set, and ``book/web/explorer.js`` into one self-contained HTML
snippet: a ``<div>`` with its canvases, the data as JSON, and an inline script that finds its
container by id; the reader switches between the models on the page. It needs no kernel, no
library and no network, so the same output works on the website, in Jupyter and in Colab (whose
outputs are isolated from each other).
"""
from __future__ import annotations

import base64
import json
import math
import uuid
from importlib import resources
from typing import Mapping

import numpy as np
import torch

from book.conv_vae import ConvAutoencoder, ConvConfig, ConvVAE, decode_means
from book.data import require_binary
from book.gaussian import LOGVAR_BOUND
from book.plots import image_grid
from book.png import grey_levels, png_bytes

FORMAT = "vae-book-explorer/1"


def _tensor(array: np.ndarray, dtype: str) -> dict:
    array = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    return {"shape": list(array.shape), "dtype": dtype,
            "data": base64.b64encode(array.tobytes()).decode("ascii")}


def _array(tensor: dict) -> np.ndarray:
    raw = base64.b64decode(tensor["data"])
    return np.frombuffer(raw, np.dtype(tensor["dtype"]).newbyteorder("<")).reshape(
        tensor["shape"])


def export_model(model: ConvVAE, dtype: str = "float16") -> dict:
    """The weights of a Bernoulli ConvVAE (or ConvAutoencoder) as JSON-ready data for the
    browser; ``kind`` says which ("vae": q(z | x) and a prior; "autoencoder": a code only)."""
    if not isinstance(model, ConvVAE) or model.likelihood != "bernoulli":
        raise ValueError("the explorer runs a ConvVAE with a Bernoulli decoder; got "
                         f"{type(model).__name__} ({getattr(model, 'likelihood', '?')})")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    tensors = {name: _tensor(value.detach().cpu().numpy(), dtype)
               for name, value in model.state_dict().items()}
    kind = "autoencoder" if isinstance(model, ConvAutoencoder) else "vae"
    return {"format": FORMAT, "kind": kind, "z_dim": model.z_dim,
            "channels": list(model.config.channels), "logvar_bound": LOGVAR_BOUND,
            "tensors": tensors}


def load_exported(exported: dict) -> ConvVAE:
    """The PyTorch model whose weights are exactly the exported (rounded) ones, in float32."""
    if exported.get("format") != FORMAT:
        raise ValueError(f"not an explorer export (format {exported.get('format')!r}, "
                         f"expected {FORMAT!r}); make one with export_model(model)")
    kind = {"vae": ConvVAE, "autoencoder": ConvAutoencoder}[exported.get("kind", "vae")]
    model = kind(ConvConfig(z_dim=exported["z_dim"], channels=tuple(exported["channels"])))
    state = {name: torch.from_numpy(_array(t).astype(np.float32))
             for name, t in exported["tensors"].items()}
    model.load_state_dict(state)
    return model.eval()


def map_extent(mu: np.ndarray) -> float:
    """Half the side of the square map: at least 3 (the prior's 3 sigma), wider if 0.5 % of
    the encoded means lie beyond, in steps of 0.5."""
    return max(3.0, math.ceil(2 * float(np.quantile(np.abs(mu), 0.995))) / 2)


def decoded_grid(model: ConvVAE, extent: float, n: int = 10) -> np.ndarray:
    """Pixel probabilities of the decoded points of an n x n grid over the map, z_2 rising
    upward, as one picture (what readers without JavaScript see)."""
    values = np.linspace(-extent, extent, n + 2)[1:-1]
    z = np.array([[z1, z2] for z2 in values[::-1] for z1 in values])
    return image_grid(decode_means(model, z), n, n)


def explorer_html(models: Mapping[str, tuple[ConvVAE, np.ndarray]], test_labels: np.ndarray,
                  dtype: str = "float16", digits: np.ndarray | None = None) -> str:
    """The explorer as one self-contained HTML snippet (see the module's docstring).

    ``models`` maps a name (the label of its button) to a 2-D model and the encoder's means
    of the test set (N, 2) under it, drawn as that model's map and coloured by
    ``test_labels`` (N,); the first is shown first. Each map is a square that holds its own
    codes (``map_extent``), with grid lines at whole numbers. ``digits`` (M, 28, 28),
    binary: test digits (as the models score them) whose exact posterior the reader can
    pick, one bit per pixel. Raises ValueError for a model that is not 2-D or means of
    another shape.
    """
    if not models:
        raise ValueError("the explorer needs at least one model")
    labels = np.asarray(test_labels)
    exhibits = []
    for name, (model, test_mu) in models.items():
        test_mu = np.asarray(test_mu, dtype=np.float32)
        if model.z_dim != 2 or test_mu.shape != (len(labels), 2):
            raise ValueError(f"{name}: the map needs a 2-D latent space and means of shape "
                             f"({len(labels)}, 2), one per label; got z_dim {model.z_dim} "
                             f"and means {test_mu.shape}")
        extent = map_extent(test_mu)
        exhibits.append({"name": name, "model": export_model(model, dtype),
                         "map": {"extent": extent, "mu": _tensor(test_mu, "float16")}})
    data = {"models": exhibits, "labels": _tensor(labels, "uint8")}
    if digits is not None:
        digits = np.asarray(digits).reshape(len(digits), -1)
        require_binary(digits, "the explorer's exact posterior (a Bernoulli likelihood)")
        data["digits"] = _tensor(np.packbits(digits.astype(np.uint8), axis=1), "uint8")
    # for readers without JavaScript: the first model's decoded grid
    first, extent = next(iter(models.values()))[0], exhibits[0]["map"]["extent"]
    grid = png_bytes(grey_levels(decoded_grid(first, extent)))
    web = resources.files("book") / "web"
    uid = f"vx-{uuid.uuid4().hex[:12]}"
    return _TEMPLATE.format(
        uid=uid, css=(web / "explorer.css").read_text(), js=(web / "explorer.js").read_text(),
        data=json.dumps(data, separators=(",", ":")), extent=extent,
        grid=base64.b64encode(grid).decode("ascii"))


def standalone_page(snippet: str, title: str = "VAE latent-space explorer") -> str:
    """A whole HTML page holding one explorer snippet (for the benchmark and the tests)."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<meta name='viewport' content='width=device-width'></head>"
            f"<body>{snippet}</body></html>")


def exported_size(snippet: str) -> dict[str, int]:
    """Bytes of the snippet, of its models' weights (base64) and of their encoded test sets
    (with the labels)."""
    data = json.loads(snippet.split('class="vx-data">', 1)[1].split("</script>", 1)[0])
    weights = sum(len(t["data"]) for m in data["models"]
                  for t in m["model"]["tensors"].values())
    points = (sum(len(m["map"]["mu"]["data"]) for m in data["models"])
              + len(data["labels"]["data"]))
    digits = len(data["digits"]["data"]) if "digits" in data else 0
    return {"html": len(snippet.encode()), "weights": weights, "map": points, "digits": digits}


_TEMPLATE = """\
<div class="vae-explorer" id="{uid}">
<style>{css}</style>
<div class="vx-models" role="group" aria-label="the model explored"></div>
<div class="vx-row">
  <figure><canvas class="vx-map" width="300" height="300" tabindex="0" role="img"
    aria-label="map of the latent space: drag the point, or move it with the arrow keys">
    </canvas>
    <figcaption>The test set's codes, coloured by digit:
      <span class="vx-legend"></span>. Drag the white point.
      <span class="vx-extent"></span></figcaption></figure>
  <figure><canvas class="vx-digit vx-big" width="28" height="28" role="img"
    aria-label="the digit decoded at the point"></canvas>
    <figcaption class="vx-where"></figcaption>
    <label>z<sub>1</sub> <input class="vx-z1" type="range" step="0.01" value="0"></label>
    <label>z<sub>2</sub> <input class="vx-z2" type="range" step="0.01" value="0"></label>
  </figure>
</div>
<div class="vx-row">
  <figure><canvas class="vx-pad" width="168" height="168" role="img"
    aria-label="draw a digit here"></canvas>
    <figcaption>Draw a digit here. <button class="vx-clear" type="button">Clear</button>
    </figcaption></figure>
  <figure><canvas class="vx-seen vx-small" width="28" height="28" role="img"
    aria-label="your drawing as the encoder sees it"></canvas>
    <figcaption>what the encoder sees</figcaption></figure>
  <figure><canvas class="vx-recon vx-small" width="28" height="28" role="img"
    aria-label="your drawing decoded from its mean"></canvas>
    <figcaption>decoded from its mean</figcaption>
    <figcaption class="vx-code"></figcaption></figure>
</div>
<div class="vx-row">
  <figure><canvas class="vx-posterior" width="240" height="240" tabindex="0" role="img"
    aria-label="the exact posterior of the digit and the Gaussian q: drag q, or move it with
    the arrow keys"></canvas>
    <figcaption>The digit's exact posterior p(z | x) (shaded), the encoder's q (solid
      ellipse, 2 sigma) and your q (dashed): drag it, and scale its sigmas.</figcaption>
  </figure>
  <div class="vx-panel">
    <p><button class="vx-test" type="button">Next test digit</button> or draw one above.
      <canvas class="vx-chosen vx-small" width="28" height="28" role="img"
      aria-label="the digit whose posterior is shown"></canvas></p>
    <p class="vx-numbers" aria-live="polite"></p>
    <label>sigma<sub>1</sub> &times; <input class="vx-s1" type="range" min="-2" max="2"
      step="0.01" value="0"></label>
    <label>sigma<sub>2</sub> &times; <input class="vx-s2" type="range" min="-2" max="2"
      step="0.01" value="0"></label>
    <p><button class="vx-best" type="button">Optimize q for this digit</button>
      <button class="vx-reset" type="button">The encoder's q</button></p>
  </div>
</div>
<noscript><style>#{uid} .vx-row {{ display: none; }}</style>
  <img alt="decoded points on a 10 x 10 grid of the map, from -{extent} to {extent}"
  src="data:image/png;base64,{grid}"></noscript>
<script type="application/json" class="vx-data">{data}</script>
<script>
{js}
VAEExplorer.mount(document.getElementById("{uid}"));
</script>
</div>
"""
