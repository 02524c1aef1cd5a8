"""Load MNIST and Fashion-MNIST as NumPy arrays: the book's one dataset loader.

``load_dataset("mnist")`` looks for the four standard gzip-compressed IDX files in
``<data_dir()>/mnist/``, downloads any that are missing from the dataset's public homes
(checking the published checksums), checks what it reads, and returns uint8 images
``(N, 28, 28)`` with int64 labels ``(N,)``. It prints one line saying what it loaded and from
where, so that results computed on a subset are recognisable as such. Every failure raises
``DatasetError`` with a message that says what to do.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from book.files import atomic_write

ENV_VAR = "VAE_BOOK_DATA"
TIMEOUT_S = 60  # seconds without a byte before a download is given up
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
ROWS = COLS = 28

# Checksums of the .gz files as served publicly: MD5s as listed by torchvision's MNIST and
# FashionMNIST classes (and Fashion-MNIST's README), SHA-256s as listed by torchvision's
# prototype datasets (and, for Fashion-MNIST, by keras.datasets.fashion_mnist).
# They are checked on downloads only: local copies may be recompressed (Debian's are).
DATASETS: dict[str, dict] = {
    "mnist": {
        "mirrors": [
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        "counts": {"train": 60_000, "test": 10_000},
        "files": {
            "train-images-idx3-ubyte.gz": {
                "md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "sha256": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            },
            "train-labels-idx1-ubyte.gz": {
                "md5": "d53e105ee54ea40749a09fcbcd1e9432",
                "sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            },
            "t10k-images-idx3-ubyte.gz": {
                "md5": "9fb629c4189551a2d022fa330f9573f3",
                "sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            },
            "t10k-labels-idx1-ubyte.gz": {
                "md5": "ec29112dd5afa0611ce80d1b7f02629c",
                "sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            },
        },
    },
    "fashion-mnist": {
        "mirrors": [
            ("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
             "data/fashion/"),
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        ],
        "counts": {"train": 60_000, "test": 10_000},
        "files": {
            "train-images-idx3-ubyte.gz": {
                "md5": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "sha256": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            },
            "train-labels-idx1-ubyte.gz": {
                "md5": "25c81989df183df01b3e8a0aad5dffbe",
                "sha256": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            },
            "t10k-images-idx3-ubyte.gz": {
                "md5": "bef4ecab320f06d8554ea6380940ec79",
                "sha256": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            },
            "t10k-labels-idx1-ubyte.gz": {
                "md5": "bb300cfdad3c16e7a12a480ee83cd310",
                "sha256": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            },
        },
    },
}


class DatasetError(RuntimeError):
    """A dataset could not be found, downloaded or read; the message says what to do."""


class _Malformed(ValueError):
    """What is wrong with a file's content (the caller adds which file and what to do)."""


def data_dir() -> Path:
    """Where datasets live: ``$VAE_BOOK_DATA`` if set, else a per-user cache folder."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "vae-book"


def load_dataset(
    name: str,
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    download: bool = True,
    verbose: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8, ``(N, 28, 28)``) and labels (int64, ``(N,)``) of one split of a dataset.

    Looks in ``<root>/<name>/`` (``root`` defaults to ``data_dir()``); a missing file is
    downloaded from ``mirrors`` (base URLs tried in order; default: the dataset's public
    homes) unless ``download`` is False.
    """
    if name not in DATASETS:
        raise DatasetError(f"Unknown dataset {name!r}; "
                           f"choose one of {', '.join(map(repr, DATASETS))}.")
    if split not in SPLITS:
        raise DatasetError(f"Unknown split {split!r}; "
                           f"choose one of {', '.join(map(repr, SPLITS))}.")
    folder = Path(root if root is not None else data_dir()).expanduser() / name
    image_path, label_path = (folder / file for file in SPLITS[split])
    for path in (image_path, label_path):
        if not path.is_file():
            _obtain(path, name, mirrors, download, verbose)

    images = _read_local(image_path)
    labels = _read_local(label_path)
    if len(images) != len(labels):
        raise DatasetError(
            f"{image_path} holds {len(images):,} images but {label_path} holds "
            f"{len(labels):,} labels: the two files do not belong together. Delete both so "
            "that they are downloaded again."
        )
    if verbose:
        full = DATASETS[name]["counts"][split]
        note = f", a subset: the full split has {full:,}" if len(images) < full else ""
        print(f"Loaded {name}/{split}: {len(images):,} images{note}\n  from {folder}")
    return images, labels.astype(np.int64)


