// The latent-space explorer of the book's 2-D convolutional VAEs, in plain JavaScript.
//
// No dependency, no build step, no request: book/explorer.py inlines this file, the models'
// weights (float16, base64) and their encoded test sets into one HTML snippet, which runs as
// it is on the website, in Jupyter and in Colab. The same file runs in Node for the parity test
// (module.exports below).
//
// The networks are book/conv_vae.py's ConvVAE, one example at a time, tensors in PyTorch's
// (channels, height, width) order:
//   decoder  z (2) -> linear -> ReLU -> (C2, 7, 7) -> transposed conv 4x4 /2 -> ReLU
//            -> (C1, 14, 14) -> transposed conv 4x4 /2 -> (1, 28, 28) logits -> sigmoid
//   encoder  x (1, 28, 28) -> conv 4x4 /2 -> ReLU -> conv 4x4 /2 -> ReLU -> linear
//            -> [mu, raw], log sigma^2 = 8 tanh(raw / 8)
//   (an autoencoder's encoder ends in the code z alone: a point, sigma = 0)
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

  // --- the two halves of the VAE ---------------------------------------------------------
  const weightsOf = new WeakMap();  // an export's tensors, read once
  function readModel(model) {
    if (!weightsOf.has(model)) {
      const t = {};
      for (const name in model.tensors) t[name] = readTensor(model.tensors[name]);
      weightsOf.set(model, t);
    }
    return weightsOf.get(model);
  }

  // logits(z) -> Float32Array(784): the decoder's Bernoulli logits (a buffer it reuses).
  // Two transposed convolutions, kernel 4, stride 2, padding 1 (PyTorch's weights: (cin,
  // cout, 4, 4)), laid out for speed, as a decode runs thousands of times for one exact
  // posterior: the middle activations channel-last, (14, 14, C1), and the weights reordered
  // so that every innermost loop runs over channels, contiguous in memory.
  function makeLogits(model) {
    const t = readModel(model);
    const [c1, c2] = model.channels;
    const w1 = t["decoder.3.weight"], b1 = t["decoder.3.bias"];  // (c2, c1, 4, 4)
    const w2 = t["decoder.5.weight"], b2 = t["decoder.5.bias"];  // (c1, 1, 4, 4)
    const scatter = new Float32Array(c2 * 16 * c1);  // [ci][ky][kx][co]
    for (let ci = 0; ci < c2; ci++)
      for (let co = 0; co < c1; co++)
        for (let k = 0; k < 16; k++) {
          scatter[(ci * 16 + k) * c1 + co] = w1[(ci * c1 + co) * 16 + k];
        }
    const gather = new Float32Array(16 * c1);  // [ky][kx][ci]
    for (let ci = 0; ci < c1; ci++) {
      for (let k = 0; k < 16; k++) gather[k * c1 + ci] = w2[ci * 16 + k];
    }
    const hidden = new Float32Array(c2 * 49);
    const middle = new Float32Array(196 * c1);  // (14, 14, c1)
    const logits = new Float32Array(784);
    return function decodeLogits(z) {
      linear(t["decoder.0.weight"], t["decoder.0.bias"], z, hidden, true);
      // transposed conv 4x4 /2, (c2, 7, 7) -> (14, 14, c1): each input scatters a 4x4 patch;
      // inputs that the ReLU set to zero are skipped
      for (let p = 0; p < 196; p++) middle.set(b1, p * c1);
      for (let ci = 0; ci < c2; ci++) {
        for (let iy = 0; iy < 7; iy++) {
          for (let ix = 0; ix < 7; ix++) {
            const v = hidden[(ci * 7 + iy) * 7 + ix];
            if (v === 0) continue;
            for (let ky = 0; ky < 4; ky++) {
              const oy = 2 * iy - 1 + ky;
              if (oy < 0 || oy >= 14) continue;
              for (let kx = 0; kx < 4; kx++) {
                const ox = 2 * ix - 1 + kx;
                if (ox < 0 || ox >= 14) continue;
                const wBase = (ci * 16 + ky * 4 + kx) * c1, oBase = (oy * 14 + ox) * c1;
                for (let co = 0; co < c1; co++) middle[oBase + co] += scatter[wBase + co] * v;
              }
            }
          }
        }
      }
      for (let i = 0; i < middle.length; i++) if (middle[i] < 0) middle[i] = 0;
      // transposed conv 4x4 /2, (14, 14, c1) -> (28, 28): each output gathers the (at most)
      // 2 x 2 inputs whose patches cover it, ky = oy + 1 - 2 iy
      for (let oy = 0; oy < 28; oy++) {
        for (let ox = 0; ox < 28; ox++) {
          let sum = b2[0];
          for (let iy = (oy + 1) >> 1, ky = oy + 1 - 2 * iy; ky <= 3 && iy >= 0; iy--, ky += 2) {
            if (iy >= 14) continue;
            for (let ix = (ox + 1) >> 1, kx = ox + 1 - 2 * ix; kx <= 3 && ix >= 0; ix--, kx += 2) {
              if (ix >= 14) continue;
              const iBase = (iy * 14 + ix) * c1, wBase = (ky * 4 + kx) * c1;
              for (let ci = 0; ci < c1; ci++) sum += middle[iBase + ci] * gather[wBase + ci];
            }
          }
          logits[oy * 28 + ox] = sum;
        }
      }
      return logits;
    };
  }

  // decode(z) -> Float32Array(784): the probability that each pixel is on.
  function makeDecoder(model) {
    const decodeLogits = makeLogits(model);
    return function decode(z) {
      const logits = decodeLogits(z);
      const p = new Float32Array(784);
      for (let i = 0; i < 784; i++) p[i] = 1 / (1 + Math.exp(-logits[i]));
      return p;
    };
  }

  // encode(x) -> {mu, logvar} of q(z | x) for a 28 x 28 image x with values in [0, 1]; for
  // an autoencoder, its code as mu and a log-variance of -Infinity (a point).
  function makeEncoder(model) {
    const t = readModel(model);
    const [c1, c2] = model.channels;
    const d = model.z_dim, point = model.kind === "autoencoder";
    const first = new Float32Array(c1 * 196);
    const second = new Float32Array(c2 * 49);
    const out = new Float32Array(point ? d : 2 * d);
    return function encode(x) {
      conv(t["encoder.0.weight"], t["encoder.0.bias"], x, 1, 28, first, c1, true);
      conv(t["encoder.2.weight"], t["encoder.2.bias"], first, c1, 14, second, c2, true);
      linear(t["encoder.5.weight"], t["encoder.5.bias"], second, out, false);
      const bound = model.logvar_bound;
      const mu = Array.from(out.slice(0, d));
      if (point) return { mu, logvar: mu.map(() => -Infinity) };
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

  // --- the exact posterior of one digit, by quadrature ----------------------------------------
  // book/quadrature.py in JavaScript, for one binary digit x: log p(x) = log of the integral of
  // p(x | z) p(z) over the plane, by the midpoint rule on a grid of spacing h, which is exact
  // to far below 0.01 nats once the grid covers the posterior and is finer than its width. A
  // coarse grid over the prior's square finds where the posterior is; finer grids around it
  // (and around the encoder's q) follow until the two checks of book/quadrature.py pass: the
  // mass in the grid's outermost ring of cells, and the change of log p(x) from spacing 2h to h.
  const LOG_2PI = Math.log(2 * Math.PI);
  const TOLERANCES = { borderMass: 1e-6, resolutionChange: 0.01 };

  function softplus(v) { return Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v))); }

  // logJoint(z) = log p(x | z) + log p(z) for the binary digit x: sum_i x_i l_i - softplus(l_i).
  function makeLogJoint(decodeLogits, x) {
    return function logJoint(z) {
      const l = decodeLogits(z);
      let sum = -LOG_2PI - 0.5 * (z[0] * z[0] + z[1] * z[1]);
      for (let i = 0; i < 784; i++) sum += x[i] * l[i] - softplus(l[i]);
      return sum;
    };
  }

  // Cell midpoints low + (i + 1/2) h on each axis (a spacing per axis), n[0] x n[1] of them
  // (z2 fastest, as book/quadrature.py's grids).
  function makeGrid(low, high, h) {
    const n = [0, 1].map(a => Math.max(1, Math.ceil((high[a] - low[a]) / h[a])));
    const start = [0, 1].map(a => (low[a] + high[a]) / 2 - n[a] * h[a] / 2);
    return { low: start, h, n, cell: h[0] * h[1], values: new Float64Array(n[0] * n[1]) };
  }

  function gridPoint(grid, g) {
    const i1 = Math.floor(g / grid.n[1]), i2 = g % grid.n[1];
    return [grid.low[0] + (i1 + 0.5) * grid.h[0], grid.low[1] + (i2 + 0.5) * grid.h[1]];
  }

  function logSumExp(values, keep) {
    let max = -Infinity;
    for (let g = 0; g < values.length; g++) if (keep(g) && values[g] > max) max = values[g];
    if (max === -Infinity) return -Infinity;
    let sum = 0;
    for (let g = 0; g < values.length; g++) if (keep(g)) sum += Math.exp(values[g] - max);
    return max + Math.log(sum);
  }

  // Fills grid.values with logJoint at every point; a generator that yields every `chunk`
  // points, so that a caller can spread the work over many short slices of time.
  function* fill(grid, logJoint, chunk) {
    for (let g = 0; g < grid.values.length; g++) {
      grid.values[g] = logJoint(gridPoint(grid, g));
      if ((g + 1) % chunk === 0) yield g + 1;
    }
  }

  // What a filled grid says: log p(x), the posterior's mean and covariance, and the checks.
  function summarise(grid) {
    const { n, values } = grid;
    const logPx = logSumExp(values, () => true) + Math.log(grid.cell);
    // The same rule at twice the spacing: every other point along each axis. There are four
    // such sub-grids (odd or even rows, odd or even columns); like book/quadrature.py, the
    // check takes the worst of the four.
    let resolutionChange = NaN;
    if (n[0] > 1 && n[1] > 1) {
      resolutionChange = 0;
      for (let parity = 0; parity < 4; parity++) {
        const on = g => Math.floor(g / n[1]) % 2 === parity >> 1 && (g % n[1]) % 2 === (parity & 1);
        const coarser = logSumExp(values, on) + Math.log(4 * grid.cell);
        resolutionChange = Math.max(resolutionChange, Math.abs(coarser - logPx));
      }
    }
    const mean = [0, 0], second = [0, 0, 0];
    let border = 0;
    for (let g = 0; g < values.length; g++) {
      const w = Math.exp(values[g] - logPx) * grid.cell;
      const z = gridPoint(grid, g), i1 = Math.floor(g / n[1]), i2 = g % n[1];
      mean[0] += w * z[0]; mean[1] += w * z[1];
      second[0] += w * z[0] * z[0]; second[1] += w * z[0] * z[1]; second[2] += w * z[1] * z[1];
      if (i1 === 0 || i2 === 0 || i1 === n[0] - 1 || i2 === n[1] - 1) border += w;
    }
    // E[z^2] - E[z]^2 can come out slightly negative when the posterior lies inside one cell:
    // clamped at 0, as book/quadrature.py clamps its variances
    const cov = [Math.max(second[0] - mean[0] * mean[0], 0), second[1] - mean[0] * mean[1],
                 Math.max(second[2] - mean[1] * mean[1], 0)];
    return { logPx, mean, cov, borderMass: border, resolutionChange };
  }

  // The exact posterior of the binary digit x (784 zeros and ones) given the encoder's q
  // ({mu, logvar}); a generator (see fill) whose value is the last grid, its summary, and
  // whether the checks passed. A coarse grid over the prior's square +-`reach` finds the
  // posterior's mass wherever it is; the first fine grid spans q +- `widths` sigma and any
  // coarse cell within 10 nats of the coarse grid's largest value, with a spacing of
  // `resolution` sigma of q on each axis. For a Gaussian posterior as wide as q the midpoint
  // rule's relative error is 2 exp(-2 pi^2 sigma^2 / h^2) per axis (book/quadrature.py):
  // ~1e-17 at h = 0.7 sigma, and ~2e-4 at the check's 2h = 1.4 sigma. A decoder with ReLUs
  // makes log p(x | z) less smooth than a Gaussian, and the check then asks for finer grids.
  // A grid whose checks fail is followed by one that spans its posterior's mean +- `widths`
  // standard deviations (and q's), as fine as the posterior's own standard deviations, or
  // twice as fine where 2h and h disagreed.
  function* exactPosterior(decodeLogits, x, q, options) {
    const { reach = 4.5, coarse = 16, chunk = 4, widths = 6, resolution = 0.7,
            refinements = 4 } = options || {};
    const logJoint = makeLogJoint(decodeLogits, x);
    const sigma = q.logvar.map(v => Math.exp(v / 2));
    let grid = makeGrid([-reach, -reach], [reach, reach], [2 * reach / coarse, 2 * reach / coarse]);
    yield* fill(grid, logJoint, chunk);
    const low = q.mu.map((m, a) => m - widths * sigma[a]);
    const high = q.mu.map((m, a) => m + widths * sigma[a]);
    const best = grid.values.reduce((m, v) => Math.max(m, v), -Infinity);
    for (let g = 0; g < grid.values.length; g++) {
      if (grid.values[g] < best - 10) continue;
      const z = gridPoint(grid, g);
      for (let a = 0; a < 2; a++) {
        low[a] = Math.min(low[a], z[a] - grid.h[a] / 2);
        high[a] = Math.max(high[a], z[a] + grid.h[a] / 2);
      }
    }
    let h = sigma.map(s => resolution * s);
    let summary = null;
    for (let round = 0; round <= refinements; round++) {
      grid = makeGrid(low, high, h);
      yield* fill(grid, logJoint, chunk);
      summary = summarise(grid);
      const wide = summary.borderMass <= TOLERANCES.borderMass;
      const fine = summary.resolutionChange <= TOLERANCES.resolutionChange;
      if (wide && fine) return { grid, ...summary, passed: true };
      const sd = [Math.sqrt(summary.cov[0]), Math.sqrt(summary.cov[2])];
      for (let a = 0; a < 2; a++) {
        const span = Math.max(widths * sd[a], widths * sigma[a]);
        low[a] = Math.min(summary.mean[a] - span, q.mu[a] - widths * sigma[a]);
        high[a] = Math.max(summary.mean[a] + span, q.mu[a] + widths * sigma[a]);
        if (!wide) {  // the mass reached the border: reach at least half as far again
          const width = high[a] - low[a];
          low[a] = Math.min(low[a], grid.low[a] - width / 4);
          high[a] = Math.max(high[a], grid.low[a] + grid.n[a] * grid.h[a] + width / 4);
        }
        const own = resolution * (sd[a] || h[a]);
        h[a] = fine ? Math.max(Math.min(h[a], own), h[a] / 4) : h[a] / 2;
      }
    }
    return { grid, ...summary, passed: false };
  }

  // Runs a generator to its end at once (Node, tests) and returns its value.
  function finish(generator) {
    for (;;) {
      const step = generator.next();
      if (step.done) return step.value;
    }
  }

  // Runs a generator in slices of about `sliceMs` milliseconds (each step is one chunk of
  // decodes, a few milliseconds), so that the page never freezes; calls done(value, stats)
  // at the end, stats.longestSliceMs the longest time the page was held. Returns a function
  // that cancels it.
  function inSlices(generator, done, sliceMs) {
    let cancelled = false;
    const stats = { longestSliceMs: 0, slices: 0 };
    (function slice() {
      if (cancelled) return;
      const start = performance.now(), end = start + (sliceMs || 20);
      let step = generator.next();
      while (!step.done && performance.now() < end) step = generator.next();
      stats.longestSliceMs = Math.max(stats.longestSliceMs, performance.now() - start);
      stats.slices += 1;
      if (step.done) done(step.value, stats);
      else setTimeout(slice, 0);
    })();
    return () => { cancelled = true; };
  }

  // The ELBO of a diagonal Gaussian q = {mu, logvar} for the digit on the filled grid, by the
  // rule book/quadrature.py uses: with weights w_g = q(z_g) h^2,
  //   ELBO = sum_g w_g [log p(x, z_g) - log q(z_g)] / sum_g w_g,
  // with its two terms, E_q[log p(x | z)] and KL(q(z|x) || p(z)) (closed form), and q's mass
  // on the grid, sum_g w_g: 1 when the grid covers and resolves q, and the numbers are
  // trustworthy only then (the panel says so when it is off by more than 1e-3). Dividing by
  // the mass, as book/quadrature.py does, keeps the ELBO from drifting with it (a mass of
  // 1 - 1e-3 would otherwise move an ELBO of -100 nats by 0.1).
  function gaussianElbo(posterior, q) {
    const { grid } = posterior, h2 = grid.cell;
    const s2 = q.logvar.map(v => Math.exp(v));
    let mass = 0, expectedLogJoint = 0, entropyTerm = 0;
    for (let g = 0; g < grid.values.length; g++) {
      const z = gridPoint(grid, g);
      const logQ = -LOG_2PI - 0.5 * (q.logvar[0] + q.logvar[1])
        - 0.5 * ((z[0] - q.mu[0]) ** 2 / s2[0] + (z[1] - q.mu[1]) ** 2 / s2[1]);
      const w = Math.exp(logQ) * h2;
      mass += w;
      expectedLogJoint += w * grid.values[g];
      entropyTerm += w * logQ;
    }
    const kl = 0.5 * (s2[0] + s2[1] + q.mu[0] ** 2 + q.mu[1] ** 2 - 2 - q.logvar[0] - q.logvar[1]);
    const elbo = (expectedLogJoint - entropyTerm) / mass;
    return { elbo, recon: elbo + kl, kl, gap: posterior.logPx - elbo, qMass: mass };
  }

  // One pass over the grid for q = N(mu, diag exp(l)), theta = (mu1, mu2, l1, l2): the grid
  // ELBO E = A / M of gaussianElbo (A = sum_g w_g f_g, f_g = log p(x, z_g) - log q(z_g),
  // M = sum_g w_g), q's mass M, and with `derivatives` also the gradient and the Hessian of E.
  // With s = d log q / d theta and T = d^2 log q / d theta^2 at a point (so that
  // dw = w s, d^2 w = w (s s' + T), df = -s):
  //   dA = sum w (f - 1) s,  d^2 A = sum w [(f - 1)(s s' + T) - s s'],
  //   dM = sum w s,          d^2 M = sum w (s s' + T),
  //   dE = (dA - E dM) / M,  d^2 E = (d^2 A - E d^2 M - dE dM' - dM dE') / M.
  // For a diagonal Gaussian, d = z - mu: d log q / d mu_a = d_a / s2_a, d log q / d l_a =
  // (d_a^2 / s2_a - 1) / 2; d^2 / d mu_a^2 = -1 / s2_a, d^2 / d mu_a d l_a = -d_a / s2_a,
  // d^2 / d l_a^2 = -d_a^2 / (2 s2_a), and 0 across the two axes.
  function elboPass(grid, theta, derivatives) {
    const [m1, m2, l1, l2] = theta, s2 = [Math.exp(l1), Math.exp(l2)], h2 = grid.cell;
    const norm = -LOG_2PI - 0.5 * (l1 + l2);
    let M = 0, A = 0;
    const dA = [0, 0, 0, 0], dM = [0, 0, 0, 0];
    const hA = new Float64Array(16), hM = new Float64Array(16);
    const s = [0, 0, 0, 0], T = new Float64Array(16);
    for (let g = 0; g < grid.values.length; g++) {
      const i1 = Math.floor(g / grid.n[1]), i2 = g % grid.n[1];
      const d1 = grid.low[0] + (i1 + 0.5) * grid.h[0] - m1;
      const d2 = grid.low[1] + (i2 + 0.5) * grid.h[1] - m2;
      const logQ = norm - 0.5 * (d1 * d1 / s2[0] + d2 * d2 / s2[1]);
      const w = Math.exp(logQ) * h2;
      if (w === 0) continue;
      const f = grid.values[g] - logQ;
      M += w;
      A += w * f;
      if (!derivatives) continue;
      s[0] = d1 / s2[0]; s[1] = d2 / s2[1];
      s[2] = (d1 * d1 / s2[0] - 1) / 2; s[3] = (d2 * d2 / s2[1] - 1) / 2;
      T[0] = -1 / s2[0]; T[5] = -1 / s2[1];
      T[2] = T[8] = -d1 / s2[0]; T[7] = T[13] = -d2 / s2[1];
      T[10] = -d1 * d1 / (2 * s2[0]); T[15] = -d2 * d2 / (2 * s2[1]);
      for (let j = 0; j < 4; j++) {
        dA[j] += w * (f - 1) * s[j];
        dM[j] += w * s[j];
        for (let k = j; k < 4; k++) {  // the upper triangle; symmetric
          const outer = s[j] * s[k] + T[4 * j + k];
          hA[4 * j + k] += w * ((f - 1) * outer - s[j] * s[k]);
          hM[4 * j + k] += w * outer;
        }
      }
    }
    for (let j = 0; j < 4; j++) {
      for (let k = 0; k < j; k++) { hA[4 * j + k] = hA[4 * k + j]; hM[4 * j + k] = hM[4 * k + j]; }
    }
    const E = A / M;
    if (!derivatives) return { elbo: E, mass: M };
    const gradient = [0, 1, 2, 3].map(j => (dA[j] - E * dM[j]) / M);
    const hessian = new Float64Array(16);
    for (let j = 0; j < 4; j++) {
      for (let k = 0; k < 4; k++) {
        hessian[4 * j + k] = (hA[4 * j + k] - E * hM[4 * j + k] - gradient[j] * dM[k]
                              - dM[j] * gradient[k]) / M;
      }
    }
    return { elbo: E, mass: M, gradient, hessian };
  }

  // Solves (a + lambda I) x = b for the symmetric n x n matrix a (row-major) by Cholesky;
  // null when a + lambda I is not positive definite.
  function solveShifted(a, n, lambda, b) {
    const L = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        let sum = a[i * n + j] + (i === j ? lambda : 0);
        for (let k = 0; k < j; k++) sum -= L[i * n + k] * L[j * n + k];
        if (i === j) {
          if (!(sum > 0)) return null;
          L[i * n + i] = Math.sqrt(sum);
        } else {
          L[i * n + j] = sum / L[j * n + j];
        }
      }
    }
    const y = new Float64Array(n), x = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let sum = b[i];
      for (let k = 0; k < i; k++) sum -= L[i * n + k] * y[k];
      y[i] = sum / L[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let sum = y[i];
      for (let k = i + 1; k < n; k++) sum -= L[k * n + i] * x[k];
      x[i] = sum / L[i * n + i];
    }
    return Array.from(x);
  }

  // What bestGaussian accepts: q's mass on the grid within 1e-6 of 1 (the grid covers and
  // resolves q, so its ELBO is the grid's to 1e-6 of its size), the stopping rule (an
  // iteration that raises the ELBO by less than `tolerance` nats), and the most iterations.
  const OPTIMISER = { massError: 1e-6, tolerance: 1e-6, iterations: 100 };

  // Newton's method on the grid ELBO from one start theta0 = (mu1, mu2, l1, l2), with
  // log sigma_a^2 kept at least 2 log h_a (q at least as wide as a cell, so that the grid
  // resolves it); a generator that yields after every pass over the grid. Each iteration
  // solves (-H + lambda I) step = gradient with the smallest lambda >= 0 that makes the
  // matrix positive definite (plain Newton near a maximum; a shorter step along the gradient
  // where the ELBO is not concave), then halves the step until the ELBO rises (and q's mass
  // stays on the grid). Its value: {theta, elbo, converged, iterations}.
  function* newtonAscent(grid, theta0, options) {
    const { massError, tolerance, iterations } = { ...OPTIMISER, ...options };
    const floor = grid.h.map(h => 2 * Math.log(h));
    const feasible = pass => Math.abs(pass.mass - 1) <= massError && Number.isFinite(pass.elbo);
    let theta = theta0.slice();
    theta[2] = Math.max(theta[2], floor[0]);
    theta[3] = Math.max(theta[3], floor[1]);
    let here = elboPass(grid, theta, true);
    yield;
    if (!feasible(here)) return { theta, elbo: -Infinity, converged: false, iterations: 0 };
    for (let it = 1; it <= iterations; it++) {
      // coordinates held at the floor, where the gradient pushes further down, stay there
      const free = [0, 1, 2, 3].filter(k => k < 2 || theta[k] > floor[k - 2] + 1e-12
                                            || here.gradient[k] > 0);
      const n = free.length;
      const negH = new Float64Array(n * n), b = free.map(k => here.gradient[k]);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) negH[i * n + j] = -here.hessian[4 * free[i] + free[j]];
      }
      let step = solveShifted(negH, n, 0, b);
      const newton = step !== null;  // -H positive definite: a plain Newton step
      const diagonal = Math.max(...Array.from({ length: n }, (_, i) => Math.abs(negH[i * n + i])));
      for (let lambda = 1e-8 * Math.max(diagonal, 1e-12); step === null; lambda *= 10) {
        step = solveShifted(negH, n, lambda, b);
      }
      const ascent = step.reduce((sum, v, i) => sum + v * b[i], 0);  // gradient . step
      if (newton && ascent / 2 < tolerance / 10) {  // Newton predicts no more gain
        return { theta, elbo: here.elbo, converged: true, iterations: it };
      }
      let accepted = null;
      for (let t = 1; t > 1e-10; t /= 2) {
        const trial = theta.slice();
        free.forEach((k, i) => { trial[k] += t * step[i]; });
        trial[2] = Math.max(trial[2], floor[0]);
        trial[3] = Math.max(trial[3], floor[1]);
        const value = elboPass(grid, trial, false);
        yield;
        if (feasible(value) && value.elbo >= here.elbo + 1e-4 * t * ascent) {
          accepted = trial;
          break;
        }
      }
      if (accepted === null) {  // no step raises the ELBO: a maximum (on the grid's scale)
        return { theta, elbo: here.elbo, converged: true, iterations: it };
      }
      const before = here.elbo;
      theta = accepted;
      here = elboPass(grid, theta, true);
      yield;
      if (here.elbo - before < tolerance) {
        return { theta, elbo: here.elbo, converged: true, iterations: it };
      }
    }
    return { theta, elbo: here.elbo, converged: false, iterations };
  }

  // The best diagonal Gaussian q for this digit that the page can find (the decoder fixed):
  // the per-digit optimization of chapter 4's amortization gap, on the grid. Newton's method
  // on the grid ELBO (newtonAscent) from two starts, the encoder's q and the Gaussian on the
  // posterior's mean with the mean-field variances 1 / Lambda_jj (Lambda the inverse of the
  // posterior's covariance: the best diagonal Gaussian when the posterior is Gaussian), each
  // until an iteration raises the ELBO by less than 1e-6 nats; keeps the better. Both can
  // stop at a local maximum (a posterior with two modes), so the gain over the encoder's
  // ELBO is a lower bound on the digit's amortization gap. A generator, like exactPosterior;
  // its value: {mu, logvar, elbo, converged, start ("encoder" or "posterior"), starts}.
  function* bestGaussian(posterior, q, options) {
    const { grid, mean, cov } = posterior;
    const det = cov[0] * cov[2] - cov[1] * cov[1];
    // 1 / Lambda_11 = det / cov_22 (and 1 / Lambda_22 = det / cov_11); the marginal
    // variances where the covariance is singular
    const meanField = det > 0 ? [det / cov[2], det / cov[0]] : [cov[0], cov[2]];
    const starts = [["encoder", [...q.mu, ...q.logvar]],
                    ["posterior", [...mean, ...meanField.map(v => Math.log(Math.max(v, 1e-300)))]]];
    const results = [];
    for (const [name, theta] of starts) {
      const result = yield* newtonAscent(grid, theta, options);
      results.push({ start: name, ...result });
    }
    const best = results.reduce((a, b) => (b.elbo > a.elbo ? b : a));
    return { mu: best.theta.slice(0, 2), logvar: best.theta.slice(2), elbo: best.elbo,
             converged: best.converged, start: best.start,
             starts: results.map(r => ({ start: r.start, elbo: r.elbo, converged: r.converged,
                                         iterations: r.iterations })) };
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
    const $ = name => container.querySelector(".vx-" + name);
    const map = $("map"), digit = $("digit"), pad = $("pad"), seen = $("seen");
    const recon = $("recon"), sliders = [$("z1"), $("z2")], label = $("where");
    const size = map.width, labels = readTensor(data.labels);
    // The model explored now (use(i) switches): its networks, its map's half-side.
    let decode, encode, decodeLogits, extent, kind, background;
    const toPixel = z => [(z[0] / extent + 1) * size / 2, (1 - z[1] / extent) * size / 2];
    const toLatent = (px, py) => [extent * (2 * px / size - 1), extent * (1 - 2 * py / size)];

    // A model's encoded test set, drawn once into an off-screen canvas: its map's background.
    function drawBackground(exhibit) {
      const background = document.createElement("canvas");
      background.width = background.height = size;
      const extent = exhibit.map.extent;
      const toPixel = z => [(z[0] / extent + 1) * size / 2, (1 - z[1] / extent) * size / 2];
      const c = background.getContext("2d");
      c.fillStyle = "#fff";
      c.fillRect(0, 0, size, size);
      c.strokeStyle = "#ddd";
      for (let v = -Math.floor(extent); v <= extent; v++) {  // grid lines at integers
        const [gx, gy] = toPixel([v, v]);
        c.beginPath(); c.moveTo(gx, 0); c.lineTo(gx, size); c.stroke();
        c.beginPath(); c.moveTo(0, gy); c.lineTo(size, gy); c.stroke();
      }
      const mu = readTensor(exhibit.map.mu);
      c.globalAlpha = 0.6;
      for (let i = 0; i < labels.length; i++) {
        const [x, y] = toPixel([mu[2 * i], mu[2 * i + 1]]);
        c.fillStyle = DIGIT_COLOURS[labels[i]];
        c.fillRect(x - 1.5, y - 1.5, 3, 3);
      }
      return background;
    }

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
      sliders.forEach((slider, k) => {
        slider.value = state.z[k];
        slider.setAttribute("aria-valuetext", `z${k + 1} = ${state.z[k].toFixed(2)}`);
      });
      label.textContent = `z = (${state.z[0].toFixed(2)}, ${state.z[1].toFixed(2)})`;
    }

    // The arrow keys as a direction, or null: how the map and q's centre move by keyboard.
    const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0],
                     ArrowUp: [0, 1], ArrowDown: [0, -1] };

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
      slider.addEventListener("input", () => show([+sliders[0].value, +sliders[1].value]));
    }
    // By keyboard: the map takes focus, and an arrow moves the point 1/30 of the map's side.
    map.addEventListener("keydown", event => {
      const step = ARROWS[event.key];
      if (!step) return;
      event.preventDefault();
      show([state.z[0] + step[0] * extent / 15, state.z[1] + step[1] * extent / 15]);
    });

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
    const finish = () => { if (last) { last = null; encodeDrawing(); study(state.drawn); } };
    pad.addEventListener("pointerup", finish);
    pad.addEventListener("pointercancel", finish);
    $("clear").addEventListener("click", () => {
      ink.clearRect(0, 0, pad.width, pad.height);
      if (exact.x && exact.x === state.drawn) forget();  // the panel showed the drawing
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
      encodeDrawn();
    }

    // The prepared drawing through the encoder of the model explored, and its reconstruction.
    function encodeDrawn() {
      state.encoded = encode(state.drawn);
      drawDigit(seen, state.drawn);
      drawDigit(recon, decode(state.encoded.mu));
      const [m1, m2] = state.encoded.mu.map(v => v.toFixed(2));
      const [s1, s2] = state.encoded.logvar.map(v => Math.exp(v / 2).toFixed(2));
      $("code").textContent = kind === "autoencoder" ? `code (${m1}, ${m2})`
                                                     : `mean (${m1}, ${m2}), sigma (${s1}, ${s2})`;
      drawMap();
    }

    // --- the exact posterior of one digit, and a q that the reader moves -----------------
    const board = $("posterior"), numbers = $("numbers"), scales = [$("s1"), $("s2")];
    const digits = [];
    if (data.digits) {  // one bit per pixel, the first pixel in the highest bit (np.packbits)
      const bytes = readTensor(data.digits), [count, width] = data.digits.shape;
      for (let n = 0; n < count; n++) {
        const x = new Float32Array(784);
        for (let i = 0; i < 784; i++) x[i] = (bytes[n * width + (i >> 3)] >> (7 - (i & 7))) & 1;
        digits.push(x);
      }
    }
    // What the panel shows of one digit. Computed once per digit (when its posterior is done):
    // the view, the shaded posterior and the encoder's ELBO; on every move of q only the
    // reader's ELBO and the ellipses.
    const exact = { x: null, q: null, mine: null, best: null, posterior: null, view: null,
                    heat: null, encoderElbo: null, bestElbo: null, cancel: null, next: 0, ms: 0,
                    stats: null, optimising: false, bestStats: null };

    // The exact posterior of the binary digit x, computed in slices; done(ms, stats) after.
    function study(x, done) {
      if (exact.cancel) exact.cancel();
      exact.cancel = null;
      exact.optimising = false;
      exact.x = x;
      exact.q = encode(x);
      exact.mine = { mu: exact.q.mu.slice(), logvar: exact.q.logvar.slice() };
      exact.best = exact.bestElbo = exact.bestStats = null;
      exact.posterior = exact.view = exact.heat = null;
      for (const s of scales) s.value = 0;
      drawDigit($("chosen"), x);
      drawPosterior();  // blank until this digit's posterior is done
      ready(false);  // until then the sigmas, Optimize and Reset have nothing to act on
      if (kind === "autoencoder") {  // a code, no prior: nothing to integrate
        const [c1, c2] = exact.q.mu.map(v => v.toFixed(2));
        numbers.textContent = `An autoencoder's encoder gives one code, z = (${c1}, ${c2}): a ` +
          "point, not a distribution. With no prior p(z) and no q(z | x) there is no " +
          "p(x) to integrate, no posterior p(z | x) and no ELBO: nothing to show here.";
        return;
      }
      numbers.textContent = "computing the exact posterior ...";
      const start = performance.now();
      exact.cancel = inSlices(exactPosterior(decodeLogits, x, exact.q), (posterior, stats) => {
        exact.cancel = null;
        exact.posterior = posterior;
        exact.view = frame(posterior, exact.q);
        exact.heat = shade(posterior, exact.view);
        exact.encoderElbo = gaussianElbo(posterior, exact.q);
        exact.ms = performance.now() - start;
        exact.stats = stats;
        ready(true);
        report();
        drawPosterior();
        if (done) done(exact.ms, stats);
      });
    }

    // The controls that act on a posterior: enabled only when there is one to act on, and
    // Optimize not while it runs. The panel says it is busy meanwhile (aria-busy).
    function ready(on) {
      for (const control of [...scales, $("reset")]) control.disabled = !on;
      $("best").disabled = !on || exact.optimising;
      board.closest("figure").parentElement.setAttribute("aria-busy", String(!on));
    }

    function report() {
      const p = exact.posterior;
      if (!p) return;
      const f = v => v.toFixed(2);
      const terms = g => `ELBO ${f(g.elbo)} = recon ${f(g.recon)} - KL(q(z|x) || p(z)) ${f(g.kl)}`;
      // a q's numbers hold only where the grid covers and resolves it (gaussianElbo)
      const onGrid = g => Math.abs(g.qMass - 1) <= 1e-3;
      const beyond = "beyond the grid, or narrower than its cells";
      const encoder = exact.encoderElbo, mine = gaussianElbo(p, exact.mine);
      const lines = [`log p(x) ${f(p.logPx)} nats, exact (${p.grid.values.length} points` +
                     `${p.passed ? "" : "; its checks failed"})`];
      if (onGrid(encoder)) {
        lines.push(`encoder's q: ${terms(encoder)}`,
                   `  gap log p(x) - ELBO = KL(q(z|x) || p(z|x)) ${f(encoder.gap)}`);
      } else {
        lines.push(`encoder's q: ${beyond}`);
      }
      if (!onGrid(mine)) {
        lines.push(`your q: ${beyond}; move it back`);
      } else {
        lines.push(`your q: ${terms(mine)}`, `  gap ${f(mine.gap)}`);
      }
      if (exact.optimising) lines.push("optimizing q for this digit ...");
      if (exact.best) {
        const best = exact.bestElbo;
        if (!onGrid(best) || !Number.isFinite(best.elbo)) {
          lines.push(`best diagonal q found: ${beyond}`);
        } else {
          lines.push(`best diagonal q found: ELBO ${f(best.elbo)}, gap ${f(best.gap)}`);
          if (onGrid(encoder)) {
            lines.push(`  amortization gap \u2265 ${f(best.elbo - encoder.elbo)}`);
          }
        }
      }
      numbers.textContent = lines.join("\n");
    }

    // A square view around the posterior (+-4 standard deviations) and the encoder's q (+-3
    // sigma), fixed for the digit: z -> canvas pixels and back.
    function frame(p, q) {
      const side = board.width, sd = [Math.sqrt(p.cov[0]), Math.sqrt(p.cov[2])];
      const sigma = q.logvar.map(v => Math.exp(v / 2));
      const low = [0, 1].map(a => Math.min(p.mean[a] - 4 * sd[a], q.mu[a] - 3 * sigma[a]));
      const high = [0, 1].map(a => Math.max(p.mean[a] + 4 * sd[a], q.mu[a] + 3 * sigma[a]));
      const centre = [0, 1].map(a => (low[a] + high[a]) / 2);
      const half = Math.max(high[0] - low[0], high[1] - low[1]) / 2;
      return { side, centre, half,
               toPixel: z => [(z[0] - centre[0] + half) / (2 * half) * side,
                              (centre[1] + half - z[1]) / (2 * half) * side],
               toLatent: (px, py) => [centre[0] - half + 2 * half * px / side,
                                      centre[1] + half - 2 * half * py / side] };
    }

    // The posterior's density on the view, relative to its largest value, as blue shades.
    function shade(p, v) {
      const g = p.grid;
      const top = g.values.reduce((m, value) => Math.max(m, value), -Infinity);
      const image = board.getContext("2d").createImageData(v.side, v.side);
      for (let py = 0; py < v.side; py++) {
        for (let px = 0; px < v.side; px++) {
          const z = v.toLatent(px + 0.5, py + 0.5);
          const i1 = Math.floor((z[0] - g.low[0]) / g.h[0]);
          const i2 = Math.floor((z[1] - g.low[1]) / g.h[1]);
          const inside = i1 >= 0 && i2 >= 0 && i1 < g.n[0] && i2 < g.n[1];
          const density = inside ? Math.exp(g.values[i1 * g.n[1] + i2] - top) : 0;
          const k = 4 * (py * v.side + px);
          image.data[k] = 255 - 225 * density;
          image.data[k + 1] = 255 - 160 * density;
          image.data[k + 2] = 255 - 40 * density;
          image.data[k + 3] = 255;
        }
      }
      return image;
    }

    // No digit in the panel any more (its drawing was cleared).
    function forget() {
      if (exact.cancel) exact.cancel();
      exact.cancel = exact.x = exact.q = exact.posterior = exact.best = null;
      exact.optimising = false;
      ready(false);
      drawDigit($("chosen"), new Float32Array(784));
      numbers.textContent = "Draw a digit above, or pick a test digit.";
      drawPosterior();
    }

    function drawPosterior() {
      const c = board.getContext("2d");
      c.fillStyle = "#fff";
      c.fillRect(0, 0, board.width, board.height);
      if (!exact.posterior) return;
      const v = exact.view;
      c.putImageData(exact.heat, 0, 0);
      const ellipse = (q, colour, dash) => {
        const [x, y] = v.toPixel(q.mu), scale = v.side / (2 * v.half);
        c.setLineDash(dash);
        c.strokeStyle = colour;
        c.lineWidth = 2;
        c.beginPath();
        c.ellipse(x, y, 2 * Math.exp(q.logvar[0] / 2) * scale,
                  2 * Math.exp(q.logvar[1] / 2) * scale, 0, 0, 2 * Math.PI);
        c.stroke();
        c.setLineDash([]);
      };
      ellipse(exact.q, "#000", []);
      if (exact.best) ellipse(exact.best, "#2ca02c", [2, 3]);
      ellipse(exact.mine, "#d62728", [6, 4]);
      c.fillStyle = "#000";
      c.font = "11px sans-serif";
      c.fillText(`z1: ${(v.centre[0] - v.half).toFixed(2)} to ${(v.centre[0] + v.half).toFixed(2)}`,
                 4, v.side - 18);
      c.fillText(`z2: ${(v.centre[1] - v.half).toFixed(2)} to ${(v.centre[1] + v.half).toFixed(2)}`,
                 4, v.side - 5);
    }

    // The reader's q: its centre dragged on the board, its sigmas scaled by 2^slider.
    function moveMine(mu) {
      if (!exact.posterior) return;
      if (mu) exact.mine.mu = mu;
      exact.mine.logvar = exact.q.logvar.map((lv, a) => lv + 2 * Math.LN2 * +scales[a].value);
      report();
      drawPosterior();
    }
    function boardLatent(event) {
      const box = board.getBoundingClientRect();
      return exact.view.toLatent((event.clientX - box.left) * board.width / box.width,
                                 (event.clientY - box.top) * board.height / box.height);
    }
    board.addEventListener("pointerdown", event => {
      if (!exact.posterior) return;
      board.setPointerCapture(event.pointerId);
      moveMine(boardLatent(event));
    });
    board.addEventListener("pointermove", event => {
      if (exact.posterior && board.hasPointerCapture(event.pointerId)) moveMine(boardLatent(event));
    });
    // By keyboard: an arrow moves your q's centre by a quarter of the encoder's sigma.
    board.addEventListener("keydown", event => {
      const step = ARROWS[event.key];
      if (!step || !exact.posterior) return;
      event.preventDefault();
      moveMine(exact.mine.mu.map((m, a) => m + step[a] * Math.exp(exact.q.logvar[a] / 2) / 4));
    });
    const describeScale = (s, a) => s.setAttribute(
      "aria-valuetext", `sigma${a + 1} times ${Math.pow(2, +s.value).toFixed(2)}`);
    scales.forEach(describeScale);
    scales.forEach((s, a) => s.addEventListener("input", () => {
      describeScale(s, a);
      moveMine(null);
    }));
    // Optimize q for the digit, in slices (as the posterior), so that the page stays
    // responsive; a new digit (study) or Clear (forget) cancels it.
    $("best").addEventListener("click", () => {
      if (!exact.posterior || exact.optimising) return;
      exact.optimising = true;
      ready(true);  // Optimize off while it runs
      report();
      exact.cancel = inSlices(bestGaussian(exact.posterior, exact.q), (best, stats) => {
        exact.cancel = null;
        exact.optimising = false;
        exact.best = best;
        exact.bestElbo = gaussianElbo(exact.posterior, best);
        exact.bestStats = stats;
        ready(true);
        report();
        drawPosterior();
      });
    });
    $("reset").addEventListener("click", () => {
      if (!exact.posterior) return;
      scales.forEach((s, a) => { s.value = 0; describeScale(s, a); });
      moveMine(exact.q.mu.slice());
    });
    $("test").addEventListener("click", () => {
      if (!digits.length) return;
      study(digits[exact.next % digits.length]);
      exact.next += 1;
    });

    // Times the exact posterior of the first n test digits, one after another: what
    // `python -m book.bench explorer` reports. Resolves to {ms, longestSliceMs}.
    function timePosterior(n) {
      return new Promise(resolve => {
        const ms = [], slices = [];
        (function next(i) {
          if (i === Math.min(n, digits.length)) { resolve({ ms, longestSliceMs: slices }); return; }
          study(digits[i], (elapsed, stats) => {
            ms.push(elapsed);
            slices.push(stats.longestSliceMs);
            next(i + 1);
          });
        })(0);
      });
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

    // --- the models: one button each; switching keeps the point, the drawing and the digit
    const models = data.models.map(exhibit => ({ exhibit, net: null, background: null }));
    const buttons = models.map((m, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = m.exhibit.name;
      button.addEventListener("click", () => use(i));
      $("models").appendChild(button);
      return button;
    });
    if (models.length < 2) $("models").hidden = true;
    const api = { show, state, encodeDrawing, benchmark, exact, study, moveMine, timePosterior,
                  use, timeSwitch, active: 0 };

    // Makes model i the one explored: its networks (read the first time), its map, the point
    // clamped to its square, the drawing encoded again and the panel's digit studied anew.
    function use(i) {
      const m = models[i];
      if (!m.net) {
        const spec = m.exhibit.model;
        m.net = { decode: makeDecoder(spec), encode: makeEncoder(spec),
                  decodeLogits: makeLogits(spec), kind: spec.kind || "vae" };
        m.background = drawBackground(m.exhibit);
      }
      ({ decode, encode, decodeLogits, kind } = m.net);
      ({ background } = m);
      extent = m.exhibit.map.extent;
      api.active = i;
      Object.assign(api, { decode, encode });
      buttons.forEach((b, k) => b.setAttribute("aria-pressed", String(k === i)));
      for (const slider of sliders) { slider.min = -extent; slider.max = extent; }
      $("extent").textContent = `The square spans -${extent} to ${extent} on each axis.`;
      show(state.z);
      if (state.drawn) encodeDrawn();
      if (exact.x) study(exact.x);
    }

    // Milliseconds of n switches, through the models in turn (the page is held that long).
    function timeSwitch(n) {
      const ms = [];
      for (let k = 1; k <= n; k++) {
        const start = performance.now();
        use(k % models.length);
        ms.push(performance.now() - start);
      }
      return ms;
    }

    use(0);
    for (const canvas of [seen, recon]) drawDigit(canvas, new Float32Array(784));
    drawPosterior();
    if (digits.length) { study(digits[0]); exact.next = 1; }
    container.vaeExplorer = api;  // for the browser test and the benchmark
    return api;
  }

  const VAEExplorer = { halfToFloat, readTensor, makeDecoder, makeEncoder, makeLogits, mnistStyle,
                        binarize, prepareDrawing, exactPosterior, summarise, finish, inSlices,
                        gaussianElbo, bestGaussian, mount };
  root.VAEExplorer = VAEExplorer;
  if (typeof module === "object" && module.exports) module.exports = VAEExplorer;
})(typeof globalThis !== "undefined" ? globalThis : this);
