"""Every chapter runs top to bottom in a fresh kernel with its small budget, and is set up alike."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.chapters import KERNEL_METADATA, ROOT, chapter_notebooks, setup_cell_source, toc_files

CHAPTERS = chapter_notebooks()


def test_every_toc_entry_exists():
    for entry in toc_files():
        assert any((ROOT / f"{entry}{suffix}").is_file() for suffix in (".md", ".ipynb")), f"{entry} is missing"
    assert CHAPTERS, "the table of contents lists no notebook chapter"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_set_up_for_colab_and_papermill(notebook):
    content = json.loads(notebook.read_text())
    cells = content["cells"]
    assert {k: content["metadata"].get(k) for k in KERNEL_METADATA} == KERNEL_METADATA
    code = [c for c in cells if c["cell_type"] == "code"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    assert "".join(code[0]["source"]) == setup_cell_source(), (
        f"{notebook.name}: its set-up cell differs from _config.yml's repository; run `python -m tools.chapters`"
    )
    assert code[0]["metadata"].get("tags") == ["hide-input"]
    parameters = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(parameters) == 1 and "QUICK = False" in "".join(parameters[0]["source"])
    assert all(not c.get("outputs") for c in code), f"{notebook.name}: commit chapters without outputs"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_chapter_runs_in_a_fresh_kernel(executed_book, chapter):
    root, outcomes = executed_book
    if outcomes[chapter] is not None:
        raise outcomes[chapter]
    executed = json.loads((root / "chapters" / f"{chapter}.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert outputs, f"{chapter} ran but showed nothing"
    assert not any(o.get("output_type") == "error" for o in outputs)


def run_setup_cell(cwd: Path, env: dict[str, str] | None = None) -> str:
    """The set-up cell run in a fresh interpreter that cannot import the installed book
    (``-I -S``: no site-packages, no PYTHONPATH) and could install nothing (no index)."""
    script = setup_cell_source() + "\nimport book\nprint('book:', book.__file__)\n"
    process = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], cwd=cwd, capture_output=True, text=True,
        env={"PATH": os.environ.get("PATH", ""), "PIP_NO_INDEX": "1", **(env or {})},
        timeout=120)
    assert process.returncode == 0, process.stdout + process.stderr
    return process.stdout


def test_the_set_up_cell_finds_the_clone_from_any_folder_and_says_so(tmp_path):
    clone = tmp_path / "clone"
    (clone / "chapters" / "deep").mkdir(parents=True)
    (clone / "book").symlink_to(ROOT / "book")
    (clone / "_toc.yml").write_text((ROOT / "_toc.yml").read_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    runs = {"beside the clone": run_setup_cell(tmp_path),
            "in the repository": run_setup_cell(clone),
            "below chapters/": run_setup_cell(clone / "chapters" / "deep"),
            "a Jupyter session from elsewhere": run_setup_cell(
                elsewhere, {"JPY_SESSION_NAME": str(clone / "chapters" / "x.ipynb")})}
    for where, output in runs.items():
        assert f"the book's package: from the clone at {clone}" in output, (where, output)
        assert f"book: {clone / 'book' / '__init__.py'}" in output, (where, output)
        assert "installing" not in output, where


def assert_statements(notebook: Path) -> int:
    """The number of ``assert`` statements in a chapter's code cells (IPython magics skipped)."""
    import ast

    count = 0
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "\n".join(line for line in "".join(cell["source"]).splitlines()
                           if not line.lstrip().startswith(("%", "!")))
        count += sum(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(source)))
    return count


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_asserts_what_its_runs_show(notebook):
    # The opening page's convention: a sentence that states what a run showed is asserted in the
    # cell that printed it. A chapter with no assertion states nothing it checks.
    assert assert_statements(notebook) >= 5, f"{notebook.name} asserts (almost) nothing"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_prose_does_not_announce_its_assertions(notebook):
    # The convention is stated once, on the opening page; "(asserted ...)" remarks in the prose
    # only break its sentences.
    text = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
                     if c["cell_type"] == "markdown")
    for remark in ("(asserted", "the cell asserts", "asserted at the full budget"):
        assert remark not in text, f"{notebook.name}: '{remark}' in the prose"
