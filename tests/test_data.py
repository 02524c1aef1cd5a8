"""Tests of book/data.py: downloads against a local HTTP server, checks of damaged files, the
offline copies of the real datasets, and the small array helpers.

No test reaches the internet: every download goes to a server on 127.0.0.1 started here, and
an autouse fixture fails any test that would open another address.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import socket
import struct
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from book import data
from book.data import DatasetError, binarize, data_dir, load_dataset, minibatches, to_unit_interval

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("VAE_BOOK_DATA") or REPO.parent / "shared" / "data")
needs_real_data = pytest.mark.skipif(
    not (REAL_DATA / "mnist").is_dir() or not (REAL_DATA / "fashion-mnist").is_dir(),
    reason=f"offline dataset copies not found in {REAL_DATA} (set VAE_BOOK_DATA)",
)

TRAIN_IMAGES, TRAIN_LABELS = data.SPLITS["train"]
N_TRAIN, N_TEST = 20, 8


# --- building IDX files ------------------------------------------------------------------------


def idx_images(images: np.ndarray, magic: int = 2051, count: int | None = None) -> bytes:
    n, rows, cols = images.shape
    header = struct.pack(">IIII", magic, n if count is None else count, rows, cols)
    return header + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray, magic: int = 2049, count: int | None = None) -> bytes:
    return struct.pack(">II", magic, len(labels) if count is None else count) + labels.astype(np.uint8).tobytes()


def gz(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)  # mtime=0: the same bytes, hence checksums, every run


def make_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def leftovers(folder: Path) -> list[str]:
    """Names in ``folder`` that are not one of the four final file names (temporary files)."""
    final = {f for pair in data.SPLITS.values() for f in pair}
    return sorted(p.name for p in folder.iterdir() if p.name not in final) if folder.exists() else []


# --- a local HTTP server that can misbehave ----------------------------------------------------


class Mirrors:
    """Files served at ``http://127.0.0.1:<port>/<mirror>/<file>``; ``modes[mirror]`` picks how.

    Modes: "ok", "404", "500", "drop" (Content-Length promises more than is sent, then the
    connection closes), "corrupt" (one byte flipped: checksum mismatch).
    """

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.modes: dict[str, str] = {}
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # A short poll interval makes shutdown() quick.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def url(self, mirror: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{mirror}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def _handler(self):
        mirrors = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest's output clean
                pass

            def do_GET(self) -> None:
                mirrors.requests.append(self.path)
                mirror, _, name = self.path.lstrip("/").partition("/")
                mode = mirrors.modes.get(mirror, "ok")
                body = mirrors.files.get(name)
                if body is None or mode == "404":
                    self.send_error(404)
                    return
                if mode == "500":
                    self.send_error(500)
                    return
                if mode == "corrupt":
                    body = flip_middle_byte(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "drop":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler


@pytest.fixture
def dataset() -> dict:
    """Small valid MNIST-format files (20 train, 8 test images) and their arrays."""
    train, test = make_split(N_TRAIN, seed=1), make_split(N_TEST, seed=2)
    files = {}
    for (images_name, labels_name), (images, labels) in zip(data.SPLITS.values(), (train, test)):
        files[images_name] = gz(idx_images(images))
        files[labels_name] = gz(idx_labels(labels))
    return {"files": files, "train": train, "test": test}


@pytest.fixture
def mirrors(dataset, monkeypatch):
    """A running server with the small files, which the checksum table now calls canonical."""
    use_checksums_of(monkeypatch, dataset["files"])
    server = Mirrors(dataset["files"])
    yield server
    server.close()


def use_checksums_of(monkeypatch, files: dict[str, bytes]) -> None:
    table = {
        name: {"md5": hashlib.md5(body).hexdigest(), "sha256": hashlib.sha256(body).hexdigest()}
        for name, body in files.items()
    }
    monkeypatch.setitem(data.DATASETS["mnist"], "files", table)


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch, tmp_path):
    """Fail any test that would open a non-local URL; never read the user's real cache."""
    real_urlopen = urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        host = urllib.parse.urlsplit(url if isinstance(url, str) else url.full_url).hostname
        assert host == "127.0.0.1", f"a test tried to reach {url}"
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)
    monkeypatch.setenv("VAE_BOOK_DATA", str(tmp_path / "default-data-dir"))


