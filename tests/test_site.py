"""The website: it builds with no warnings, links every chapter to Colab, and works offline.

The book executed by ``executed_book`` (small budget) is built with execution off, then served
on 127.0.0.1 and opened in headless Chromium, which must see no console error, no request to
another host, rendered math on every page and every image loaded. At a 1280 px wide window,
no code block, printed output or display equation may be wider than the column it sits in.
"""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tools.chapters import config, toc_files

pytestmark = pytest.mark.slow


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


def _typeset(page, html: Path) -> list[str]:
    """Wait until MathJax has typeset the open page (if it has math); what went wrong, if anything."""
    if not re.search(r'class="[^"]*\bmath\b', html.read_text()):
        return []
    problems = []
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
    return problems


@pytest.mark.parametrize("entry", toc_files())
def test_page_renders_offline_without_errors(site, served, browser, watch, entry):
    page = browser.new_page()
    problems = watch(page)
    page.goto(f"{served}/{entry}.html", wait_until="networkidle")
    problems += _typeset(page, site / f"{entry}.html")
    broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    page.close()
    assert not problems, problems
    assert not broken, f"images that did not load: {broken}"


# Every `pre` (code cells, printed output, code blocks) and display equation of the article that
# is wider than its box: it scrolls sideways, is clipped, or sticks out of the article's column.
# Folded content (hidden cell inputs) is opened first, so that it is measured too.
_TOO_WIDE = """() => {
    for (const details of document.querySelectorAll('article details')) details.open = true;
    for (const hidden of document.querySelectorAll('article .toggle-hidden')) hidden.classList.remove('toggle-hidden');
    const article = document.querySelector('article.bd-article');
    const style = getComputedStyle(article);
    const right = article.getBoundingClientRect().right - parseFloat(style.paddingRight);
    const text = e => e.textContent.replace(/\\s+/g, ' ').trim().slice(0, 80);
    const tooWide = (e, box) => e.scrollWidth > e.clientWidth + 1 || box.scrollWidth > box.clientWidth + 1
        || box.getBoundingClientRect().right > right + 1;
    const columns = pre => {  // how many characters of the block's monospace font fit in it
        const probe = document.createElement('span');
        probe.textContent = 'x'.repeat(100);
        pre.appendChild(probe);
        const width = probe.getBoundingClientRect().width / 100;
        probe.remove();
        const style = getComputedStyle(pre);
        return Math.floor((pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)) / width);
    };
    const found = [];
    for (const pre of article.querySelectorAll('pre')) {
        if (tooWide(pre, pre)) {
            const longest = Math.max(...pre.textContent.split('\\n').map(line => line.length));
            found.push(`code, ${pre.scrollWidth} px in ${pre.clientWidth} px (longest line ${longest} characters, `
                       + `${columns(pre)} fit): ${text(pre)}`);
        }
    }
    const tex = box => {  // the TeX source, as written in the chapter
        const items = window.MathJax?.startup?.document?.getMathItemsWithin?.(box) || [];
        return items.length ? items[0].math : box.textContent;
    };
    for (const math of article.querySelectorAll('mjx-container[display="true"]')) {
        const box = math.closest('.math') || math.parentElement;
        if (tooWide(math, box)) {
            const width = Math.max(math.scrollWidth, box.scrollWidth);
            found.push(`equation ${width} px in ${math.clientWidth} px: ${tex(box).replace(/\\s+/g, ' ').trim().slice(0, 80)}`);
        }
    }
    return found;
}"""


@pytest.mark.parametrize("entry", toc_files())
def test_code_and_equations_fit_the_page_at_1280px(site, served, browser, entry):
    """At a 1280 px wide window no code block, printed line or display equation is cut or scrolls.

    A failure lists the blocks to shorten: reflow the code in ``book/`` or the chapter cell that
    shows or prints it, or split the equation (e.g. with ``\\\\`` in an ``aligned`` block).
    """
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{served}/{entry}.html", wait_until="networkidle")
    problems = _typeset(page, site / f"{entry}.html")
    too_wide = page.evaluate(_TOO_WIDE)
    page.close()
    assert not problems, problems
    assert not too_wide, f"{len(too_wide)} blocks of {entry} are wider than the page at 1280 px:\n" + "\n".join(too_wide)


_MENU_ITEMS = ".CtxtMenu_Menu >> nth=-1 >> :scope > .CtxtMenu_MenuItem"


