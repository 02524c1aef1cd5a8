"""Shared fixtures: where the offline data is, and the book executed once with its small budget.

Executing the chapters is the slow part of the suite, so it happens once per session, in a
copy of the book, and both the notebook tests and the website tests use that copy.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from book import browser as book_browser

from tools.chapters import ROOT, chapter_notebooks

SHARED_DATA = ROOT.parent / "shared" / "data"

# The tests never download: they use VAE_BOOK_DATA when it is set, else the offline copies
# beside the repository when they exist (as on CI).
if "VAE_BOOK_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["VAE_BOOK_DATA"] = str(SHARED_DATA)

# What a copy of the book needs to build: sources, the package its chapters import, and assets.
BOOK_SOURCES = ["_config.yml", "_toc.yml", "intro.md", "references.bib", "_ext", "book", "figures",
                "chapters"]


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


# Loaded by every kernel that a chapter runs in (through PYTHONPATH): it wraps the book's two
# training loops so that each call appends its chapter's budget and what it trained on to a log.
RECORD_TRAINING = """
import json, os, sys
sys.path.insert(0, {root!r})
import book.numpy_train, book.train

def recording(module):
    real = module.train
    def train(model, train_data, test_data, **options):
        history = real(model, train_data, test_data, **options)
        with open(os.environ["VAE_BOOK_TRAINING_LOG"], "a") as log:
            log.write(json.dumps({{"loop": module.__name__, "train": len(train_data),
                                  "images": history.images[-1]}}) + "\\n")
        return history
    module.train = train

recording(book.numpy_train)
recording(book.train)
"""


def run_chapters(root: Path, folder: Path, data: Path | None = None,
                 ) -> tuple[dict[str, BaseException | None], dict[str, list[dict]]]:
    """Run every chapter of the book at ``root`` with ``QUICK = True`` in fresh kernels, on the
    data in ``data`` (default: as the tests find it). Returns, for each chapter, the exception
    its run raised (or None) and the training runs it made (loop, training set, images)."""
    import papermill

    (folder / "sitecustomize.py").write_text(RECORD_TRAINING.format(root=str(root)))
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "VAE_BOOK_DATA",
                                                     "VAE_BOOK_TRAINING_LOG")}
    outcomes: dict[str, BaseException | None] = {}
    trained: dict[str, list[dict]] = {}
    try:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(folder)] + ([saved["PYTHONPATH"]] if saved["PYTHONPATH"] else []))
        if data is not None:
            os.environ["VAE_BOOK_DATA"] = str(data)
        for notebook in chapter_notebooks(root):
            log = folder / f"{notebook.stem}.jsonl"
            os.environ["VAE_BOOK_TRAINING_LOG"] = str(log)
            try:
                papermill.execute_notebook(
                    notebook, notebook, parameters={"QUICK": True}, cwd=notebook.parent,
                    kernel_name="python3", progress_bar=False,
                )
                outcomes[notebook.stem] = None
            except Exception as error:  # reported by the test of that chapter
                outcomes[notebook.stem] = error
            lines = log.read_text().splitlines() if log.exists() else []
            trained[notebook.stem] = [json.loads(line) for line in lines]
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return outcomes, trained


@pytest.fixture(scope="session")
def executed_runs(tmp_path_factory) -> tuple[Path, dict[str, BaseException | None],
                                             dict[str, list[dict]]]:
    """A copy of the book whose chapters were run with ``QUICK = True`` in fresh kernels, the
    exception each chapter's run raised (or None), and the training runs each made."""
    root = copy_book(tmp_path_factory.mktemp("book"))
    outcomes, trained = run_chapters(root, tmp_path_factory.mktemp("kernel-site"))
    return root, outcomes, trained


@pytest.fixture(scope="session")
def executed_book(executed_runs) -> tuple[Path, dict[str, BaseException | None]]:
    """The executed copy of the book and each chapter's outcome (see ``executed_runs``)."""
    root, outcomes, _ = executed_runs
    return root, outcomes


@pytest.fixture(scope="session")
def site(executed_book) -> Path:
    """The built website of the executed book; the build must pass with warnings as errors."""
    root, _ = executed_book
    settings = yaml.safe_load((root / "_config.yml").read_text())
    settings["execute"]["execute_notebooks"] = "off"  # the chapters ran already, in the fixture
    (root / "_config.yml").write_text(yaml.safe_dump(settings))
    for notebook in chapter_notebooks(root):  # papermill's cell, which the real build never has
        content = json.loads(notebook.read_text())
        for cell in content["cells"]:
            tags = cell.get("metadata", {}).get("tags", [])
            if "injected-parameters" in tags:
                cell["metadata"]["tags"] = [*tags, "remove-cell"]
        notebook.write_text(json.dumps(content))
    build = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--warningiserror", "--nitpick", "--keep-going"],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return root / "_build" / "html"


@pytest.fixture(scope="session")
def served(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium; on CI (VAE_BOOK_REQUIRE_BROWSER) a missing one fails, else skips."""
    problem = book_browser.missing()
    if problem:
        if os.environ.get("VAE_BOOK_REQUIRE_BROWSER"):
            pytest.fail(problem)
        pytest.skip(problem)
    with book_browser.chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def watch(served):
    """``watch(page)``: the list of what goes wrong on the page from now on (console errors,
    page errors, failed requests), with every request to a host other than ``served`` blocked
    and listed."""
    def watch_page(page) -> list[str]:
        problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))

        def only_this_host(route):
            if route.request.url.startswith(served):
                route.continue_()
            else:
                problems.append(f"request to another host: {route.request.url}")
                route.abort()

        page.route("**/*", only_this_host)
        return problems

    return watch_page