def write_local(root: Path, files: dict[str, bytes]) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return folder


# --- downloads ---------------------------------------------------------------------------------


def test_download_success(mirrors, dataset, tmp_path, capsys, closed_port_url):
    images, labels = load_dataset("mnist", "train", root=tmp_path, mirrors=[mirrors.url("a")])

    assert images.shape == (N_TRAIN, 28, 28) and images.dtype == np.uint8 and images.flags.c_contiguous
    assert labels.shape == (N_TRAIN,) and labels.dtype == np.int64
    np.testing.assert_array_equal(images, dataset["train"][0])
    np.testing.assert_array_equal(labels, dataset["train"][1])
    folder = tmp_path / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted([TRAIN_IMAGES, TRAIN_LABELS])
    assert (folder / TRAIN_IMAGES).read_bytes() == dataset["files"][TRAIN_IMAGES]
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Loaded mnist/train: {N_TRAIN} images, a subset: the full split has 60,000",
                   f"  from {folder}"]

    # The second load uses the files on disk: no request, even with no reachable mirror.
    requests = len(mirrors.requests)
    again, _ = load_dataset("mnist", "train", root=tmp_path, mirrors=[closed_port_url], verbose=False)
    np.testing.assert_array_equal(again, images)
    assert len(mirrors.requests) == requests
    assert capsys.readouterr().out == ""


def test_download_test_split(mirrors, dataset, tmp_path):
    images, labels = load_dataset("mnist", "test", root=str(tmp_path), mirrors=[mirrors.url("a")], verbose=False)
    np.testing.assert_array_equal(images, dataset["test"][0])
    np.testing.assert_array_equal(labels, dataset["test"][1])


@pytest.mark.parametrize("mode", ["404", "500", "drop", "corrupt"])
def test_falls_back_to_next_mirror(mirrors, dataset, tmp_path, mode):
    mirrors.modes["bad"] = mode
    urls = [mirrors.url("bad"), mirrors.url("good")]
    images, _ = load_dataset("mnist", root=tmp_path, mirrors=urls, verbose=False)

    np.testing.assert_array_equal(images, dataset["train"][0])
    assert mirrors.requests[:2] == [f"/bad/{TRAIN_IMAGES}", f"/good/{TRAIN_IMAGES}"]
    assert leftovers(tmp_path / "mnist") == []


def test_http_errors_on_all_mirrors(mirrors, tmp_path):
    mirrors.modes.update({"a": "404", "b": "500"})
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", root=tmp_path, mirrors=[mirrors.url("a"), mirrors.url("b")])

    message = str(info.value)
    assert f"Could not download {TRAIN_IMAGES}" in message
    assert f"{mirrors.url('a')}{TRAIN_IMAGES}: HTTP 404" in message
    assert f"{mirrors.url('b')}{TRAIN_IMAGES}: HTTP 500" in message
    assert "connection" in message and "VAE_BOOK_DATA" in message and str(tmp_path / "mnist") in message
    assert leftovers(tmp_path / "mnist") == []


def test_connection_dropped_mid_transfer(mirrors, tmp_path):
    mirrors.modes["a"] = "drop"
    with pytest.raises(DatasetError, match=r"connection dropped: received [\d,]+ of [\d,]+ bytes"):
        load_dataset("mnist", root=tmp_path, mirrors=[mirrors.url("a")])
    assert leftovers(tmp_path / "mnist") == []
    assert not (tmp_path / "mnist" / TRAIN_IMAGES).exists()


def test_checksum_mismatch(mirrors, tmp_path):
    mirrors.modes["a"] = "corrupt"
    with pytest.raises(DatasetError, match=rf"(?s){TRAIN_IMAGES}.*checksum mismatch"):
        load_dataset("mnist", root=tmp_path, mirrors=[mirrors.url("a")])
    assert leftovers(tmp_path / "mnist") == []


