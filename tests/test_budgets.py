"""Every chapter's training budget is a number of images: the same on any training set.

The chapters run once more, with ``QUICK = True``, on a training set of another size (the first
3,000 training images and 600 test images of the data the tests use); each training run of
each chapter must process exactly as many images as in the suite's main run, whatever the size.
"""
from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest

from book.data import DatasetError, load_dataset
from conftest import copy_book, run_chapters


def write_idx(path, array: np.ndarray, images: bool) -> None:
    """``array`` as a gzip-compressed IDX file, as MNIST ships it."""
    header = (struct.pack(">IIII", 2051, len(array), 28, 28) if images
              else struct.pack(">II", 2049, len(array)))
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture(scope="module")
def smaller_data(tmp_path_factory):
    """A copy of the tests' MNIST with fewer training and test images."""
    try:
        splits = {split: load_dataset("mnist", split, download=False, verbose=False)
                  for split in ("train", "test")}
    except DatasetError as error:
        pytest.skip(f"MNIST is not available offline: {error}")
    root = tmp_path_factory.mktemp("smaller-data")
    (root / "mnist").mkdir()
    for split, count, prefix in (("train", 3000, "train"), ("test", 600, "t10k")):
        images, labels = splits[split]
        assert len(images) > count, "the tests' data must be larger than the smaller copy"
        write_idx(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz", images[:count], True)
        write_idx(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", labels[:count], False)
    yield root
    shutil.rmtree(root)


@pytest.mark.slow
def test_every_chapter_trains_on_as_many_images_whatever_the_data(executed_runs,
                                                                 smaller_data,
                                                                 tmp_path_factory):
    _, _, trained = executed_runs
    root = copy_book(tmp_path_factory.mktemp("book-on-smaller-data"))
    outcomes, trained_small = run_chapters(root, tmp_path_factory.mktemp("site-smaller"),
                                           smaller_data)
    for chapter, error in outcomes.items():
        assert error is None, f"{chapter} failed on the smaller data: {error}"
    assert any(trained.values()), "no chapter trained a model: the recording broke"
    for chapter, runs in trained.items():
        small = trained_small[chapter]
        assert [r["loop"] for r in small] == [r["loop"] for r in runs], chapter
        for main, other in zip(runs, small):
            if main["train"] != other["train"]:  # trained on the whole training set
                assert main["images"] == other["images"], (
                    f"{chapter}: {main['images']:,} images on {main['train']:,} training "
                    f"images, {other['images']:,} on {other['train']:,}: a budget in epochs?")
