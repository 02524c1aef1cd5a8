"""The website: it builds with no warnings, links every chapter to Colab, and works offline.

The book executed by ``executed_book`` (small budget) is built with execution off, then served
on 127.0.0.1 and opened in headless Chromium, which must see no console error, no request to
another host, rendered math on every page and every image loaded.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tools.chapters import config, toc_files

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def site(executed_book) -> Path:
    """The built website of the executed book; the build must pass with warnings as errors."""
    root, _ = executed_book
    settings = yaml.safe_load((root / "_config.yml").read_text())
    settings["execute"]["execute_notebooks"] = "off"  # the chapters ran already, in the fixture
    (root / "_config.yml").write_text(yaml.safe_dump(settings))
    build = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--warningiserror", "--nitpick", "--keep-going"],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return root / "_build" / "html"


class _Resources(HTMLParser):
    """Collects the URLs a page loads by itself (scripts, styles, images, frames), not its links."""

    def __init__(self):
        super().__init__()
        self.loaded: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video", "audio", "embed") and attrs.get("src"):
            self.loaded.append(attrs["src"])
        if tag == "link" and attrs.get("href") and attrs.get("rel") not in ("canonical",):
            self.loaded.append(attrs["href"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def _parse(page: Path) -> _Resources:
    parser = _Resources()
    parser.feed(page.read_text())
    return parser


def test_every_toc_entry_has_a_page_and_chapters_link_to_colab(site):
    repo = urlparse(config()["repository"]["url"]).path.strip("/")
    for entry in toc_files():
        page = site / f"{entry}.html"
        assert page.is_file(), f"no page for {entry}"
        if entry.startswith("chapters/"):
            colab = f"https://colab.research.google.com/github/{repo}/blob/main/{entry}.ipynb"
            assert colab in _parse(page).links, f"{entry}.html has no Colab link to {entry}.ipynb"


def test_pages_load_nothing_from_other_hosts(site):
    for page in site.rglob("*.html"):
        external = [u for u in _parse(page).loaded if urlparse(u).scheme in ("http", "https", "") and urlparse(u).netloc]
        assert not external, f"{page.relative_to(site)} loads {external}"


def test_mathjax_is_shipped(site):
    assert (site / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert (site / "_static" / "mathjax" / "input" / "tex" / "extensions" / "boldsymbol.js").is_file()


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("VAE_BOOK_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium`")
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.mark.parametrize("entry", toc_files())
def test_page_renders_offline_without_errors(site, served, browser, entry):
    page = browser.new_page()
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
    page.goto(f"{served}/{entry}.html", wait_until="networkidle")
    has_math = bool(re.search(r'class="[^"]*\bmath\b', (site / f"{entry}.html").read_text()))
    if has_math:
        try:  # (some math sits in hidden navigation, so wait for presence, not visibility)
            page.wait_for_selector("mjx-container", state="attached", timeout=15_000)
            page.evaluate("MathJax.startup.promise")  # resolves when the page is typeset
            unrendered = page.evaluate("[...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length")
            if unrendered:
                problems.append(f"{unrendered} math elements were not rendered by MathJax")
        except Exception as error:
            problems.append(f"its math was not rendered by MathJax ({error})")
        if page.query_selector("mjx-merror"):
            problems.append("MathJax reported an error")
    broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    page.close()
    assert not problems, problems
    assert not broken, f"images that did not load: {broken}"
