"""Every measurement the book reports, in one command: ``python -m book.bench``.

It states the machine and the data, runs every row below, printing each one's details as it
finishes, and ends with one summary table (the one the README quotes). ``--quick`` runs every
row on a tiny budget, a smoke test of seconds whose numbers are not results; ``--seconds``,
``--k`` and ``--n-test`` set the models' budget. Each row also runs alone, as a subcommand
(``python -m book.bench numpy``, and so on), with ``--quick`` too.

1. ``numpy``: training throughput of the NumPy VAE (``book.numpy_vae``) against the identical
   model in PyTorch (``book.torch_mlp_vae``) on the CPU, in images per second of full training
   steps (noise, forward, backward, Adam). Both run on the same batch with the same
   architecture and start from the same weights; the timed blocks alternate between the two,
   so that a change in the machine's load during the run hits both, and the median over the
   repeats is reported.

2. and 3. ``conv``: the conv-VAE (``book.conv_vae``), the MLP VAE of pytorch/examples and
   chapter 2's MLP VAE (the NumPy model, in PyTorch), each trained for the same wall-clock time
   by the book's one loop (``book.train``) on dynamically binarised digits, then scored on one
   fixed binarised draw of the test set: the test negative ELBO and the IWAE estimate of
   -log p(x) with K samples (``book.iwae``). The conv-VAE and pytorch/examples' MLP are each
   trained from several seeds, and compared image by image (a paired difference) seed by seed:
   the mean lead over the seeds is reported with its seed-to-seed spread beside the paired
   standard error. Beside them, a mixture of 100 Bernoullis fitted by EM (``book.mixture``) on
   one binarised draw of the training set, whose -log p(x) on the same test draw is exact.
   Then the book's best model, trained for 600 s, scored as Burda et al. (2015) scored theirs
   (IWAE with K = 5,000 on every test digit) beside their 86.76 nats (``book.literature``).
   The process's peak memory is printed with each.

4. ``chapters``: the time to execute each chapter of ``_toc.yml`` in a fresh kernel at its
   default budget (``QUICK = False``; ``QUICK = True`` with ``--quick``), kernel start included.
   It needs the repository (not only the installed package) and papermill.

5. ``explorer``: the static latent-space explorer (``book.explorer``) in headless Chromium: the
   time of one decode of the 2-D conv-VAE in JavaScript, and of one whole update as a drag makes
   it (decode, draw the digit, redraw the map), over many random points.

The one command checks what rows 4 and 5 need (the repository, papermill, Chromium) before the
first row, so that a missing piece fails at once rather than half an hour in.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent  # the repository, when run from a clone

# Each row's budget: the book's (the numbers the README reports) and a smoke test's.
FULL = {
    "numpy": {"batch_size": 100, "hidden": 512, "z_dim": 32, "steps": 50, "repeats": 7,
              "warmup": 10},
    "models": {"seconds": 240.0, "k": 1000, "n_test": None, "seeds": 3,
               "mixture_iterations": 50},
    "best": {"best_seconds": 600.0, "best_k": 5000, "n_test": None},
    "explorer": {"updates": 1000, "images": 24_000, "posteriors": 20,
                 "switches_per_model": 5},
}
QUICK = {
    "numpy": {**FULL["numpy"], "steps": 3, "repeats": 1, "warmup": 1},
    "models": {"seconds": 2.0, "k": 5, "n_test": 100, "seeds": 2, "mixture_iterations": 3},
    "best": {"best_seconds": 3.0, "best_k": 5, "n_test": 100},
    "explorer": {"updates": 20, "images": 8_000, "posteriors": 2, "switches_per_model": 1},
}
# The book's target for executing every chapter at its default budget on a 2-core CPU.
CHAPTERS_BUDGET_S = 15 * 60
LABEL = 34  # width of the summary table's first column: every line stays within 96


# --- the machine ----------------------------------------------------------------------------


def machine() -> list[str]:
    """Lines that say where the numbers come from: CPUs, PyTorch, device, data, date."""
    import torch

    from book import data, train

    device = train.default_device()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "no CUDA"
    lines = [f"machine: {os.cpu_count()} CPUs, PyTorch {torch.__version__} on "
             f"{torch.get_num_threads()} threads, device {device} ({name})"]
    try:  # never a download here: the numpy row needs no data
        counts = {split: len(data.load_dataset("mnist", split, download=False,
                                               verbose=False)[0])
                  for split in ("train", "test")}
    except data.DatasetError:
        lines.append("data: no MNIST yet (a row that needs it downloads it)")
    else:
        full = data.DATASETS["mnist"]["counts"]
        subset = (f" (a subset of {full['train']:,} / {full['test']:,})"
                  if counts != full else "")
        lines.append(f"data: MNIST, {counts['train']:,} train / {counts['test']:,} test "
                     f"images{subset}")
    return lines + [f"data folder: {data.data_dir() / 'mnist'}",
                    f"date: {datetime.date.today().isoformat()}"]


def _mnist(n_test: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training images and the first ``n_test`` test images (the header said which)."""
    from book.data import load_dataset

    train_images, _ = load_dataset("mnist", "train", verbose=False)
    test_images, _ = load_dataset("mnist", "test", verbose=False)
    return train_images, test_images[:n_test]


