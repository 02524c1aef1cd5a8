"""Sphinx extension that makes the built website work with no network, and gives it the book's CSS.

Jupyter Book 1.x pages load MathJax from a CDN. This ships the parts of the npm package
``mathjax@3`` a page needs (installed by ``npm ci``; see ``package.json``) into the site's
``_static/mathjax`` so that ``mathjax_path = "mathjax/tex-mml-chtml.js"`` resolves locally.
It copies after the build, not through ``html_static_path``: Jupyter Book would add a script
tag for every ``.js`` file found there.

The book's web assets live in ``book/web/`` (shipped with the package). Three go into the site,
each named alone in ``html_static_path`` (a file entry, copied into ``_static`` before the pages
are written): the style sheet ``book.css``, added to every page after the theme's own styles,
``mathjax-menu.js``, which keeps MathJax's menu to what works offline, and ``book.js``, which
keeps figures legible on a narrow screen.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

MATHJAX = Path(__file__).resolve().parent.parent / "node_modules" / "mathjax" / "es5"
# The entry point, its fonts, and the TeX extensions it autoloads (\boldsymbol and friends);
# and everything its right-click menu can load: the SVG renderer (Math Settings > Math
# Renderer), the accessibility extensions (Accessibility) and the speech rule engine's
# language files they read. A menu item that fetched a file the site does not ship would fail
# on every page, since MathJax remembers the reader's choice.
MATHJAX_PARTS = ["tex-mml-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions",
                 "output/svg.js", "output/svg/fonts", "a11y", "sre/mathmaps"]

STYLESHEET = Path(__file__).resolve().parent.parent / "book" / "web" / "book.css"
# Hides the menu items that fail offline and forgets a stored choice of them (read it first).
MATHJAX_MENU = Path(__file__).resolve().parent.parent / "book" / "web" / "mathjax-menu.js"
# Keeps figures legible on a narrow screen (they scroll inside their box rather than shrink).
LAYOUT = Path(__file__).resolve().parent.parent / "book" / "web" / "book.js"


def check_mathjax(app: Sphinx) -> None:
    if app.builder.format == "html" and not (MATHJAX / MATHJAX_PARTS[0]).is_file():
        raise ExtensionError(
            f"MathJax is not installed at {MATHJAX}: run `npm ci` in the repository root "
            "(`make book` does it) so that the website can ship its own copy."
        )


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        source, dest = MATHJAX / part, target / part
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(source, dest)


def add_stylesheet(app: Sphinx, config: Config) -> None:
    for asset in (STYLESHEET, MATHJAX_MENU, LAYOUT):
        if not asset.is_file():
            raise ExtensionError(f"A web asset of the book is missing: {asset}")
    config.html_static_path = [*config.html_static_path, str(STYLESHEET), str(MATHJAX_MENU),
                               str(LAYOUT)]
    # After the theme's, sphinx-design's and myst-nb's style sheets (priority 500), so it wins.
    app.add_css_file(STYLESHEET.name, priority=600)
    # A plain script in the head, before MathJax (which is deferred) reads the stored settings.
    app.add_js_file(MATHJAX_MENU.name, priority=100)
    app.add_js_file(LAYOUT.name, defer="defer")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", add_stylesheet)
    app.connect("builder-inited", check_mathjax)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
