"""Benchmarks of the book's models: ``python -m book.bench <subcommand>``.

``conv``: the conv-VAE of ``book.conv_vae`` against the MLP VAE of pytorch/examples, trained
for the same wall-clock time on the same binarised digits, then scored by their test negative
ELBO and IWAE estimate of -log p(x).

``explorer``: the static latent-space explorer (``book.explorer``) in headless Chromium: the
time of one decode of the 2-D conv-VAE in JavaScript, and of one whole update as a drag makes
it (decode, draw the digit, redraw the map), over many random points.

``numpy``: training throughput of the NumPy VAE (``book.numpy_vae``) against the identical
model in PyTorch (``book.torch_mlp_vae``) on the CPU, in images per second of full training
steps (noise, forward, backward, Adam). Both run on the same batch with the same architecture
and start from the same weights; the timed blocks alternate between the two, so that a change
in the machine's load during the run hits both, and the median over the repeats is reported.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import numpy as np


def throughput(step: Callable[[], object], images_per_step: int, steps: int,
               sync: Callable[[], object] = lambda: None) -> float:
    """Images per second over ``steps`` consecutive calls of ``step``.

    ``sync`` waits for work still running (``torch.cuda.synchronize`` on a GPU, whose work is
    asynchronous); it is called before the clock starts and before it stops.
    """
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return images_per_step * steps / (time.perf_counter() - start)


def bench_numpy(batch_size: int = 100, hidden: int = 512, z_dim: int = 32, steps: int = 50,
                repeats: int = 7, warmup: int = 10, seed: int = 0) -> dict[str, float]:
    """Median training throughput (images/s) of the NumPy and PyTorch VAEs, and their ratio."""
    import torch

    from book import numpy_train, numpy_vae, torch_mlp_vae, train

    arch = numpy_vae.Architecture(784, hidden, z_dim)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    # Random binary images as dense as MNIST's (13% of pixels on): the time of a step does not
    # depend on the pixel values, and the benchmark needs no dataset.
    x = (rng.random((batch_size, arch.x_dim)) < 0.13).astype(np.float32)

    model = numpy_vae.VAE(arch, seed=seed)
    torch_model = torch_mlp_vae.TorchVAE.from_numpy(model)
    optimizer = numpy_train.Adam(model.flat, lr=1e-3)
    torch_optimizer = torch.optim.Adam(torch_model.parameters(), lr=1e-3)
    x_torch = torch.from_numpy(x)

    runs = {
        "numpy": lambda: numpy_train.train_step(model, optimizer, x, rng),
        "torch": lambda: train.train_step(torch_model, torch_optimizer, x_torch,
                                          torch.randn(batch_size, z_dim)),
    }
    for step in runs.values():
        throughput(step, batch_size, warmup)
    results: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats):
        order = list(runs) if repeat % 2 == 0 else list(runs)[::-1]
        for name in order:
            results[name].append(throughput(runs[name], batch_size, steps))
    numpy_rate, torch_rate = (statistics.median(results[name]) for name in runs)
    return {"numpy": numpy_rate, "torch": torch_rate, "ratio": numpy_rate / torch_rate}


def _numpy_command(args: argparse.Namespace) -> None:
    import torch

    print(f"MLP VAE 784-{args.hidden}-{args.z_dim} (tanh, Bernoulli output), "
          f"batch {args.batch_size}, float32, Adam; "
          f"{args.repeats} repeats of {args.steps} steps after {args.warmup} warm-up steps")
    blas_threads = (os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
                    or "default (all cores)")
    print(f"threads: PyTorch {torch.get_num_threads()}, NumPy's BLAS {blas_threads}; "
          f"{os.cpu_count()} CPUs")
    result = bench_numpy(args.batch_size, args.hidden, args.z_dim, args.steps, args.repeats,
                         args.warmup)
    for name in ("numpy", "torch"):
        rate = result[name]
        print(f"{name:>6}: {rate:9,.0f} images/s  "
              f"({1e3 * args.batch_size / rate:.2f} ms per step, median)")
    print(f" ratio: NumPy / PyTorch = {result['ratio']:.2f}")


# The book's conv-VAE recipe for the benchmark (the chapter trains the same): what mattered is
# in the conv-VAE chapter. The MLP follows pytorch/examples: Adam 1e-3, batch 128.
CONV_RECIPE = {"batch_size": 64, "lr": 2e-3}
MLP_RECIPE = {"batch_size": 128, "lr": 1e-3}


def bench_conv(seconds: float = 240.0, k: int = 500, seed: int = 0,
               n_test: int | None = None) -> dict[str, dict[str, float]]:
    """Train the conv-VAE and pytorch/examples' MLP VAE for the same wall-clock time.

    Both on the same binarised MNIST (dynamic binarisation for training, one fixed draw of the
    test set), through the book's one training loop; then each one's test negative ELBO and
    IWAE estimate of -log p(x) with ``k`` samples.
    """
    import torch

    from book import iwae, train
    from book.conv_vae import ConvVAE
    from book.data import load_dataset
    from book.torch_mlp_vae import PYTORCH_EXAMPLES, TorchVAE

    train_images, _ = load_dataset("mnist", "train")
    test_images, _ = load_dataset("mnist", "test")
    test_images = test_images[:n_test]
    device = train.default_device()
    results = {}
    for name, build, recipe in (("conv-VAE", ConvVAE, CONV_RECIPE),
                                ("MLP (pytorch/examples)",
                                 lambda: TorchVAE(PYTORCH_EXAMPLES), MLP_RECIPE)):
        torch.manual_seed(seed)
        model = build()
        history = train.train(model, train_images, test_images, seconds=seconds,
                              seed=seed, device=device, progress=False,
                              eval_every=10**9, **recipe)
        x_test = train.observe_test_set(model, torch.as_tensor(test_images).to(device))
        model.eval()
        nll, se = iwae.iwae_estimate(model, x_test, k, seed=seed)
        results[name] = {
            "images/s": history.images[-1] / history.seconds[-1],
            "epochs": history.images[-1] / len(train_images),
            "seconds": history.seconds[-1], "neg_elbo": history.test[-1].neg_elbo,
            "iwae_nll": -nll, "iwae_se": se,
            "parameters": sum(p.numel() for p in model.parameters())}
    return results


def _conv_command(args: argparse.Namespace) -> None:
    import torch

    print(f"conv-VAE vs pytorch/examples' MLP VAE, {args.seconds:.0f} s of training each; "
          f"IWAE with K = {args.k}")
    print(f"threads: PyTorch {torch.get_num_threads()}; {os.cpu_count()} CPUs")
    results = bench_conv(args.seconds, args.k, n_test=args.n_test)
    print(f"{'model':<24}{'params':>9}{'images/s':>10}{'epochs':>8}{'-ELBO':>8}"
          f"{'IWAE NLL':>16}")
    for name, r in results.items():
        print(f"{name:<24}{r['parameters']:>9,}{r['images/s']:>10,.0f}{r['epochs']:>8.1f}"
              f"{r['neg_elbo']:>8.2f}{r['iwae_nll']:>9.2f} ± {r['iwae_se']:.2f}")
    conv, mlp = results.values()
    print(f"difference (MLP - conv): -ELBO {mlp['neg_elbo'] - conv['neg_elbo']:+.2f} nats, "
          f"IWAE NLL {mlp['iwae_nll'] - conv['iwae_nll']:+.2f} nats per image")


def bench_explorer(updates: int = 1000, epochs: int = 3) -> dict[str, np.ndarray]:
    """Milliseconds per decode and per update of the explorer in headless Chromium.

    The 2-D conv-VAE is trained for ``epochs`` on the offline data first (a trained decoder
    has the ReLU sparsity the JavaScript exploits; its speed does not depend on the training
    otherwise), exported as the chapter exports it, and opened as a local file.
    """
    import tempfile
    from pathlib import Path

    import torch

    from book import browser, explorer, train
    from book.conv_vae import ConvConfig, ConvVAE
    from book.data import load_dataset

    train_images, _ = load_dataset("mnist", "train")
    test_images, test_labels = load_dataset("mnist", "test")
    model = ConvVAE(ConvConfig(z_dim=2))
    train.train(model, train_images, test_images, epochs=epochs, batch_size=64, lr=2e-3,
                device="cpu", progress=False)
    with torch.no_grad():
        mu, _ = model.eval().encode(train.observe_test_set(model, torch.as_tensor(test_images)))
    snippet = explorer.explorer_html(model, mu.numpy(), test_labels)
    with tempfile.TemporaryDirectory() as folder, browser.chromium() as chromium:
        page_path = Path(folder) / "explorer.html"
        page_path.write_text(explorer.standalone_page(snippet))
        page = chromium.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(page_path.as_uri())
        run = "n => document.querySelector('.vae-explorer').vaeExplorer.benchmark(n)"
        page.evaluate(run, 100)  # warm-up: let the JIT compile the loops
        times = page.evaluate(run, updates)
        if errors:
            raise RuntimeError(f"the explorer failed in the browser: {errors}")
    sizes = explorer.exported_size(snippet)
    return {"decode": np.array(times["decodeMs"]), "update": np.array(times["updateMs"]),
            "html_kB": sizes["html"] / 1e3, "weights_kB": sizes["weights"] / 1e3}


def _tick(times: np.ndarray) -> float:
    """The resolution of the browser's clock (it coarsens performance.now, against timing
    attacks): the smallest step between the times it reported."""
    return float(np.min(np.diff(np.unique(np.round(times, 4)))))


def _explorer_command(args: argparse.Namespace) -> None:
    print(f"the explorer's 2-D conv-VAE in headless Chromium, {args.updates} random points")
    r = bench_explorer(args.updates, args.epochs)
    print(f"page snippet {r['html_kB']:.0f} kB, of which weights {r['weights_kB']:.0f} kB "
          "(float16, base64)")
    print(f"{'ms per':<30}{'median':>8}{'95th pct':>10}")
    for name, label in (("decode", "decode"), ("update", "update (decode + draw + map)")):
        times = r[name]
        print(f"{label:<30}{np.median(times):>8.2f}{np.quantile(times, 0.95):>10.2f}")
    print(f"goal: median update under 5 ms; a 60 Hz frame is 16.7 ms "
          f"(the browser's clock here ticks in {_tick(r['update']):.3f} ms)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m book.bench",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    numpy_parser = commands.add_parser(
        "numpy", help="NumPy VAE vs the same model in PyTorch, CPU training throughput")
    numpy_parser.add_argument("--batch-size", type=int, default=100)
    numpy_parser.add_argument("--hidden", type=int, default=512)
    numpy_parser.add_argument("--z-dim", type=int, default=32)
    numpy_parser.add_argument("--steps", type=int, default=50, help="steps per timed block")
    numpy_parser.add_argument("--repeats", type=int, default=7)
    numpy_parser.add_argument("--warmup", type=int, default=10)
    numpy_parser.set_defaults(run=_numpy_command)
    conv_parser = commands.add_parser(
        "conv", help="conv-VAE vs pytorch/examples' MLP VAE at equal training time")
    conv_parser.add_argument("--seconds", type=float, default=240.0,
                             help="training time of each model")
    conv_parser.add_argument("--k", type=int, default=500, help="IWAE samples")
    conv_parser.add_argument("--n-test", type=int, default=None,
                             help="score only the first N test images")
    conv_parser.set_defaults(run=_conv_command)
    explorer_parser = commands.add_parser(
        "explorer", help="the static explorer's decode and update time in headless Chromium")
    explorer_parser.add_argument("--updates", type=int, default=1000)
    explorer_parser.add_argument("--epochs", type=int, default=3,
                                 help="training of the 2-D model before it is timed")
    explorer_parser.set_defaults(run=_explorer_command)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