def test_download_with_right_checksum_but_truncated_gzip(mirrors, dataset, monkeypatch, tmp_path):
    # Were a published checksum to describe a damaged file, the structural check still catches it.
    files = dict(dataset["files"])
    files[TRAIN_IMAGES] = files[TRAIN_IMAGES][:-40]
    mirrors.files = files
    use_checksums_of(monkeypatch, files)
    with pytest.raises(DatasetError, match=rf"(?s){TRAIN_IMAGES}.*end-of-stream"):
        load_dataset("mnist", root=tmp_path, mirrors=[mirrors.url("a")])
    assert leftovers(tmp_path / "mnist") == []


def test_download_with_right_checksum_but_wrong_content(mirrors, dataset, monkeypatch, tmp_path):
    files = dict(dataset["files"])
    files[TRAIN_IMAGES] = gz(idx_images(dataset["train"][0], magic=2049))
    mirrors.files = files
    use_checksums_of(monkeypatch, files)
    with pytest.raises(DatasetError, match="magic number is 2049"):
        load_dataset("mnist", root=tmp_path, mirrors=[mirrors.url("a")])
    assert leftovers(tmp_path / "mnist") == []


def test_offline_with_download_false(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", root=tmp_path, download=False)
    message = str(info.value)
    assert "download=False" in message and "VAE_BOOK_DATA" in message
    assert str(tmp_path / "mnist" / TRAIN_IMAGES) in message
    assert all(name in message for pair in data.SPLITS.values() for name in pair)
    assert leftovers(tmp_path / "mnist") == []


def test_offline_no_server(tmp_path, closed_port_url):
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion-mnist", "test", root=tmp_path, mirrors=[closed_port_url])
    message = str(info.value)
    assert f"{closed_port_url}t10k-images-idx3-ubyte.gz: Connection refused" in message
    assert "VAE_BOOK_DATA" in message and str(tmp_path / "fashion-mnist") in message
    assert "train-images-idx3-ubyte.gz" in message  # the whole expected layout is named
    assert leftovers(tmp_path / "fashion-mnist") == []


def test_no_mirrors_at_all(tmp_path):
    with pytest.raises(DatasetError, match="no mirrors were given"):
        load_dataset("mnist", root=tmp_path, mirrors=[])


# --- files already on disk ---------------------------------------------------------------------


def train_files(dataset, images: bytes | None = None, labels: bytes | None = None) -> dict[str, bytes]:
    """The two train files of ``dataset``, with either replaced by the bytes given."""
    files = dataset["files"]
    return {TRAIN_IMAGES: images or files[TRAIN_IMAGES], TRAIN_LABELS: labels or files[TRAIN_LABELS]}


def flip_middle_byte(body: bytes) -> bytes:
    middle = len(body) // 2
    return body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]


NOT_GZIP = "not a valid, complete gzip file"
# case: (which train file is bad, its bytes from (images x, labels y, the good .gz), what the error says)
BAD_LOCAL_FILES = {
    "truncated gzip": ("images", lambda x, y, good: good[:-100], NOT_GZIP),
    "not gzip at all": ("labels", lambda x, y, good: b"<html>Not Found</html>", NOT_GZIP),
    "corrupt gzip bytes": ("images", lambda x, y, good: flip_middle_byte(good), NOT_GZIP),
    "wrong magic": ("images", lambda x, y, good: gz(idx_images(x, magic=2049)), "magic number is 2049, not 2051"),
    "wrong label magic": ("labels", lambda x, y, good: gz(idx_labels(y, magic=2051)), "magic number is 2051, not 2049"),
    "wrong image size": ("images", lambda x, y, good: gz(idx_images(x[:, :27, :])), "images are 27x28, not 28x28"),
    "header count > data": ("images", lambda x, y, good: gz(idx_images(x, count=N_TRAIN + 1)), "header says 21 items"),
    "header count < data": ("labels", lambda x, y, good: gz(idx_labels(y, count=N_TRAIN - 1)), "header says 19 items"),
    "shorter than header": ("labels", lambda x, y, good: gz(b"\x00\x00\x08"), "shorter than the 8-byte IDX header"),
    "label out of range": ("labels", lambda x, y, good: gz(idx_labels(np.r_[y[:-1], 10])), "labels must be 0..9, found 10"),
}


