"""The chapter notebooks as the table of contents lists them, and their shared first cell.

Every chapter starts with the same set-up cell, which makes ``import book`` work in a clone,
on Colab and in any fresh kernel. The repository it installs from is ``repository.url`` in
``_config.yml``, the one place it is set; ``python -m tools.chapters`` rewrites the set-up
cell (and the kernel metadata) of every chapter from it, and the tests fail when one differs.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

# The arguments the set-up cell gives `pip` before the repository; tests/test_colab_install.py
# runs exactly these. No `--upgrade` (and so no upgrade strategy, which pip applies only with it):
# pip then keeps every installed package that satisfies the book's requirements, so on Colab it
# adds only the book's package and leaves the preinstalled torch, numpy, matplotlib, tqdm and
# ipywidgets 7.7.1 as they are; pyproject.toml's ranges admit Colab's versions for that reason.
PIP_INSTALL_ARGS = ("install", "-q")

SETUP_CELL = '''\
# Set-up: make `import book` work here, on Colab or in any fresh kernel
# ("Run all" needs no edits).
import importlib.util, os, pathlib, subprocess, sys

REPOSITORY = "{url}"
if importlib.util.find_spec("book") is None:
    # A clone of the book: from this notebook's folder (Jupyter names it) or the
    # working folder upwards, or a folder inside the working folder.
    here = pathlib.Path.cwd().resolve()
    starts = [here]
    notebook = os.environ.get("JPY_SESSION_NAME", "")  # set by Jupyter Server
    if notebook.endswith(".ipynb"):
        starts.insert(0, pathlib.Path(notebook).resolve().parent)
    places = [p for s in starts for p in (s, *s.parents)] + sorted(here.glob("*/"))
    clone = next((p for p in places if (p / "book" / "__init__.py").is_file()
                  and (p / "_toc.yml").is_file()), None)
    if clone is not None:
        sys.path.insert(0, str(clone))
        print(f"the book's package: from the clone at {{clone}}")
    else:  # Colab, or a notebook far from any clone: install the package
        print(f"the book's package: installing it from {{REPOSITORY}}")
        subprocess.run([sys.executable, "-m", "pip", {pip_args},
                        f"git+{{REPOSITORY}}"], check=True)
        # so that this running kernel sees the package just installed
        importlib.invalidate_caches()'''


def config(root: Path = ROOT) -> dict:
    """The book's ``_config.yml``."""
    return yaml.safe_load((root / "_config.yml").read_text())


def setup_cell_source(root: Path = ROOT) -> str:
    """The first code cell every chapter must have, for this book's repository URL."""
    pip_args = ", ".join(json.dumps(arg) for arg in PIP_INSTALL_ARGS)
    return SETUP_CELL.format(url=config(root)["repository"]["url"], pip_args=pip_args)


def toc_files(root: Path = ROOT) -> list[str]:
    """Every document in ``_toc.yml``, root first, as paths without suffix."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries: list) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))
            for part in entry.get("parts", []):
                walk(part.get("chapters", []))

    walk(toc.get("chapters", []))
    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return files


def chapter_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebook chapters in table-of-contents order."""
    return [root / f"{f}.ipynb" for f in toc_files(root) if (root / f"{f}.ipynb").is_file()]


# Colab, papermill and the build pick the kernel from this metadata.
KERNEL_METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}


def sync_chapters(root: Path = ROOT) -> list[Path]:
    """Give every chapter the current set-up cell and kernel metadata; returns the files changed."""
    changed = []
    expected = setup_cell_source(root)
    for path in chapter_notebooks(root):
        notebook = json.loads(path.read_text())
        before = json.dumps(notebook)
        cell = next(c for c in notebook["cells"] if c["cell_type"] == "code")
        cell["source"] = expected.splitlines(keepends=True)
        cell.setdefault("metadata", {})["tags"] = ["hide-input"]  # on the website: folded away
        notebook["metadata"].update(KERNEL_METADATA)
        if json.dumps(notebook) != before:
            path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
            changed.append(path)
    return changed


if __name__ == "__main__":
    for path in sync_chapters():
        print(f"updated {path.relative_to(ROOT)}")