def _menu(page, *path: str) -> list[str]:
    """Right-click the article's first equation, hover along ``path`` and return the labels of
    the visible, enabled items of the menu it ends in (the last one opened)."""
    page.keyboard.press("Escape")
    # A locator, not an element handle: a choice re-typesets the page and replaces every
    # mjx-container, and a locator finds the new one where a handle would be left detached.
    math = page.locator("article mjx-container").first
    math.scroll_into_view_if_needed(timeout=30_000)
    math.click(button="right", timeout=30_000)
    page.wait_for_selector(".CtxtMenu_ContextMenu")
    for label in path:
        page.locator(_MENU_ITEMS, has_text=label).first.hover()
        page.wait_for_timeout(200)  # the submenu opens on a timer
    items = page.locator(_MENU_ITEMS)
    return [items.nth(i).inner_text().rstrip("►✓").strip() for i in range(items.count())
            if items.nth(i).is_visible() and items.nth(i).get_attribute("aria-disabled") == "false"
            and items.nth(i).get_attribute("role") != "separator"]


def _choose(page, *path: str) -> None:
    """Click the menu item at ``path`` and wait until MathJax has typeset the page again."""
    _menu(page, *path[:-1])
    page.locator(_MENU_ITEMS, has_text=path[-1]).first.click()
    page.wait_for_timeout(300)
    page.evaluate("MathJax.startup.promise")


