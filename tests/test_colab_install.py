"""On Colab, the chapters' set-up cell installs the book's package alone and changes nothing else.

Colab preinstalls torch, numpy, matplotlib, tqdm and ipywidgets 7.7.1, and widgets stop rendering
there (``tqdm.auto`` bars included) once a notebook upgrades ipywidgets to 8. So the package may
only require what Colab has, and the set-up cell must never upgrade it. The slow test checks this
as a user would meet it: a fresh virtual environment holding Colab's versions, then the set-up
cell's own ``pip`` command (``tools.chapters.PIP_INSTALL_ARGS``) with this working tree in place
of ``git+<repository>``; ``pip list`` before and after must differ by the book's package alone.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools.chapters import PIP_INSTALL_ARGS, ROOT, setup_cell_source

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

# What Colab preinstalls of the book's dependencies: the pip freeze of its runtime in
# github.com/googlecolab/backend-info (pip-freeze.txt, August 2026; Python 3.13). ipywidgets has
# been 7.7.1 there since 2022. Update these when Colab moves on.
COLAB = {"ipywidgets": "7.7.1", "numpy": "2.1.3", "torch": "2.11.0", "matplotlib": "3.10.0", "tqdm": "4.67.3"}
COLAB_PIP = "24.1.2"

CONSTRAINTS = ROOT / "constraints.txt"  # every pip call here: torch is the CPU build it pins
UPGRADING = {"-U", "--upgrade", "-I", "--ignore-installed", "--force-reinstall"}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_dependency_is_preinstalled_on_colab_in_a_version_it_admits():
    for line in pyproject()["project"]["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in COLAB, (
            f"{line}: the book may depend only on what Colab preinstalls; if Colab has it, add its "
            f"version from Colab's pip freeze to COLAB in {Path(__file__).name}"
        )
        assert requirement.specifier.contains(COLAB[name], prereleases=True), (
            f"{line} rejects Colab's {name} {COLAB[name]}: the set-up cell would replace Colab's own"
        )


def test_the_set_up_cell_runs_pip_with_the_shared_arguments_and_never_upgrades():
    calls = [
        node for node in ast.walk(ast.parse(setup_cell_source()))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "subprocess.run"
    ]
    assert len(calls) == 1, "the set-up cell should run pip exactly once"
    command = calls[0].args[0]
    words = [e.value for e in command.elts if isinstance(e, ast.Constant)]
    assert words == ["-m", "pip", *PIP_INSTALL_ARGS], "the set-up cell must use tools.chapters.PIP_INSTALL_ARGS"
    assert ast.unparse(command.elts[0]) == "sys.executable" and ast.unparse(command.elts[-1]) == "f'git+{REPOSITORY}'"
    assert PIP_INSTALL_ARGS[0] == "install" and not UPGRADING & set(PIP_INSTALL_ARGS)


def run(*command: str | Path, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a command outside this test's environment; its output is kept for messages."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_USER"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def output(process: subprocess.CompletedProcess) -> str:
    lines = (process.stdout + process.stderr).splitlines()
    return "\n".join(line for line in lines if "is ignored: it is neither a file nor a directory" not in line)[-4000:]


def require_registry() -> None:
    """Skip (fail on CI) unless pip can reach a package index that has Colab's ipywidgets."""
    probe = run(sys.executable, "-m", "pip", "index", "versions", "ipywidgets", "--timeout", "20", "--retries", "1",
                timeout=180)
    listed = re.search(r"Available versions: (.*)", probe.stdout)
    if probe.returncode == 0 and listed and COLAB["ipywidgets"] in listed.group(1).split(", "):
        return
    reason = f"pip cannot reach a package index with ipywidgets {COLAB['ipywidgets']}:\n{output(probe)}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def top_level_packages() -> list[str]:
    return sorted({package.split(".")[0] for package in pyproject()["tool"]["setuptools"]["packages"]})


def package_sources(destination: Path) -> Path:
    """What ``pip install git+<repository>`` builds the package from, copied from the working tree."""
    destination.mkdir(parents=True)
    names = {"pyproject.toml", pyproject()["project"]["readme"], *top_level_packages()}
    names |= {name for name in ("setup.py", "setup.cfg", "MANIFEST.in", "LICENSE") if (ROOT / name).exists()}
    for name in sorted(names):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, destination / name)
    return destination


def installed(python: Path) -> dict[str, str]:
    listing = run(python, "-m", "pip", "list", "--format", "json")
    assert listing.returncode == 0, output(listing)
    return {canonicalize_name(p["name"]): p["version"] for p in json.loads(listing.stdout)}


@pytest.mark.slow
def test_set_up_cell_leaves_colabs_preinstalled_packages_alone(tmp_path):
    require_registry()
    venv = tmp_path / "colab"
    made = run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, output(made)
    python = venv / "bin" / "python"

    # Colab's stack: its pip and its versions of the book's dependencies (torch: the CPU build
    # that constraints.txt pins, as Colab's own cannot be had here without CUDA).
    colab = [f"{name}=={version}" for name, version in COLAB.items() if name != "torch"]
    setup = run(python, "-m", "pip", "install", "-q", "--no-compile", "--only-binary", ":all:",
                "--constraint", CONSTRAINTS, f"pip=={COLAB_PIP}", *colab, "torch")
    assert setup.returncode == 0, f"could not set up Colab's packages:\n{output(setup)}"
    before = installed(python)
    assert before["ipywidgets"] == COLAB["ipywidgets"], before

    # The set-up cell's command, with this working tree in place of git+<repository>.
    source = package_sources(tmp_path / "repository")
    install = run(python, "-m", "pip", *PIP_INSTALL_ARGS, "--constraint", CONSTRAINTS, source)
    assert install.returncode == 0, f"the set-up cell's pip command failed:\n{output(install)}"
    after = installed(python)

    changed = {name: (before.get(name), after.get(name)) for name in before.keys() | after.keys()
               if before.get(name) != after.get(name)}
    replaced = {name: f"{old} -> {new}" for name, (old, new) in changed.items() if old is not None}
    assert not replaced, f"the set-up cell would change Colab's preinstalled packages: {replaced}"
    assert set(changed) == {"vae-book"}, f"the set-up cell should add the book's package alone: {changed}"

    # The package imports with Colab's versions, tqdm.auto's bar still finds its widget, and the
    # book's widgets and explorer work there.
    modules = """
import importlib, pkgutil, sys
import tqdm.notebook
assert tqdm.notebook.IProgress is not None, "tqdm finds no ipywidgets progress bar"
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    assert "site-packages" in package.__file__, package.__file__
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)

# The live widgets work with ipywidgets 7.7, and the explorer's web assets were installed.
import numpy as np, torch
from book import explorer, widgets
from book.conv_vae import ConvConfig, ConvVAE
model = ConvVAE(ConvConfig(z_dim=2)).eval()
mu, labels = np.zeros((10, 2)), np.arange(10)
for live in (widgets.LatentSliders(model), widgets.LatentMap(model, mu, labels),
             widgets.Interpolation(model, mu, labels), widgets.Traversal(model, mu)):
    bundle = live._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"], bundle
sliders = widgets.LatentSliders(model)
before = sliders.image.value
sliders.sliders[0].value = 2.0
assert sliders.image.value != before, "a slider did not redraw the digit"
assert "VAEExplorer.mount" in explorer.explorer_html({"VAE": (model, mu)}, labels)
"""
    imported = run(python, "-c", modules, *top_level_packages(), cwd=tmp_path)
    assert imported.returncode == 0, f"the package does not import with Colab's versions:\n{output(imported)}"