# --- 1. NumPy vs PyTorch --------------------------------------------------------------------


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


def print_numpy(result: dict[str, float], settings: dict[str, Any]) -> None:
    """Row 1's details: the set-up, the threads, each library's rate and the ratio."""
    import torch

    print(f"MLP VAE 784-{settings['hidden']}-{settings['z_dim']} (tanh, Bernoulli output), "
          f"batch {settings['batch_size']}, float32, Adam;\n"
          f"{_count(settings['repeats'], 'repeat')} of {_count(settings['steps'], 'step')} "
          f"after {_count(settings['warmup'], 'warm-up step')}")
    blas_threads = (os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
                    or "default (all cores)")
    print(f"threads: PyTorch {torch.get_num_threads()}, NumPy's BLAS {blas_threads}; "
          f"{os.cpu_count()} CPUs")
    for name in ("numpy", "torch"):
        rate = result[name]
        print(f"{name:>6}: {rate:9,.0f} images/s  "
              f"({1e3 * settings['batch_size'] / rate:.2f} ms per step, median)")
    print(f" ratio: NumPy / PyTorch = {result['ratio']:.2f}")


# --- 2. and 3. the models at equal wall-clock time, and their IWAE NLL ----------------------

# The conv-VAE at equal time is the bigger model of the book's conv_vae.py page (channels
# (32, 64), dense layers of 256 units, 32 latent dimensions), with a cosine learning-rate decay:
# on full MNIST a probe measured it ahead of the small one at equal time (see the README).
# The MLP follows pytorch/examples: Adam 1e-3, batch 128. Chapter 2 trains its MLP (the
# NumPy VAE) with Adam 1e-3 on batches of 100.
CONV_RECIPE = {"batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine"}
MLP_RECIPE = {"batch_size": 128, "lr": 1e-3}
CHAPTER_2_RECIPE = {"batch_size": 100, "lr": 1e-3}
# The mixture as chapter 5 fits it: 100 prototypes, add-a smoothing of each pixel with the a
# the chapter picks on held-out training images (0.1 of 0.01, 0.1 and 1 on the offline subset).
MIXTURE_RECIPE = {"k": 100, "smoothing": 0.1}

CONV, MLP, CHAPTER_2, MIXTURE, BEST = ("conv-VAE", "MLP (pytorch/examples)", "MLP (chapter 2)",
                                       "Bernoulli mixture", "book's best")


def _conv_config() -> Any:
    """The conv-VAE of the equal-time comparison and of the book's best run."""
    from book.conv_vae import ConvConfig

    return ConvConfig(z_dim=32, channels=(32, 64), dense=256)


def _vaes() -> dict[str, tuple[Callable[[int], Any], dict[str, Any]]]:
    """The VAEs compared: name -> (seed -> the model with its initial weights, its recipe)."""
    from book.conv_vae import ConvVAE
    from book.numpy_vae import Architecture
    from book.torch_mlp_vae import PYTORCH_EXAMPLES, TorchVAE

    return {CONV: (lambda seed: ConvVAE(_conv_config(), seed=seed), CONV_RECIPE),
            MLP: (lambda seed: TorchVAE(PYTORCH_EXAMPLES, seed=seed), MLP_RECIPE),
            CHAPTER_2: (lambda seed: TorchVAE(Architecture(), seed=seed), CHAPTER_2_RECIPE)}


