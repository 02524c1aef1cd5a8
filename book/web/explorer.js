// The latent-space explorer of the book's 2-D convolutional VAE, in plain JavaScript.
//
// No dependency, no build step, no request: book/explorer.py inlines this file, the model's
// weights (float16, base64) and the encoded test set into one HTML snippet, which runs as it
// is on the website, in Jupyter and in Colab. The same file runs in Node for the parity test
// (module.exports below).
//
// The networks are book/conv_vae.py's ConvVAE, one example at a time, tensors in PyTorch's
// (channels, height, width) order:
//   decoder  z (2) -> linear -> ReLU -> (C2, 7, 7) -> transposed conv 4x4 /2 -> ReLU
//            -> (C1, 14, 14) -> transposed conv 4x4 /2 -> (1, 28, 28) logits -> sigmoid
//   encoder  x (1, 28, 28) -> conv 4x4 /2 -> ReLU -> conv 4x4 /2 -> ReLU -> linear
//            -> [mu, raw], log sigma^2 = 8 tanh(raw / 8)
(function (root) {
  "use strict";

  // --- weights --------------------------------------------------------------------------
  // IEEE half precision (1 sign, 5 exponent, 10 fraction bits) to a JavaScript number.
  function halfToFloat(h) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) return sign * fraction * 2 ** -24;  // subnormal
    if (exponent === 31) return fraction ? NaN : sign * Infinity;
    return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }

  function decodeBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  // A tensor of the export ({shape, dtype, data}) as a Float32Array (or Uint8Array).
  function readTensor(tensor) {
    const bytes = decodeBase64(tensor.data);
    if (tensor.dtype === "uint8") return bytes;
    const count = tensor.shape.reduce((a, b) => a * b, 1);
    const view = new DataView(bytes.buffer);
    const out = new Float32Array(count);
    if (tensor.dtype === "float16") {
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
    } else if (tensor.dtype === "float32") {
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
    } else {
      throw new Error("unknown dtype " + tensor.dtype);
    }
    return out;
  }

  // --- layers (batch of one; outputs are written into preallocated arrays) --------------
  function linear(w, b, x, out, relu) {  // w: (out, in)
    const n = x.length;
    for (let o = 0; o < out.length; o++) {
      let sum = b[o];
      const row = o * n;
      for (let i = 0; i < n; i++) sum += w[row + i] * x[i];
      out[o] = relu && sum < 0 ? 0 : sum;
    }
  }

  // Convolution, kernel 4, stride 2, padding 1: (cin, s, s) -> (cout, s/2, s/2).
  // w: (cout, cin, 4, 4).
  function conv(w, b, x, cin, side, out, cout, relu) {
    const half = side / 2;
    for (let co = 0; co < cout; co++) {
      for (let oy = 0; oy < half; oy++) {
        for (let ox = 0; ox < half; ox++) {
          let sum = b[co];
          for (let ci = 0; ci < cin; ci++) {
            const wBase = (co * cin + ci) * 16;
            const xBase = ci * side * side;
            for (let ky = 0; ky < 4; ky++) {
              const iy = 2 * oy - 1 + ky;
              if (iy < 0 || iy >= side) continue;
              for (let kx = 0; kx < 4; kx++) {
                const ix = 2 * ox - 1 + kx;
                if (ix < 0 || ix >= side) continue;
                sum += w[wBase + ky * 4 + kx] * x[xBase + iy * side + ix];
              }
            }
          }
          out[(co * half + oy) * half + ox] = relu && sum < 0 ? 0 : sum;
        }
      }
    }
  }

  // Transposed convolution, kernel 4, stride 2, padding 1: (cin, s, s) -> (cout, 2s, 2s).
  // w: (cin, cout, 4, 4). Each input scatters into a 4x4 patch of the output; inputs that
  // the ReLU before it made zero are skipped (in a trained decoder, many are).
  function convTranspose(w, b, x, cin, side, out, cout, relu) {
    const big = 2 * side;
    for (let co = 0; co < cout; co++) out.fill(b[co], co * big * big, (co + 1) * big * big);
    for (let ci = 0; ci < cin; ci++) {
      for (let iy = 0; iy < side; iy++) {
        for (let ix = 0; ix < side; ix++) {
          const v = x[(ci * side + iy) * side + ix];
          if (v === 0) continue;
          for (let co = 0; co < cout; co++) {
            const wBase = (ci * cout + co) * 16;
            const oBase = co * big * big;
            for (let ky = 0; ky < 4; ky++) {
              const oy = 2 * iy - 1 + ky;
              if (oy < 0 || oy >= big) continue;
              for (let kx = 0; kx < 4; kx++) {
                const ox = 2 * ix - 1 + kx;
                if (ox < 0 || ox >= big) continue;
                out[oBase + oy * big + ox] += w[wBase + ky * 4 + kx] * v;
              }
            }
          }
        }
      }
    }
    if (relu) for (let i = 0; i < out.length; i++) if (out[i] < 0) out[i] = 0;
  }

  // --- the two halves of the VAE ---------------------------------------------------------
  function readModel(model) {
    const t = {};
    for (const name in model.tensors) t[name] = readTensor(model.tensors[name]);
    return t;
  }

  // decode(z) -> Float32Array(784): the probability that each pixel is on.
  function makeDecoder(model) {
    const t = readModel(model);
    const [c1, c2] = model.channels;
    const hidden = new Float32Array(c2 * 49);
    const middle = new Float32Array(c1 * 196);
    const logits = new Float32Array(784);
    return function decode(z) {
      linear(t["decoder.0.weight"], t["decoder.0.bias"], z, hidden, true);
      convTranspose(t["decoder.3.weight"], t["decoder.3.bias"], hidden, c2, 7, middle, c1, true);
      convTranspose(t["decoder.5.weight"], t["decoder.5.bias"], middle, c1, 14, logits, 1, false);
      const p = new Float32Array(784);
      for (let i = 0; i < 784; i++) p[i] = 1 / (1 + Math.exp(-logits[i]));
      return p;
    };
  }

  // encode(x) -> {mu, logvar} of q(z | x) for a 28 x 28 image x with values in [0, 1].
  function makeEncoder(model) {
    const t = readModel(model);
    const [c1, c2] = model.channels;
    const d = model.z_dim;
    const first = new Float32Array(c1 * 196);
    const second = new Float32Array(c2 * 49);
    const out = new Float32Array(2 * d);
    return function encode(x) {
      conv(t["encoder.0.weight"], t["encoder.0.bias"], x, 1, 28, first, c1, true);
      conv(t["encoder.2.weight"], t["encoder.2.bias"], first, c1, 14, second, c2, true);
      linear(t["encoder.5.weight"], t["encoder.5.bias"], second, out, false);
      const bound = model.logvar_bound;
      const mu = Array.from(out.slice(0, d));
      const logvar = Array.from(out.slice(d), raw => bound * Math.tanh(raw / bound));
      return { mu, logvar };
    };
  }

  // --- a drawing as the encoder expects it ------------------------------------------------
  // Ink (values in [0, 1]) on a square pad of `side` pixels, prepared as MNIST prepared its
  // digits: the ink's bounding box scaled, larger or smaller, so that its longer side is 20
  // pixels (each pixel the mean of the ink it covers, sampled on an n x n grid), then placed
  // so that its centre of mass falls on the centre of the 28 x 28 image.
  function mnistStyle(ink, side) {
    let x0 = side, y0 = side, x1 = -1, y1 = -1;
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        if (ink[y * side + x] > 0.05) {
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          if (y > y1) y1 = y;
        }
      }
    }
    const image = new Float32Array(784);
    if (x1 < 0) return image;  // nothing drawn
    const scale = 20 / (Math.max(x1 - x0, y1 - y0) + 1);
    const width = Math.max(1, Math.round((x1 - x0 + 1) * scale));
    const height = Math.max(1, Math.round((y1 - y0 + 1) * scale));
    const n = Math.max(4, Math.ceil(1 / scale));  // samples per pixel and axis
    const box = new Float32Array(784);  // the scaled digit, top left at (0, 0)
    let mass = 0, mx = 0, my = 0;
    for (let ty = 0; ty < height; ty++) {
      for (let tx = 0; tx < width; tx++) {
        let sum = 0;
        for (let sy = 0; sy < n; sy++) {
          const py = Math.min(y1, Math.floor(y0 + (ty + (sy + 0.5) / n) / scale));
          for (let sx = 0; sx < n; sx++) {
            const px = Math.min(x1, Math.floor(x0 + (tx + (sx + 0.5) / n) / scale));
            sum += ink[py * side + px];
          }
        }
        const v = Math.min(1, sum / (n * n));
        box[ty * 28 + tx] = v;
        mass += v;
        mx += v * tx;
        my += v * ty;
      }
    }
    const dx = Math.round(13.5 - mx / mass), dy = Math.round(13.5 - my / mass);
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const sx = x - dx, sy = y - dy;
        if (sx >= 0 && sx < 28 && sy >= 0 && sy < 28) image[y * 28 + x] = box[sy * 28 + sx];
      }
    }
    return image;
  }

  // Grey levels in [0, 1] to binary pixels, as the book binarised its test digits: each pixel
  // on with probability equal to its grey level, drawn once from a generator seeded with
  // `seed` (mulberry32), so that the same drawing always gives the same image. The encoder
  // was trained on binary digits; anti-aliased grey strokes are not what it has seen.
  function binarize(image, seed) {
    let state = seed >>> 0;
    const binary = new Float32Array(image.length);
    for (let i = 0; i < image.length; i++) {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      const uniform = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
      binary[i] = uniform < image[i] ? 1 : 0;
    }
    return binary;
  }

  // What the encoder sees of a drawing: prepared as MNIST's digits, binarised as the test set.
  function prepareDrawing(ink, side) {
    return binarize(mnistStyle(ink, side), 0);
  }

  // --- drawing ---------------------------------------------------------------------------
  const DIGIT_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];  // tab10

  // Pixel probabilities onto a 28 x 28 canvas, dark ink on white (as the book's figures).
  function drawDigit(canvas, p) {
    const context = canvas.getContext("2d");
    const image = context.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const grey = Math.round(255 * (1 - p[i]));
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = grey;
      image.data[4 * i + 3] = 255;
    }
    context.putImageData(image, 0, 0);
  }

  // --- the explorer ------------------------------------------------------------------------
  function mount(container) {
    const data = JSON.parse(container.querySelector("script.vx-data").textContent);
    const decode = makeDecoder(data.model), encode = makeEncoder(data.model);
    const $ = name => container.querySelector(".vx-" + name);
    const map = $("map"), digit = $("digit"), pad = $("pad"), seen = $("seen");
    const recon = $("recon"), sliders = [$("z1"), $("z2")], label = $("where");
    const extent = data.map.extent, size = map.width;
    const toPixel = z => [(z[0] / extent + 1) * size / 2, (1 - z[1] / extent) * size / 2];
    const toLatent = (px, py) => [extent * (2 * px / size - 1), extent * (1 - 2 * py / size)];

    // The encoded test set, drawn once into an off-screen canvas: the map's background.
    const background = document.createElement("canvas");
    background.width = background.height = size;
    (function drawBackground() {
      const c = background.getContext("2d");
      c.fillStyle = "#fff";
      c.fillRect(0, 0, size, size);
      c.strokeStyle = "#ddd";
      for (let v = -Math.floor(extent); v <= extent; v++) {  // grid lines at integers
        const [gx, gy] = toPixel([v, v]);
        c.beginPath(); c.moveTo(gx, 0); c.lineTo(gx, size); c.stroke();
        c.beginPath(); c.moveTo(0, gy); c.lineTo(size, gy); c.stroke();
      }
      const mu = readTensor(data.map.mu), labels = readTensor(data.map.labels);
      c.globalAlpha = 0.6;
      for (let i = 0; i < labels.length; i++) {
        const [x, y] = toPixel([mu[2 * i], mu[2 * i + 1]]);
        c.fillStyle = DIGIT_COLOURS[labels[i]];
        c.fillRect(x - 1.5, y - 1.5, 3, 3);
      }
    })();

    $("legend").innerHTML = DIGIT_COLOURS.map(
      (colour, d) => `<span style="color:${colour}">${d}</span>`).join(", ");
    const state = { z: [0, 0], digit: null, drawn: null, encoded: null };

    function drawMap() {
      const c = map.getContext("2d");
      c.drawImage(background, 0, 0);
      if (state.encoded) {  // the drawn digit: its mean and the 2-sigma ellipse of q(z | x)
        const [ex, ey] = toPixel(state.encoded.mu);
        const rx = 2 * Math.exp(state.encoded.logvar[0] / 2) * size / (2 * extent);
        const ry = 2 * Math.exp(state.encoded.logvar[1] / 2) * size / (2 * extent);
        c.lineWidth = 2;
        c.strokeStyle = "#000";
        c.beginPath(); c.ellipse(ex, ey, rx, ry, 0, 0, 2 * Math.PI); c.stroke();
        c.beginPath(); c.moveTo(ex - 5, ey); c.lineTo(ex + 5, ey);
        c.moveTo(ex, ey - 5); c.lineTo(ex, ey + 5); c.stroke();
      }
      const [x, y] = toPixel(state.z);
      c.lineWidth = 2;
      c.fillStyle = "#fff";
      c.strokeStyle = "#000";
      c.beginPath(); c.arc(x, y, 6, 0, 2 * Math.PI); c.fill(); c.stroke();
    }

    // One update, as on every drag: decode z, draw the digit, redraw the map's marker.
    function show(z) {
      state.z = [Math.max(-extent, Math.min(extent, z[0])),
                 Math.max(-extent, Math.min(extent, z[1]))];
      state.digit = decode(state.z);
      drawDigit(digit, state.digit);
      drawMap();
      sliders[0].value = state.z[0];
      sliders[1].value = state.z[1];
      label.textContent = `z = (${state.z[0].toFixed(2)}, ${state.z[1].toFixed(2)})`;
    }

    // Dragging on the map (mouse, pen or finger).
    function pointerLatent(event) {
      const box = map.getBoundingClientRect();
      return toLatent((event.clientX - box.left) * size / box.width,
                      (event.clientY - box.top) * size / box.height);
    }
    map.addEventListener("pointerdown", event => {
      map.setPointerCapture(event.pointerId);
      show(pointerLatent(event));
    });
    map.addEventListener("pointermove", event => {
      if (map.hasPointerCapture(event.pointerId)) show(pointerLatent(event));
    });
    for (const slider of sliders) {
      slider.min = -extent;
      slider.max = extent;
      slider.addEventListener("input", () => show([+sliders[0].value, +sliders[1].value]));
    }

    // Drawing a digit: strokes on the pad; on release it is encoded and reconstructed.
    const ink = pad.getContext("2d");
    ink.lineWidth = pad.width / 12;
    ink.lineCap = ink.lineJoin = "round";
    let last = null;
    function padPoint(event) {
      const box = pad.getBoundingClientRect();
      return [(event.clientX - box.left) * pad.width / box.width,
              (event.clientY - box.top) * pad.height / box.height];
    }
    pad.addEventListener("pointerdown", event => {
      pad.setPointerCapture(event.pointerId);
      last = padPoint(event);
      ink.beginPath(); ink.arc(last[0], last[1], ink.lineWidth / 2, 0, 2 * Math.PI); ink.fill();
    });
    pad.addEventListener("pointermove", event => {
      if (!last) return;
      const next = padPoint(event);
      ink.beginPath(); ink.moveTo(...last); ink.lineTo(...next); ink.stroke();
      last = next;
    });
    const finish = () => { if (last) { last = null; encodeDrawing(); } };
    pad.addEventListener("pointerup", finish);
    pad.addEventListener("pointercancel", finish);
    $("clear").addEventListener("click", () => {
      ink.clearRect(0, 0, pad.width, pad.height);
      state.drawn = state.encoded = null;
      for (const canvas of [seen, recon]) drawDigit(canvas, new Float32Array(784));
      $("code").textContent = "";
      drawMap();
    });

    function encodeDrawing() {
      const pixels = ink.getImageData(0, 0, pad.width, pad.height).data;
      const alpha = new Float32Array(pad.width * pad.height);
      for (let i = 0; i < alpha.length; i++) alpha[i] = pixels[4 * i + 3] / 255;
      state.drawn = prepareDrawing(alpha, pad.width);
      state.encoded = encode(state.drawn);
      drawDigit(seen, state.drawn);
      drawDigit(recon, decode(state.encoded.mu));
      const [m1, m2] = state.encoded.mu.map(v => v.toFixed(2));
      const [s1, s2] = state.encoded.logvar.map(v => Math.exp(v / 2).toFixed(2));
      $("code").textContent = `mean (${m1}, ${m2}), sigma (${s1}, ${s2})`;
      drawMap();
    }

    // Times n updates at random points: what `python -m book.bench explorer` reports.
    function benchmark(n) {
      const decodeMs = [], updateMs = [];
      for (let i = 0; i < n; i++) {
        const z = [extent * (2 * Math.random() - 1), extent * (2 * Math.random() - 1)];
        let start = performance.now();
        decode(z);
        decodeMs.push(performance.now() - start);
        start = performance.now();
        show(z);
        updateMs.push(performance.now() - start);
      }
      return { decodeMs, updateMs };
    }

    show([0, 0]);
    for (const canvas of [seen, recon]) drawDigit(canvas, new Float32Array(784));
    const api = { show, state, decode, encode, encodeDrawing, benchmark };
    container.vaeExplorer = api;  // for the browser test and the benchmark
    return api;
  }

  const VAEExplorer = { halfToFloat, readTensor, makeDecoder, makeEncoder, mnistStyle, binarize,
                        prepareDrawing, mount };
  root.VAEExplorer = VAEExplorer;
  if (typeof module === "object" && module.exports) module.exports = VAEExplorer;
})(typeof globalThis !== "undefined" ? globalThis : this);