def to_unit_interval(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 gray levels 0..255 as floats in [0, 1]."""
    if images.dtype != np.uint8:
        # A float input has most likely been scaled already; dividing again would be silent.
        raise TypeError(
            f"expected uint8 images (0..255) as load_dataset returns, got {images.dtype}")
    unit = images.astype(dtype)
    unit /= 255  # in place: no second full-size temporary
    return unit


BINARIZE = ("binarize them first: book.data.observe(images, 'binary', generator) for the uint8 "
            "images load_dataset returns (as a torch tensor), or "
            "book.data.binarize(book.data.to_unit_interval(images), seed) for a NumPy array; "
            "for gray levels use a Gaussian decoder, ConvConfig(likelihood='gaussian')")


def require_binary(x: Any, model: str = "a Bernoulli likelihood") -> Any:
    """``x`` itself (a NumPy array or a torch tensor) if every value is 0 or 1, else a
    ``ValueError`` that says how to binarize.

    Every Bernoulli path of the book (the NumPy VAE, the PyTorch models, the mixture) calls it:
    fed gray levels in [0, 1], the Bernoulli formula still returns numbers, but they are not the
    probability of any data (chapter 2), so they are refused rather than reported in nats.
    """
    off = (x != 0) & (x != 1)
    if bool(off.any()):
        count, value = int(off.sum()), float(x[off].reshape(-1)[0])
        raise ValueError(f"{model} models binary pixels (0 or 1), but {count:,} values of x "
                         f"are neither, for example {value:.4g}: {BINARIZE}")
    return x


def binarize(images01: np.ndarray, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Stochastic binarization: each pixel is 1 with probability equal to its intensity.

    Returns float32 zeros and ones; the same ``seed`` gives the same binary images.
    """
    if images01.size and (images01.min() < 0 or images01.max() > 1):
        raise ValueError("binarize expects intensities in [0, 1]; apply to_unit_interval first")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    # u ~ U[0, 1) gives P(u < p) = p, so p = 0 never turns on and p = 1 always does.
    return (rng.random(images01.shape, dtype=np.float32) < images01).astype(np.float32)


OBSERVATIONS = ("binary", "dequantized", "grey")


def observe(images: Any, kind: str, generator: Any) -> Any:
    """uint8 image tensors as a PyTorch model is trained on them, in float32, same shape.

    "binary": each pixel on with probability pixel / 255 (as ``binarize``), a fresh draw.
    "dequantized": (pixel + u) / 256 with u ~ U(0, 1), a fresh draw: a density over [0, 1)
    is then a density of the 256 gray levels. "grey": pixel / 255, as they are; many pixels
    are exactly 0, where a continuous density can grow without bound.
    Drawn on the images' device with the given ``torch.Generator``. Only raw uint8 images are
    taken: a float input has been prepared already, and dividing it by 255 again would leave
    almost every pixel off.
    """
    import torch

    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise TypeError(f"observe takes the uint8 images (0..255) that load_dataset returns, "
                        f"as a torch tensor; got {getattr(images, 'dtype', type(images))}. "
                        "Pass the raw images (torch.as_tensor(images)), not observed or "
                        "scaled ones: preparing them twice divides by 255 twice")
    grey = images.float()
    if kind == "binary":
        return (grey / 255).bernoulli(generator=generator)
    if kind == "dequantized":
        return (grey + grey.new_empty(grey.shape).uniform_(0, 1, generator=generator)) / 256
    if kind == "grey":
        return grey / 255
    raise ValueError(f"kind must be one of {OBSERVATIONS}, got {kind!r}")


def minibatches(n: int, batch_size: int,
                rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index arrays covering ``range(n)`` once, in order or shuffled by ``rng``.

    The last one may be short.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


# --- finding and downloading files ------------------------------------------------------------


def _layout_hint(folder: Path, name: str) -> str:
    files = ", ".join(f for pair in SPLITS.values() for f in pair)
    return (
        f"The loader looks in {folder}/ for the files {files}. "
        f"Either put them there, or set the environment variable {ENV_VAR} to a folder "
        f"that holds {name}/ with those files in it."
    )


def _obtain(path: Path, name: str, mirrors: Sequence[str] | None, download: bool,
            verbose: bool) -> None:
    """Download ``path`` from the first mirror that serves a verified copy, or raise."""
    if not download:
        raise DatasetError(
            f"{path} is missing and download=False. {_layout_hint(path.parent, name)}")
    if isinstance(mirrors, str):  # a single URL would otherwise be iterated letter by letter
        mirrors = [mirrors]
    bases = list(mirrors) if mirrors is not None else DATASETS[name]["mirrors"]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(
            f"Cannot create {path.parent} to download {path.name} into ({error}). "
            f"Set the environment variable {ENV_VAR} to a folder you can write to."
        ) from error
    failures = []
    for base in bases:
        url = base + ("" if base.endswith("/") else "/") + path.name
        try:
            if verbose:  # on stderr: stdout keeps the single "Loaded ..." line
                print(f"Downloading {url}", file=sys.stderr)
            _fetch(url, path, DATASETS[name]["files"][path.name], progress=verbose)
            return
        except (OSError, http.client.HTTPException, ValueError, EOFError, zlib.error) as error:
            # URLError/HTTPError/timeouts are OSErrors; all mean "try the next mirror".
            failures.append(f"  {url}: {_describe(error)}")
    tried = "\n".join(failures) or "  (no mirrors were given)"
    raise DatasetError(
        f"Could not download {path.name} for {name}. Tried:\n{tried}\n"
        f"Check the internet connection and try again, or download the files by hand. "
        f"{_layout_hint(path.parent, name)}"
    )


def _describe(error: BaseException) -> str:
    """A short reason for a failed download, e.g. 'HTTP 404 Not Found', 'Connection refused'."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(getattr(error.reason, "strerror", None) or error.reason)
    return str(error) or type(error).__name__


def _fetch(url: str, path: Path, checksums: dict[str, str], progress: bool = False) -> None:
    """Stream ``url`` to a temporary file beside ``path``; move it into place once verified
    (``book.files.atomic_write``: a failed or corrupt download leaves nothing behind)."""
    hashes = {algorithm: hashlib.new(algorithm) for algorithm in checksums}
    with (urllib.request.urlopen(url, timeout=TIMEOUT_S) as response,
          atomic_write(path) as out):
        expected = response.headers.get("Content-Length")
        received = 0
        with tqdm(total=int(expected) if expected else None, unit="B", unit_scale=True,
                  desc=path.name, disable=not progress, leave=False) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
                for digest in hashes.values():
                    digest.update(chunk)
        # http.client returns short reads silently when a connection drops,
        # so count the bytes.
        if expected is not None and received != int(expected):
            raise _Malformed(
                f"connection dropped: received {received:,} of {int(expected):,} bytes")
        for algorithm, digest in hashes.items():
            if digest.hexdigest() != checksums[algorithm].lower():
                raise _Malformed(
                    f"{algorithm.upper()} checksum mismatch (got {digest.hexdigest()}, "
                    f"expected {checksums[algorithm]}): "
                    "the download is corrupt or not the published file"
                )
        out.flush()
        _parse_idx(gzip.decompress(Path(out.name).read_bytes()), images="images" in path.name)


# --- reading and checking files ---------------------------------------------------------------


def _read_local(path: Path) -> np.ndarray:
    """The array in a gzip-compressed IDX file, checked structurally (not by checksum)."""
    try:
        compressed = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"Cannot read {path} ({error}).") from error
    try:
        raw = gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(
            f"{path} is not a valid, complete gzip file ({error}); it is probably a truncated "
            "or damaged download. Delete it so that it is downloaded again."
        ) from error
    try:
        return _parse_idx(raw, images="images" in path.name)
    except _Malformed as error:
        raise DatasetError(
            f"{path}: {error}. Delete it so that it is downloaded again.") from error


def _parse_idx(raw: bytes, images: bool) -> np.ndarray:
    """Decode decompressed IDX bytes: images ``(N, 28, 28)`` uint8 or labels ``(N,)`` uint8."""
    magic, header = (2051, 16) if images else (2049, 8)
    if len(raw) < header:
        raise _Malformed(f"only {len(raw)} bytes, shorter than the {header}-byte IDX header")
    found, count = struct.unpack(">II", raw[:8])
    if found != magic:
        kind = "image" if images else "label"
        raise _Malformed(f"IDX magic number is {found}, not {magic} as in an MNIST {kind} file")
    if images:
        rows, cols = struct.unpack(">II", raw[8:16])
        if (rows, cols) != (ROWS, COLS):
            raise _Malformed(f"images are {rows}x{cols}, not {ROWS}x{COLS}")
    expected = count * (ROWS * COLS if images else 1)
    if len(raw) - header != expected:
        raise _Malformed(
            f"header says {count:,} items ({expected:,} bytes) "
            f"but {len(raw) - header:,} bytes follow it"
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if images:
        # A writable array that owns its memory:
        return array.reshape(count, ROWS, COLS).copy()
    if count and array.max() > 9:
        raise _Malformed(f"labels must be 0..9, found {array.max()}")
    return array
