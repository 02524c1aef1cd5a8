"""``python -m book.bench --quick``: every row of the benchmark runs and reports a number."""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import pytest

from book import bench
from book import browser as book_browser
from book.data import load_dataset
from tools.chapters import ROOT, chapter_notebooks

NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?"


def value(line: str, pattern: str) -> float:
    """The number that ``pattern`` (with one group for it) finds in ``line``, checked finite."""
    assert not re.search(r"\b(nan|inf)\b", line, re.IGNORECASE), line
    match = re.search(pattern.replace("#", f"({NUMBER})"), line)
    assert match, f"no {pattern!r} in: {line}"
    number = float(match.group(1).replace(",", ""))
    assert math.isfinite(number), line
    return number


@pytest.fixture(scope="module")
def quick_run() -> list[str]:
    """The summary table of one quick run (the lines after its "summary" heading)."""
    try:
        load_dataset("mnist", "test", download=False, verbose=False)
    except Exception as error:  # noqa: BLE001 - any reason the data is not here
        pytest.skip(f"MNIST is not available offline: {error}")
    problem = book_browser.missing()
    if problem:  # the explorer's row needs it; on CI a missing browser fails
        if os.environ.get("VAE_BOOK_REQUIRE_BROWSER"):
            pytest.fail(problem)
        pytest.skip(problem)
    # The timeout only stops a hang: the quick rows run every chapter, which takes minutes on
    # an idle 2-core machine and several times that on a loaded one.
    run = subprocess.run([sys.executable, "-m", "book.bench", "--quick"], cwd=ROOT,
                         env=os.environ.copy(), capture_output=True, text=True, timeout=2400)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    lines = run.stdout.splitlines()
    return lines[lines.index("== summary ==") + 1:]


@pytest.mark.slow
def test_quick_benchmark_reports_every_row(quick_run):
    def row(label: str) -> str:
        """The one line of the table whose first column starts with ``label``."""
        found = [line for line in quick_run if line[:bench.LABEL].startswith(label)]
        assert len(found) == 1, f"{len(found)} rows {label!r} in:\n" + "\n".join(quick_run)
        return found[0]

    assert value(quick_run[0], "# CPUs") >= 1
    assert any(line.startswith("data: MNIST") for line in quick_run)
    assert value(row("NumPy / PyTorch throughput"), "ratio #") > 0
    lead = row("conv-VAE lead over MLP")
    value(lead, "# nats, mean of 2 seeds")
    assert value(lead, "sd #") >= 0 and value(lead, "paired se #") > 0
    for model in (bench.CONV, bench.MLP, bench.CHAPTER_2, bench.MIXTURE):
        assert value(row(f"NLL, {model} "), "^.{%d}#" % bench.LABEL) > 0
    assert "exact" in row(f"NLL, {bench.MIXTURE}")
    assert "2 seeds, sd" in row(f"NLL, {bench.CONV} ") and "1 seed" in row(f"NLL, {bench.CHAPTER_2}")
    assert value(row("book's best"), "^.{%d}#" % bench.LABEL) > 0
    assert value(row("Burda et al. 2015, VAE"), "best - paper #") > 0
    assert 0 < value(row("peak memory"), "# GB") < 12  # Colab's memory
    for notebook in chapter_notebooks():
        assert value(row(f"chapter {notebook.stem}"), "# s") >= 0
    assert value(row("all chapters"), "# s") > 0
    for what in ("decode", "update", "posterior", "switch"):
        assert value(row(f"explorer {what}, median (p95)"), "# ms") >= 0
    assert value(row("explorer, longest hold of the page"), "# ms") >= 0
    assert value(row("explorer page"), "# kB") > 0
    assert all(len(line) <= 96 for line in quick_run), "a line of the table is too long"
