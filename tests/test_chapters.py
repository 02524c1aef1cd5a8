"""Every chapter runs top to bottom in a fresh kernel with its small budget, and is set up alike."""
from __future__ import annotations

import json

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
