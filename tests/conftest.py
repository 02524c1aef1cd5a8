"""Shared fixtures: where the offline data is, and the book executed once with its small budget.

Executing the chapters is the slow part of the suite, so it happens once per session, in a
copy of the book, and both the notebook tests and the website tests use that copy.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tools.chapters import ROOT, chapter_notebooks

SHARED_DATA = ROOT.parent / "shared" / "data"

# The tests never download: they use VAE_BOOK_DATA when it is set, else the offline copies
# beside the repository when they exist (as on CI).
if "VAE_BOOK_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["VAE_BOOK_DATA"] = str(SHARED_DATA)

# What a copy of the book needs to build: sources, the package its chapters import, and assets.
BOOK_SOURCES = ["_config.yml", "_toc.yml", "intro.md", "_ext", "book", "figures", "chapters"]


def copy_book(destination: Path) -> Path:
    """A copy of the book's sources in ``destination`` (MathJax linked, not copied)."""
    for name in BOOK_SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copy2(source, destination / name)
    if (ROOT / "node_modules").is_dir():
        (destination / "node_modules").symlink_to(ROOT / "node_modules")
    return destination


@pytest.fixture(scope="session")
def executed_book(tmp_path_factory) -> tuple[Path, dict[str, BaseException | None]]:
    """A copy of the book whose chapters were run with ``QUICK = True`` in fresh kernels.

    Returns the copy's root and, for each chapter, the exception its run raised (or None).
    """
    import papermill

    root = copy_book(tmp_path_factory.mktemp("book"))
    outcomes: dict[str, BaseException | None] = {}
    for notebook in chapter_notebooks(root):
        try:
            papermill.execute_notebook(
                notebook, notebook, parameters={"QUICK": True}, cwd=notebook.parent,
                kernel_name="python3", progress_bar=False,
            )
            outcomes[notebook.stem] = None
        except Exception as error:  # reported by the test of that chapter
            outcomes[notebook.stem] = error
    return root, outcomes