@pytest.mark.parametrize("case", list(BAD_LOCAL_FILES))
def test_damaged_local_file(dataset, tmp_path, closed_port_url, case):
    which, make, problem = BAD_LOCAL_FILES[case]
    file = TRAIN_IMAGES if which == "images" else TRAIN_LABELS
    bad = make(*dataset["train"], dataset["files"][file])
    folder = write_local(tmp_path, train_files(dataset, **{which: bad}))
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", root=tmp_path, mirrors=[closed_port_url])
    message = str(info.value)
    assert problem in message and str(folder / file) in message and "Delete it" in message
    assert leftovers(folder) == []


def test_image_label_count_mismatch(dataset, tmp_path):
    images, labels = dataset["train"]
    folder = write_local(tmp_path, train_files(dataset, labels=gz(idx_labels(labels[:-1]))))
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", root=tmp_path, download=False)
    message = str(info.value)
    assert f"holds {N_TRAIN} images but" in message and f"holds {N_TRAIN - 1} labels" in message
    assert str(folder / TRAIN_IMAGES) in message and str(folder / TRAIN_LABELS) in message


def test_local_files_are_not_checked_against_download_checksums(dataset, tmp_path, monkeypatch):
    # A recompressed copy (different .gz bytes, same content) must load: Debian's copies are such.
    monkeypatch.setitem(data.DATASETS["mnist"], "files", {})
    recompressed = {name: gzip.compress(gzip.decompress(body), compresslevel=1, mtime=123)
                    for name, body in dataset["files"].items()}
    assert recompressed[TRAIN_IMAGES] != dataset["files"][TRAIN_IMAGES]
    write_local(tmp_path, recompressed)
    images, labels = load_dataset("mnist", root=tmp_path, download=False, verbose=False)
    np.testing.assert_array_equal(images, dataset["train"][0])


