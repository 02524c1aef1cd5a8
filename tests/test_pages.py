"""Each chapter is a learner's path (issue 27): it opens with goals, needs and time, closes with a
summary and its references, cites only through ``references.bib``, and spells alike."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools.chapters import ROOT, chapter_notebooks

CHAPTERS = chapter_notebooks()
BIBLIOGRAPHY = ROOT / "references.bib"

# A citation role and the keys it names: {footcite:t}`a,b`, {cite:p}`a`, ...
CITATION = re.compile(r"\{(?:foot)?cite(?::[a-z]+)?\}`([^`]+)`")
# A citation typed by hand: "Kingma et al. (2016)", "(Burda et al., 2015)", "Neal and Hinton 1998".
BY_HAND = re.compile(r"\b[A-Z][\w'-]+(?: et al\.| and [A-Z][\w'-]+),? \(?(?:19|20)\d\d\b")
# The book writes US English; the other spelling of a word splits the site's search.
UK_SPELLINGS = ("amortis", "optimis", "normalis", "binaris", "parameteris", "regularis",
                "colour", "centre", "labelled", "modelling", "grey", "behaviour", "favour")


def markdown(notebook: Path) -> list[str]:
    """The Markdown cells of a chapter, in order."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def bibliography_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", BIBLIOGRAPHY.read_text(encoding="utf-8"), re.M))


def prose(text: str) -> str:
    """Markdown without its code: fenced blocks, inline code, roles' targets and labels."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"\{[\w:-]+\}`[^`]*`", " ", text)  # roles: {ref}`...`, {footcite:t}`...`
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"also spelled [\w-]+", " ", text)  # the other spelling, named for search
    return re.sub(r"^\([\w-]+\)=$", " ", text, flags=re.M)  # labels


def test_the_bibliography_parses_and_its_keys_are_unique():
    text = BIBLIOGRAPHY.read_text(encoding="utf-8")
    keys = re.findall(r"^@\w+\{([^,\s]+),", text, re.M)
    assert len(keys) >= 20 and len(keys) == len(set(keys)), "duplicate or missing entries"
    for entry in re.split(r"^@", text, flags=re.M)[1:]:
        assert re.search(r"^\s*title\s*=", entry, re.M), entry[:60]
        assert re.search(r"^\s*year\s*=", entry, re.M), entry[:60]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_citation_resolves_and_none_is_typed_by_hand(notebook):
    text = "\n".join(markdown(notebook))
    keys = {k.strip() for group in CITATION.findall(text) for k in group.split(",")}
    assert keys, f"{notebook.name} cites nothing through references.bib"
    missing = keys - bibliography_keys()
    assert not missing, f"{notebook.name}: keys not in references.bib: {sorted(missing)}"
    typed = BY_HAND.findall(prose(text)) and BY_HAND.search(prose(text))[0]
    assert not typed, f"{notebook.name}: a citation typed by hand: {typed!r}"


def test_the_opening_page_cites_through_the_bibliography_too():
    text = (ROOT / "intro.md").read_text(encoding="utf-8")
    keys = {k.strip() for group in CITATION.findall(text) for k in group.split(",")}
    assert keys <= bibliography_keys(), sorted(keys - bibliography_keys())
    typed = BY_HAND.search(prose(text))
    assert not typed, f"intro.md: a citation typed by hand: {typed[0]!r}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_opens_for_a_learner(notebook):
    opening = markdown(notebook)[0]
    for part in ("You will learn", "You need", "Time"):
        assert f"**{part}" in opening, f"{notebook.name}: its opening says nothing of '{part}'"
    goals = re.findall(r"^- ", opening.split("**You will learn")[1].split("**You need")[0], re.M)
    assert 3 <= len(goals) <= 6, f"{notebook.name}: {len(goals)} goals"
    assert not re.search(r"TIME_[A-Z]+", opening), f"{notebook.name}: a placeholder is left"
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    set_up = [c for c in cells[:first_code + 3] if c["cell_type"] == "code"]
    # Prose, not code, on the first screen: the set-up, parameters and import cells are folded.
    for cell in set_up:
        tags = cell.get("metadata", {}).get("tags", [])
        if "import" in "".join(cell["source"]) or "parameters" in tags or cell is set_up[0]:
            assert {"hide-input", "remove-input"} & set(tags), (
                f"{notebook.name}: a set-up cell shows its code: {''.join(cell['source'])[:60]!r}")


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_ends_with_a_summary_a_bridge_and_its_references(notebook):
    cells = markdown(notebook)
    assert re.fullmatch(r"## References\s*```\{footbibliography\}\s*```\s*", cells[-1].strip()), (
        f"{notebook.name}: the last cell is not its references")
    text = "\n".join(cells)
    assert re.search(r"^## Summary", text, re.M), f"{notebook.name} has no summary"
    after = text.split("## Summary", 1)[1]
    assert re.search(r"\{doc\}`|\{ref\}`", after), (
        f"{notebook.name}: no bridge from the summary to what comes next")


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_spells_in_us_english(notebook):
    text = prose("\n".join(markdown(notebook))).lower()
    found = sorted({w for w in UK_SPELLINGS if w in text})
    assert not found, f"{notebook.name} uses UK spellings: {found}"


def test_the_reparameterization_trick_is_found_under_both_spellings():
    # Site search matches whole words: the chapter that teaches the trick names both spellings.
    first = "\n".join(markdown(CHAPTERS[0])).lower()
    assert "reparameterization" in first and "reparametrization" in first


def test_the_opening_page_spells_in_us_english():
    text = prose((ROOT / "intro.md").read_text(encoding="utf-8")).lower()
    found = sorted({w for w in UK_SPELLINGS if w in text})
    assert not found, f"intro.md uses UK spellings: {found}"