def peak_memory_gb() -> float:
    """The largest resident memory of this process so far, in GB (Linux reports kB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def train_and_score(model: Any, recipe: dict[str, float], train_images: np.ndarray,
                    test_images: np.ndarray, seconds: float, k: int,
                    seed: int = 0) -> dict[str, Any]:
    """Train ``model`` for ``seconds`` with the book's loop, then score it on the test draw.

    Returns its throughput, epochs, test negative ELBO, the IWAE estimate of -log p(x) with
    ``k`` samples and its standard error over the images, its parameter count, and the
    per-image bound ``log_px`` (for paired differences).
    """
    import torch

    from book import iwae, train
    from book.checks import mean_and_standard_error

    device = train.default_device()
    history = train.train(model, train_images, test_images, seconds=seconds, seed=seed,
                          device=device, progress=False, eval_every=10**9, **recipe)
    x_test = train.observe_test_set(model, torch.as_tensor(test_images).to(device))
    model.eval()
    log_px = iwae.iwae_bound(model, x_test, k, seed=seed)
    log_p, se = mean_and_standard_error(log_px)
    return {"images/s": history.images[-1] / history.seconds[-1],
            "epochs": history.images[-1] / len(train_images),
            "seconds": history.seconds[-1], "neg_elbo": history.test[-1].neg_elbo,
            "iwae_nll": -float(log_p), "iwae_se": float(se),
            "parameters": sum(p.numel() for p in model.parameters()), "log_px": log_px,
            "memory_gb": peak_memory_gb(), "k": k, "n_test": len(test_images)}


def bench_mixture(train_images: np.ndarray, test_images: np.ndarray, iterations: int = 50,
                  seed: int = 0) -> dict[str, Any]:
    """Fit the Bernoulli mixture by EM to one binarised draw of the training set; score it.

    Its -log p(x) on the test draw is exact. The entries match ``train_and_score``'s: an EM
    iteration is one pass over the data (an "epoch"), and the negative ELBO equals the NLL,
    since the E-step's q is the exact posterior.
    """
    from book import train
    from book.checks import mean_and_standard_error
    from book.mixture import fit_mixture

    import torch

    from book import data

    draw = data.observe(torch.as_tensor(train_images), "binary",
                        torch.Generator().manual_seed(seed))
    x_train = draw.flatten(1).double().numpy()
    start = time.perf_counter()
    mixture, _ = fit_mixture(x_train, MIXTURE_RECIPE["k"], iterations=iterations,
                             smoothing=MIXTURE_RECIPE["smoothing"], seed=seed, progress=False)
    seconds = time.perf_counter() - start
    x_test = train.fixed_observations(test_images, "binary").flatten(1).double().numpy()
    log_px = mixture.log_likelihood(x_test)
    log_p, se = mean_and_standard_error(log_px)
    return {"images/s": iterations * len(x_train) / seconds, "epochs": float(iterations),
            "seconds": seconds, "neg_elbo": -float(log_p), "iwae_nll": -float(log_p),
            "iwae_se": float(se), "parameters": mixture.parameters, "log_px": log_px,
            "memory_gb": peak_memory_gb(), "n_test": len(test_images)}


def bench_models(seconds: float = 240.0, k: int = 1000, n_test: int | None = None,
                 seeds: int = 3, mixture_iterations: int = 50) -> dict[str, Any]:
    """The VAEs, each trained for ``seconds`` of wall-clock, and the Bernoulli mixture.

    The conv-VAE and pytorch/examples' MLP are trained once per seed 0, ..., ``seeds`` - 1
    (initial weights, minibatches and noise all follow the seed); chapter 2's MLP and the
    mixture once, with seed 0. All on the same binarised MNIST (dynamic binarisation for the
    VAEs' training, one fixed draw of the first ``n_test`` test images for every score); see
    ``train_and_score``. Returns ``{"runs": {name: [one result per seed]}, "k": k}``.
    """
    train_images, test_images = _mnist(n_test)
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, (build, recipe) in _vaes().items():
        for seed in range(seeds if name in (CONV, MLP) else 1):
            runs.setdefault(name, []).append(
                train_and_score(build(seed), recipe, train_images, test_images, seconds, k,
                                seed))
            print(_model_line(name, runs[name][-1], f"seed {seed}"), flush=True)
    runs[MIXTURE] = [bench_mixture(train_images, test_images, mixture_iterations)]
    print(_model_line(MIXTURE, runs[MIXTURE][0], "EM"), flush=True)
    return {"runs": runs, "k": k}


def bench_best(best_seconds: float = 600.0, best_k: int = 5000,
               n_test: int | None = None) -> dict[str, Any]:
    """The book's best model trained for ``best_seconds``, scored as Burda et al. (2015)
    scored theirs: IWAE with ``best_k`` samples on the first ``n_test`` (all) test digits."""
    from book.conv_vae import ConvVAE

    train_images, test_images = _mnist(n_test)
    model = ConvVAE(_conv_config(), seed=0)
    result = train_and_score(model, CONV_RECIPE, train_images, test_images, best_seconds,
                             best_k)
    print(_model_line(BEST, result, f"{best_seconds:g} s"), flush=True)
    return result


def _model_line(name: str, r: dict[str, Any], run: str) -> str:
    """One trained model's numbers, one line."""
    how = "exact" if name == MIXTURE else f"K={r['k']}"
    return (f"{name:<23}{run:>8}{r['parameters']:>10,}{r['seconds']:>7.0f}"
            f"{r['images/s']:>8,.0f}{r['epochs']:>7.1f}{r['neg_elbo']:>8.2f}"
            f"{r['iwae_nll']:>8.2f} ± {r['iwae_se']:.2f} {how} {r['memory_gb']:.1f} GB")


MODEL_HEADER = (f"{'model':<23}{'run':>8}{'params':>10}{'s':>7}{'img/s':>8}{'epochs':>7}"
                f"{'-ELBO':>8}{'NLL':>8}")


def lead_over_seeds(runs: dict[str, list[dict[str, Any]]], a: str,
                    b: str) -> dict[str, float]:
    """How much lower b's -log p(x) is than a's: per seed the mean over the test images of
    the paired difference (-log p_a(x)) - (-log p_b(x)) and its standard error; then the mean
    over the seeds, their standard deviation (the seed-to-seed spread: what another training
    run would change) and the largest paired standard error (what other test images would)."""
    from book.checks import mean_and_standard_error

    per_seed = [mean_and_standard_error(rb["log_px"] - ra["log_px"])
                for ra, rb in zip(runs[a], runs[b])]
    leads = np.array([lead for lead, _ in per_seed])
    return {"mean": float(leads.mean()), "seeds": len(leads),
            "spread": float(leads.std(ddof=1)) if len(leads) > 1 else float("nan"),
            "paired_se": float(max(se for _, se in per_seed))}


def _mean_over_seeds(results: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """The mean of ``key`` over the seeds and its standard deviation (NaN for one seed)."""
    values = np.array([r[key] for r in results])
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def print_models(result: dict[str, Any], settings: dict[str, Any]) -> None:
    """Rows 2 and 3's details: the header of the lines printed per run, then the lead."""
    lead = lead_over_seeds(result["runs"], MLP, CONV)
    print(f"NLL: IWAE with K = {settings['k']:,} for the VAEs (± over the test images), exact "
          "for the mixture\n(whose epochs are EM iterations); s: seconds of training")
    print(f"conv-VAE's lead over the MLP (pytorch/examples), mean of {lead['seeds']} seeds: "
          f"{lead['mean']:+.2f} nats per image;\n"
          f"seed-to-seed spread (sd) {lead['spread']:.2f}; "
          f"paired standard error over the test images at most {lead['paired_se']:.2f}")


def print_best(result: dict[str, Any], settings: dict[str, Any]) -> None:
    """Row 3b's details: the best model against Burda et al.'s VAE."""
    from book.literature import BURDA_VAE

    print(f"{BURDA_VAE.model}, {BURDA_VAE.source}: {BURDA_VAE.nats:.2f} nats "
          f"(K = {BURDA_VAE.k:,}, full MNIST)")
    print(f"the book's best, {settings['best_seconds']:g} s on this machine: "
          f"{result['iwae_nll']:.2f} ± {result['iwae_se']:.2f} nats (K = {result['k']:,}, "
          f"{result['n_test']:,} test digits):\n{result['iwae_nll'] - BURDA_VAE.nats:+.2f} "
          f"against the paper; peak memory {result['memory_gb']:.1f} GB")


# --- 4. the chapters ------------------------------------------------------------------------


def chapter_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebook chapters of ``root/_toc.yml``, in its order, read by ``tools.chapters``
    (the repository's tooling, importable from a clone: the package alone has no chapters)."""
    if not (root / "_toc.yml").is_file() or not (root / "tools" / "chapters.py").is_file():
        raise FileNotFoundError(
            f"no _toc.yml and tools/ in {root}: timing the chapters needs a clone of the "
            "book's repository (this package may have been installed without it)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tools.chapters import chapter_notebooks as listed

    notebooks = listed(root)
    if not notebooks:
        raise FileNotFoundError(f"{root / '_toc.yml'} lists no notebook chapter")
    return notebooks


def _papermill() -> Any:
    """The papermill module, or a clear error: a development dependency, not the package's."""
    try:
        import papermill
    except ImportError as error:
        raise ImportError("timing the chapters needs papermill, a development dependency: "
                          "pip install -r requirements.txt") from error
    return papermill


def bench_chapters(quick: bool = False, root: Path = ROOT,
                   report: Callable[[str, float], object] = lambda name, s: None,
                   ) -> dict[str, float]:
    """Seconds to execute each chapter in a fresh kernel, ``{chapter stem: seconds}``.

    Each runs as the tests run it (papermill, kernel python3, in its own folder) with
    ``QUICK = quick``, into a temporary file: the chapters stay as committed. ``report`` is
    called with each chapter's name and time as it finishes. A failing chapter raises, named.
    """
    papermill = _papermill()
    notebooks = chapter_notebooks(root)
    times = {}
    with tempfile.TemporaryDirectory() as folder:
        for notebook in notebooks:
            start = time.perf_counter()
            try:
                papermill.execute_notebook(
                    str(notebook), str(Path(folder) / notebook.name),
                    parameters={"QUICK": quick}, cwd=str(notebook.parent),
                    kernel_name="python3", progress_bar=False, log_output=False)
            except Exception as error:
                raise RuntimeError(f"chapter {notebook.stem} failed (QUICK = {quick}): "
                                   f"{error}") from error
            times[notebook.stem] = time.perf_counter() - start
            report(notebook.stem, times[notebook.stem])
    return times


def print_chapter(name: str, seconds: float) -> None:
    """Row 4's detail: one chapter's time, printed as soon as it is known."""
    print(f"{name:<34}{seconds:6.0f} s", flush=True)


# --- 5. the explorer in the browser ---------------------------------------------------------


def bench_explorer(updates: int = 1000, images: int = 24_000, posteriors: int = 20,
                   switches_per_model: int = 5) -> dict[str, Any]:
    """Milliseconds per decode and per update of the explorer in headless Chromium, per
    exact posterior of a test digit (with the longest time the page was held meanwhile), and
    per switch between its four models (the first switch to each reads its weights).

    The 2-D conv-VAE and a 2-D autoencoder are trained on ``images`` training images first (a
    trained decoder has the ReLU sparsity the JavaScript exploits, and a posterior as narrow
    as the chapter's), exported as the chapter exports its four models (the VAE three
    times), and opened as a local file.
    """
    import torch

    from book import browser, explorer, train
    from book.conv_vae import ConvAutoencoder, ConvConfig, ConvVAE
    from book.data import load_dataset

    train_images, _ = load_dataset("mnist", "train", verbose=False)
    test_images, test_labels = load_dataset("mnist", "test", verbose=False)
    model = ConvVAE(ConvConfig(z_dim=2), seed=0)
    train.train(model, train_images, test_images, images=images, batch_size=64, lr=2e-3,
                device="cpu", progress=False)
    x_test = train.observe_test_set(model, torch.as_tensor(test_images))
    with torch.no_grad():
        mu, _ = model.eval().encode(x_test)
    # four models as in the chapter: three VAEs (this one thrice) and an autoencoder
    auto = ConvAutoencoder(ConvConfig(z_dim=2), seed=0)
    train.train(auto, train_images, test_images, images=images, batch_size=64, lr=2e-3,
                device="cpu", progress=False)
    with torch.no_grad():
        codes, _ = auto.eval().encode(x_test)
    models = {name: (model, mu.numpy()) for name in ("VAE", "VAE 2", "VAE 3")}
    snippet = explorer.explorer_html({**models, "autoencoder": (auto, codes.numpy())},
                                     test_labels, digits=x_test[:max(posteriors, 1)].numpy())
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
        exact = page.evaluate("n => document.querySelector('.vae-explorer').vaeExplorer"
                              ".timePosterior(n)", posteriors)
        switches = page.evaluate("n => document.querySelector('.vae-explorer').vaeExplorer"
                                 ".timeSwitch(n)", 4 * max(switches_per_model, 1))
        if errors:
            raise RuntimeError(f"the explorer failed in the browser: {errors}")
    sizes = explorer.exported_size(snippet)
    return {"decode": np.array(times["decodeMs"]), "update": np.array(times["updateMs"]),
            "posterior": np.array(exact["ms"]), "held": np.array(exact["longestSliceMs"]),
            "switch": np.array(switches),
            "html_kB": sizes["html"] / 1e3, "weights_kB": sizes["weights"] / 1e3}


def _tick(times: np.ndarray) -> float:
    """The resolution of the browser's clock (it coarsens performance.now, against timing
    attacks): the smallest step between the times it reported."""
    return float(np.min(np.diff(np.unique(np.round(times, 4)))))


def print_explorer(r: dict[str, Any], settings: dict[str, Any]) -> None:
    """Row 5's details: the export's size, the median and 95th percentile of both times."""
    print(f"the explorer's 2-D conv-VAE ({settings['images']:,} training images) in headless "
          f"Chromium, {settings['updates']} random points")
    print(f"page snippet {r['html_kB']:.0f} kB, of which weights {r['weights_kB']:.0f} kB "
          "(float16, base64)")
    print(f"{'ms per':<30}{'median':>8}{'95th pct':>10}")
    for name, label in (("decode", "decode"), ("update", "update (decode + draw + map)"),
                        ("posterior", f"exact posterior ({len(r['posterior'])} digits)"),
                        ("held", "  longest hold of the page"),
                        ("switch", f"switch of model ({len(r['switch'])} switches)")):
        times = r[name]
        print(f"{label:<30}{np.median(times):>8.2f}{np.quantile(times, 0.95):>10.2f}")
    print(f"goals: median update under 5 ms (a 60 Hz frame is 16.7 ms); exact posterior "
          f"under 1,000 ms,\nthe page never held over 50 ms; a switch under 100 ms (the "
          f"browser's clock here ticks in {_tick(r['update']):.3f} ms)")


# --- the summary table ----------------------------------------------------------------------


def summary(results: dict[str, Any], settings: dict[str, dict[str, Any]],
            quick: bool = False) -> list[str]:
    """The table of every row's headline number, one line each, as the README quotes it.

    ``results`` holds the rows that ran ("numpy", "models", "chapters", "explorer").
    """
    lines = [f"{'row':<{LABEL}}result"]

    def add(label: str, text: str) -> None:
        lines.append(f"{label:<{LABEL}}{text}")

    if "numpy" in results:
        r = results["numpy"]
        add("NumPy / PyTorch throughput",
            f"{r['numpy']:,.0f} vs {r['torch']:,.0f} images/s: ratio {r['ratio']:.2f}")
    if "models" in results:
        runs, m = results["models"]["runs"], settings["models"]
        lead = lead_over_seeds(runs, MLP, CONV)
        add(f"conv-VAE lead over MLP, {m['seconds']:g} s",
            f"{lead['mean']:+.2f} nats, mean of {lead['seeds']} seeds (sd "
            f"{lead['spread']:.2f}; paired se {lead['paired_se']:.2f})")
        for name, model_runs in runs.items():
            nll, spread = _mean_over_seeds(model_runs, "iwae_nll")
            first = model_runs[0]
            if name == MIXTURE:
                how = f"exact; EM {first['seconds']:.1f} s"
            else:
                seeds = (f"{len(model_runs)} seeds, sd {spread:.2f}" if len(model_runs) > 1
                         else "1 seed")
                how = f"IWAE K = {m['k']:,}; {seeds}"
            add(f"NLL, {name}", f"{nll:.2f} ± {first['iwae_se']:.2f} nats ({how})")
    if "best" in results:
        from book.literature import BURDA_VAE

        r, b = results["best"], settings["best"]
        add(f"book's best, {b['best_seconds']:g} s",
            f"{r['iwae_nll']:.2f} ± {r['iwae_se']:.2f} nats (K = {r['k']:,}, "
            f"{r['n_test']:,} digits)")
        add("Burda et al. 2015, VAE", f"{BURDA_VAE.nats:.2f} nats (K = {BURDA_VAE.k:,}): "
            f"best - paper {r['iwae_nll'] - BURDA_VAE.nats:+.2f}")
        peak = max([r["memory_gb"]] + [run["memory_gb"] for runs in
                                       results.get("models", {}).get("runs", {}).values()
                                       for run in runs])
        add("peak memory (models, best)", f"{peak:.1f} GB")
    if "chapters" in results:
        times = results["chapters"]
        for name, seconds in times.items():
            add(f"chapter {name}", f"{seconds:.0f} s")
        total = sum(times.values())
        budget = ("QUICK = True" if quick
                  else f"budget {CHAPTERS_BUDGET_S / 60:.0f} min")
        add("all chapters", f"{total:.0f} s = {total / 60:.1f} min ({budget})")
    if "explorer" in results:
        r = results["explorer"]
        for name in ("decode", "update", "posterior", "switch"):
            add(f"explorer {name}, median (p95)",
                f"{np.median(r[name]):.2f} ms ({np.quantile(r[name], 0.95):.2f})")
        add("explorer, longest hold of the page", f"{np.max(r['held']):.0f} ms")
        add("explorer page", f"{r['html_kB']:.0f} kB")
    return lines


# --- the command line -----------------------------------------------------------------------


def _settings(args: argparse.Namespace, row: str) -> dict[str, Any]:
    """A row's budget: the full or the quick one, with the options given on the command line."""
    settings = dict((QUICK if args.quick else FULL)[row])
    for name in settings:
        if getattr(args, name, None) is not None:
            settings[name] = getattr(args, name)
    return settings


def _count(n: int, noun: str) -> str:
    """'1 step', '3 steps'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _section(title: str) -> None:
    """A row's heading in the output (the test finds the summary by its heading)."""
    print(f"\n== {title} ==", flush=True)


def run_numpy(args: argparse.Namespace) -> dict[str, float]:
    """Row 1 with the command line's budget, printed."""
    settings = _settings(args, "numpy")
    result = bench_numpy(**settings)
    print_numpy(result, settings)
    return result


def run_models(args: argparse.Namespace) -> dict[str, Any]:
    """Rows 2 and 3 with the command line's budget, printed."""
    settings = _settings(args, "models")
    print(f"{CONV} and {MLP} ({settings['seeds']} seeds each) and {CHAPTER_2}, "
          f"{settings['seconds']:g} s of training each;\n"
          f"{MIXTURE}, {settings['mixture_iterations']} EM iterations\n{MODEL_HEADER}",
          flush=True)
    results = bench_models(**settings)
    print_models(results, settings)
    return results


def run_best(args: argparse.Namespace) -> dict[str, Any]:
    """Row 3b, the book's best model against the paper, printed."""
    settings = _settings(args, "best")
    print(f"{BEST}: {_conv_config()}, {CONV_RECIPE}, {settings['best_seconds']:g} s\n"
          f"{MODEL_HEADER}", flush=True)
    result = bench_best(**settings)
    print_best(result, settings)
    return result


def run_conv(args: argparse.Namespace) -> dict[str, Any]:
    """``python -m book.bench conv``: rows 2 and 3, then row 3b."""
    _section(ROWS["models"][0])
    models = run_models(args)
    _section(ROWS["best"][0])
    return {"models": models, "best": run_best(args)}


def run_chapters(args: argparse.Namespace) -> dict[str, float]:
    """Row 4, each chapter printed as it finishes, then the total."""
    print(f"each chapter of _toc.yml in a fresh kernel, QUICK = {args.quick}", flush=True)
    times = bench_chapters(args.quick, report=print_chapter)
    print_chapter("all chapters", sum(times.values()))
    return times


def run_explorer(args: argparse.Namespace) -> dict[str, Any]:
    """Row 5 with the command line's budget, printed."""
    settings = _settings(args, "explorer")
    result = bench_explorer(**settings)
    print_explorer(result, settings)
    return result


ROWS = {"numpy": ("1. NumPy vs PyTorch: training throughput", run_numpy),
        "models": ("2. and 3. the models at equal wall-clock time, and their NLL", run_models),
        "best": ("3b. the book's best model against Burda et al. (2015)", run_best),
        "chapters": ("4. executing every chapter", run_chapters),
        "explorer": ("5. the explorer's decode in the browser", run_explorer)}


def _check_prerequisites() -> None:
    """Fail before the first row, not half an hour in: the chapters and the browser."""
    from book import browser

    chapter_notebooks()
    _papermill()
    problem = browser.missing()
    if problem:
        raise RuntimeError(f"the explorer's row needs headless Chromium: {problem}. The other "
                           "rows run alone: python -m book.bench numpy | conv | chapters")


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every row in turn, each printed as it finishes; then the machine and the summary."""
    _check_prerequisites()
    header = machine() + ["budget: " + ("QUICK, a smoke test (its numbers are not results)"
                                        if args.quick else "the book's")]
    print("\n".join(header))
    results = {}
    for row, (title, run) in ROWS.items():
        _section(title)
        results[row] = run(args)
    _section("summary")
    settings = {row: _settings(args, row) for row in FULL}
    header = machine() + header[-1:]  # again: a row may have downloaded the data
    print("\n".join(header + summary(results, settings, args.quick)), flush=True)
    return results


# What each budget option means, for --help.
HELP = {"batch_size": "images per step", "hidden": "hidden units", "z_dim": "latent size",
        "steps": "steps per timed block", "repeats": "timed blocks of each library",
        "warmup": "steps before the clock starts", "seconds": "training time of each VAE",
        "k": "IWAE samples", "n_test": "score only the first N test images",
        "seeds": "training seeds of the conv-VAE and the MLP",
        "mixture_iterations": "EM iterations of the mixture",
        "best_seconds": "training time of the book's best model",
        "best_k": "IWAE samples for the best model",
        "updates": "random points timed", "images": "training images of the 2-D model first",
        "posteriors": "test digits whose exact posterior is timed",
        "switches_per_model": "switches to each of the four models, timed"}


def _add_budget_options(parser: argparse.ArgumentParser, names: list[str],
                        default: Any) -> None:
    """--quick, and the options ``names`` of a budget.

    ``default`` is None on the main parser and argparse.SUPPRESS on a subcommand's, so that
    a subcommand keeps what the main parser read (``--quick numpy`` as ``numpy --quick``).
    """
    parser.add_argument("--quick", action="store_true",
                        default=False if default is None else default,
                        help="a tiny budget: a smoke test of seconds, not results")
    for name in names:
        full, quick = (next(b[name] for b in budgets.values() if name in b)
                       for budgets in (FULL, QUICK))
        parser.add_argument("--" + name.replace("_", "-"), default=default,
                            type=float if name.endswith("seconds") else int,
                            help=f"{HELP[name]} (full: {full or 'all'}, "
                                 f"quick: {quick})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m book.bench",
                                     description=__doc__.split("\n\n")[0])
    _add_budget_options(parser, ["seconds", "k", "n_test", "seeds", "best_seconds", "best_k"],
                        None)
    commands = parser.add_subparsers(dest="command")
    for name, help_text, row, run in (
            ("numpy", "NumPy VAE vs the same model in PyTorch, CPU training throughput",
             "numpy", run_numpy),
            ("conv", "conv-VAE vs the MLP VAEs and a Bernoulli mixture at equal training "
             "time, then the book's best model against Burda et al.", "conv", run_conv),
            ("best", "the book's best model alone, against Burda et al.", "best", run_best),
            ("chapters", "the time to execute each chapter", None, run_chapters),
            ("explorer", "the static explorer's decode and update time in headless Chromium",
             "explorer", run_explorer)):
        command = commands.add_parser(name, help=help_text)
        names = ([*FULL["models"], *FULL["best"]] if row == "conv"
                 else list(FULL[row]) if row else [])
        _add_budget_options(command, list(dict.fromkeys(names)), argparse.SUPPRESS)
        command.set_defaults(run=run)
    args = parser.parse_args(argv)
    if args.command is None:
        run_all(args)
        return
    print("\n".join(machine()))
    args.run(args)


if __name__ == "__main__":
    main()