def test_default_root_is_data_dir(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAE_BOOK_DATA", str(tmp_path / "elsewhere"))
    write_local(tmp_path / "elsewhere", dataset["files"])
    images, _ = load_dataset("mnist", "test", download=False)
    assert images.shape == (N_TEST, 28, 28)
    assert str(tmp_path / "elsewhere" / "mnist") in capsys.readouterr().out


# --- arguments and configuration -------------------------------------------------------------


def test_unknown_name(tmp_path):
    with pytest.raises(DatasetError, match=r"Unknown dataset 'cifar'.*'mnist', 'fashion-mnist'"):
        load_dataset("cifar", root=tmp_path, download=False)


def test_unknown_split(tmp_path):
    with pytest.raises(DatasetError, match=r"Unknown split 'validation'.*'train', 'test'"):
        load_dataset("mnist", "validation", root=tmp_path, download=False)


def test_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_BOOK_DATA", str(tmp_path / "data"))
    assert data_dir() == tmp_path / "data"
    monkeypatch.delenv("VAE_BOOK_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "vae-book"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "vae-book"


def test_dataset_table():
    for name, spec in data.DATASETS.items():
        assert spec["mirrors"] and all(url.startswith("https://") for url in spec["mirrors"]), name
        assert spec["counts"] == {"train": 60_000, "test": 10_000}
        assert set(spec["files"]) == {f for pair in data.SPLITS.values() for f in pair}
        for checksums in spec["files"].values():
            assert len(checksums["md5"]) == 32 and len(checksums["sha256"]) == 64


# --- the real datasets (offline copies) --------------------------------------------------------


@needs_real_data
@pytest.mark.parametrize(
    "name, split, n", [("mnist", "train", 8004), ("mnist", "test", 1996),
                       ("fashion-mnist", "train", 60000), ("fashion-mnist", "test", 10000)]
)
def test_real_dataset(name, split, n, capsys):
    images, labels = load_dataset(name, split, root=REAL_DATA, download=False)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8 and images.flags.c_contiguous
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() <= 9 and len(np.unique(labels)) == 10
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"Loaded {name}/{split}: {n:,} images")
    assert line.endswith(f"\n  from {REAL_DATA / name}")
    assert ("a subset: the full split has" in line) == (name == "mnist")


def readme_sha256() -> dict[str, str]:
    """The SHA-256 of the decompressed content of each file, as listed in the shared README."""
    text = (REAL_DATA / "README.md").read_text() if (REAL_DATA / "README.md").is_file() else ""
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64 and not parts[1].endswith(".gz"):
            sums[parts[1]] = parts[0]
    return sums


@needs_real_data
@pytest.mark.parametrize("relative", ["fashion-mnist/train-images-idx3-ubyte", "fashion-mnist/t10k-labels-idx1-ubyte",
                                      "mnist/train-images-idx3-ubyte", "mnist/t10k-labels-idx1-ubyte"])
def test_real_content_matches_readme(relative):
    sums = readme_sha256()
    if relative not in sums:
        pytest.skip(f"{REAL_DATA / 'README.md'} lists no SHA-256 for {relative}")
    content = gzip.decompress((REAL_DATA / f"{relative}.gz").read_bytes())
    assert hashlib.sha256(content).hexdigest() == sums[relative]
    # ... and the loader returns exactly that content.
    name, file = relative.split("/")
    split = "train" if file.startswith("train") else "test"
    images, labels = load_dataset(name, split, root=REAL_DATA, download=False, verbose=False)
    array = images if "images" in file else labels.astype(np.uint8)
    assert array.tobytes() == content[16 if "images" in file else 8 :]


@needs_real_data
def test_truncated_copy_of_real_file(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for file in data.SPLITS["train"]:
        shutil.copy(REAL_DATA / "mnist" / file, folder / file)
    cut = folder / TRAIN_IMAGES
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    with pytest.raises(DatasetError, match=rf"{cut}.*not a valid, complete gzip file.*Delete it"):
        load_dataset("mnist", root=tmp_path, download=False)


# --- array helpers -----------------------------------------------------------------------------


def test_to_unit_interval():
    images = np.array([[0, 128, 255]], dtype=np.uint8)
    unit = to_unit_interval(images)
    assert unit.dtype == np.float32 and unit.min() == 0.0 and unit.max() == 1.0
    np.testing.assert_allclose(unit, images / 255.0, rtol=1e-6)
    assert to_unit_interval(images, dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="uint8"):
        to_unit_interval(unit)


def test_binarize():
    rng = np.random.default_rng(0)
    images01 = to_unit_interval(rng.integers(0, 256, (200, 28, 28), dtype=np.uint8))
    binary = binarize(images01, seed=3)
    assert binary.dtype == np.float32 and binary.shape == images01.shape
    assert set(np.unique(binary)) <= {0.0, 1.0}
    np.testing.assert_array_equal(binary, binarize(images01, seed=3))
    assert not np.array_equal(binary, binarize(images01, seed=4))
    np.testing.assert_array_equal(binary, binarize(images01, seed=np.random.default_rng(3)))
    assert abs(binary.mean() - images01.mean()) < 0.01  # 156,800 Bernoulli draws: sd ~ 0.0013
    edges = np.array([0.0, 1.0], dtype=np.float32)
    np.testing.assert_array_equal(binarize(np.tile(edges, 1000), seed=0), np.tile(edges, 1000))
    with pytest.raises(ValueError, match="to_unit_interval"):
        binarize(np.array([0.0, 255.0]))


def test_minibatches_in_order():
    batches = list(minibatches(10, 4))
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(minibatches(0, 4)) == []
    with pytest.raises(ValueError):
        list(minibatches(10, 0))


def test_minibatches_shuffled():
    batches = list(minibatches(103, 10, np.random.default_rng(7)))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    everything = np.concatenate(batches)
    assert sorted(everything.tolist()) == list(range(103))  # every index exactly once
    assert everything.tolist() != list(range(103))
    again = np.concatenate(list(minibatches(103, 10, np.random.default_rng(7))))
    np.testing.assert_array_equal(everything, again)
    other = np.concatenate(list(minibatches(103, 10, np.random.default_rng(8))))
    assert not np.array_equal(everything, other)