def test_the_mathjax_menu_offers_only_what_the_site_ships(site, served, browser, watch):
    """Every renderer and accessibility choice of MathJax's right-click menu, then a reload and
    another page with the choices remembered: no request fails, no other host is asked, no
    console error, and every equation is still typeset."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems = watch(page)
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status}: {r.url}"))
    page.goto(f"{served}/intro.html", wait_until="networkidle")
    problems += _typeset(page, site / "intro.html")
    assert "Accessibility" in _menu(page) and "Language" not in _menu(page)
    renderers = _menu(page, "Math Settings", "Math Renderer")
    assert renderers == ["CHTML", "SVG"], renderers
    offered = _menu(page, "Accessibility")
    assert "Activate" not in offered and "Collapsible Math" in offered, offered
    for renderer in ("SVG", "CHTML", "SVG"):
        _choose(page, "Math Settings", "Math Renderer", renderer)
    for _ in range(2):  # on, then off again (each may unlock another: Auto Collapse)
        for choice in _menu(page, "Accessibility"):
            _choose(page, "Accessibility", choice)
    for entry in ("intro", toc_files()[1]):  # the choices are remembered, and work
        page.goto(f"{served}/{entry}.html", wait_until="networkidle")
        problems += _typeset(page, site / f"{entry}.html")
        assert page.evaluate("document.querySelectorAll('mjx-container svg').length") > 0
    page.close()
    assert not problems, problems


_SEARCH_FIELDS = """[...document.querySelectorAll('.search-button-field, input[type="search"]')]
    .filter(e => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
    .length"""


@pytest.mark.parametrize("entry", toc_files()[:2])
def test_one_search_field_at_1280px_and_a_search_button_that_works_on_a_phone(
        site, served, browser, watch, entry):
    """The theme's full-width header with a second search field stays off (``_config.yml``);
    on a phone the article header's search button opens the search, which finds pages."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems = watch(page)
    page.goto(f"{served}/{entry}.html", wait_until="networkidle")
    assert page.evaluate(_SEARCH_FIELDS) == 1
    header = page.evaluate("(h => h && [h.children.length, h.getBoundingClientRect().height])"
                           "(document.querySelector('header#pst-header'))")
    assert header in (None, [0, 0]), f"the theme's header bar is back: {header}"
    page.close()

    phone = browser.new_page(viewport={"width": 390, "height": 844})
    problems += watch(phone)
    phone.goto(f"{served}/{entry}.html", wait_until="networkidle")
    buttons = phone.locator("button.search-button, .search-button__button")
    visible = [buttons.nth(i) for i in range(buttons.count()) if buttons.nth(i).is_visible()]
    assert visible, "no visible search button at 390 px"
    visible[0].click()
    field = phone.locator("#pst-search-dialog input[type='search'], .search-button__wrapper input")
    field.first.wait_for(state="visible", timeout=5_000)
    field.first.fill("ELBO")
    field.first.press("Enter")
    phone.wait_for_url("**/search.html?q=ELBO*")
    phone.wait_for_selector("#search-results li a", timeout=15_000)
    phone.close()
    assert not problems, problems


# --- Pages that teach (issue 27): code in its place, nothing cut, figures legible -------------

# The share of a chapter's page height in code as the page first opens: code cells' inputs (a
# hidden input shows only its one-line toggle) and the library source that show_source prints
# (a Python block in an output; a folded one shows only its summary line), over the article's
# height. Printed results (stream output) are not code.
_CODE_SHARE = """() => {
    const article = document.querySelector('article.bd-article');
    const height = e => e.getBoundingClientRect().height;
    // Chromium still gives the contents of a closed <details> their full height: skip them.
    const folded = e => e.parentElement.closest('details:not([open])') !== null;
    let code = 0;
    for (const input of article.querySelectorAll('.cell_input')) if (!folded(input)) code += height(input);
    // a hidden input shows its one-line toggle ("Show code cell source")
    for (const toggle of article.querySelectorAll('details.above-input:not([open])')) code += height(toggle);
    for (const block of article.querySelectorAll('.cell_output details.book-source')) if (!folded(block)) code += height(block);
    for (const block of article.querySelectorAll('.cell_output div.highlight-python')) {
        if (!block.closest('details.book-source') && !folded(block)) code += height(block);
    }
    return code / height(article);
}"""

CHAPTERS = [entry for entry in toc_files() if entry.startswith("chapters/")]


@pytest.mark.parametrize("entry", CHAPTERS)
def test_code_takes_at_most_a_quarter_of_each_chapter_at_1280px(site, served, browser, entry):
    """The set-up, budget and import cells show folded, library source is folded under a summary
    line, and the code that is the lesson stays open: at most 25% of the page is code."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{served}/{entry}.html", wait_until="networkidle")
    share = page.evaluate(_CODE_SHARE)
    page.close()
    assert share <= 0.25, f"{entry}: code takes {share:.0%} of the page at 1280 px"


# What is wider than its box on the page as it stands: tables, display equations and figures,
# each with whether it scrolls inside its box with the cue of book.css (a gradient background).
_CUT = """() => {
    const article = document.querySelector('article.bd-article');
    const found = [];
    const boxes = [...article.querySelectorAll('.pst-scrollable-table-container, table, div.math, mjx-container[display="true"], .cell_output img')];
    for (const element of boxes) {
        if (!element.getClientRects().length) continue;  // folded away
        const box = element.tagName === 'IMG' ? element.parentElement : element;
        const wide = element.tagName === 'IMG'
            ? element.getBoundingClientRect().width > box.clientWidth + 1
            : element.scrollWidth > element.clientWidth + 1;
        if (!wide) continue;
        const style = getComputedStyle(box);
        const cue = ['auto', 'scroll'].includes(style.overflowX) && style.backgroundImage.includes('gradient');
        if (!cue) found.push(`${element.tagName.toLowerCase()} ${element.scrollWidth} px in ${box.clientWidth} px: `
                             + element.textContent.replace(/\\s+/g, ' ').trim().slice(0, 60));
    }
    return found;
}"""

# Figures shown at less than 60% of the size they were drawn for.
_SHRUNK = """() => [...document.querySelectorAll('article.bd-article .cell_output img')]
    .filter(img => img.naturalWidth && img.getClientRects().length)
    .filter(img => img.getBoundingClientRect().width < 0.6 * img.naturalWidth - 1)
    .map(img => `${Math.round(img.getBoundingClientRect().width)} of ${img.naturalWidth} px: ${img.src.split('/').pop()}`)"""


@pytest.mark.parametrize("entry", toc_files())
def test_figures_tables_and_equations_are_legible_and_never_cut_silently(site, served, browser,
                                                                          entry):
    """At 1280 px no figure is shown below 60% of its drawn size; at 390 px (a phone) neither,
    and a table, display equation or figure wider than the column scrolls inside its own box
    with a visible cue rather than being cut."""
    for width, height in ((1280, 800), (390, 844)):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(f"{served}/{entry}.html", wait_until="networkidle")
        _typeset(page, site / f"{entry}.html")
        page.wait_for_function("[...document.images].every(i => i.complete)")
        page.wait_for_timeout(300)  # book.js fits the figures once they are loaded
        shrunk, cut = page.evaluate(_SHRUNK), page.evaluate(_CUT)
        page.close()
        assert not shrunk, f"{entry} at {width} px: figures below 60% of their size: {shrunk}"
        assert not cut, f"{entry} at {width} px: cut without a scroll cue: {cut}"


# One spelling, so that one search finds every page: each term, searched on the site, finds every
# chapter whose text uses it (a chapter in UK spelling would be missing from the results).
SEARCH_TERMS = ("amortization", "reparameterization", "binarized", "dequantization", "gray")


@pytest.mark.parametrize("term", SEARCH_TERMS)
def test_the_site_search_finds_a_term_in_every_chapter_that_uses_it(site, served, browser, term):
    using = set()
    for entry in CHAPTERS:
        cells = json.loads((site.parent.parent / f"{entry}.ipynb").read_text())["cells"]
        if any(term in "".join(c["source"]).lower() for c in cells if c["cell_type"] == "markdown"):
            using.add(entry.split("/")[-1])
    assert using, f"no chapter uses {term!r}"
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{served}/search.html?q={term}", wait_until="networkidle")
    page.wait_for_function("/found|finished/i.test(document.querySelector("
                           "'#search-results .search-summary')?.textContent || '')",
                           timeout=15_000)  # the search has finished, not only begun
    found = {href.split("/")[-1].split(".html")[0] for href in page.eval_on_selector_all(
        "#search-results li a", "links => links.map(a => a.getAttribute('href'))")}
    page.close()
    assert using <= found, f"searching {term!r} misses {sorted(using - found)}"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_no_page_shows_a_progress_bars_updates(site, entry):
    """Training logs on the website end in the line each chapter prints: tqdm's bars (stderr),
    one line per update when rendered, are removed from the pages (``nb_output_stderr``)."""
    html = (site / f"{entry}.html").read_text(encoding="utf-8")
    bars = re.findall(r"\d+%\|[^|<]*\|\s*\d+/\d+", html)
    assert not bars, f"{entry} shows {len(bars)} progress-bar lines, e.g. {bars[0]!r}"


# Each chapter's exercises: the statements, the derivations folded in dropdown admonitions
# (sphinx-togglebutton) and the code solutions folded with their verdicts under "Show the
# solution" (myst-nb's hide-cell, with the prompt each solution cell sets).
_EXERCISES = """() => {
    const article = document.querySelector('article.bd-article');
    const titles = [...article.querySelectorAll('.admonition-title')]
        .map(t => t.textContent.trim());
    const solutions = [...article.querySelectorAll('details')]
        .filter(d => d.querySelector('summary')?.textContent.includes('Show the solution'));
    const derivations = [...article.querySelectorAll('.admonition.dropdown')]
        .filter(a => a.querySelector('.admonition-title')?.textContent.includes('Solution'));
    // (a closed <details> keeps its content's boxes, hidden by content-visibility)
    const visible = e => !!e && e.checkVisibility({checkOpacity: true, checkVisibilityCSS: true});
    const body = a => a.querySelector(':scope > :not(.admonition-title)');
    return {exercises: titles.filter(t => t.startsWith('Exercise')).length,
            solutions: solutions.length,
            solutionsShown: solutions.filter(d => d.open || visible(d.querySelector('pre'))).length,
            derivations: derivations.length,
            derivationsShown: derivations.filter(a => visible(body(a))).length};
}"""


@pytest.mark.parametrize("entry", CHAPTERS)
def test_every_chapter_ends_with_exercises_whose_solutions_open_on_a_click(site, served, browser,
                                                                          entry):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{served}/{entry}.html", wait_until="networkidle")
    found = page.evaluate(_EXERCISES)
    low = 2 if "misbehaves" in entry else 4
    assert low <= found["exercises"] <= 6, found
    assert found["solutions"] >= 1 and found["solutionsShown"] == 0, found
    assert found["derivationsShown"] == 0, found
    page.locator("details", has_text="Show the solution").first.locator("summary").click()
    if found["derivations"]:
        page.locator(".admonition.dropdown", has_text="Solution").first.locator(
            ".admonition-title").click()
        page.wait_for_timeout(500)  # the toggle's transition
    opened = page.evaluate(_EXERCISES)
    page.close()
    assert opened["solutionsShown"] == 1, f"{entry}: a solution did not open on a click"
    assert opened["derivationsShown"] == min(1, found["derivations"]), (
        f"{entry}: a derivation stayed shut")
