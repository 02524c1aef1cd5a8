"""Headless Chromium for the explorer's benchmark and the website's tests.

Debian's ``chromium`` driven by Playwright (``playwright install`` cannot download a browser
on an offline machine, and need not). Playwright is a development dependency
(requirements.txt), not one of the book package's: Colab never needs it.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

CHROMIUM = Path(os.environ.get("VAE_BOOK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def missing() -> str | None:
    """Why no browser can be launched here, or None when one can."""
    if not CHROMIUM.exists():
        return f"no browser at {CHROMIUM} (apt-get install chromium, or set VAE_BOOK_CHROMIUM)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -r requirements.txt)"
    return None


@contextlib.contextmanager
def chromium() -> Iterator["playwright.sync_api.Browser"]:  # noqa: F821
    """A headless Chromium, closed on exit."""
    problem = missing()
    if problem:
        raise RuntimeError(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
