"""Style rules for the code that the chapters display."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINE = 96


def test_shown_code_fits_the_website_code_blocks():
    """No line of book/*.py or figures/*.py is longer than 96 characters.

    The chapters display this code (``book.source.show_source`` puts a module's own source on
    the page), and a code block on the website holds 98 monospace columns at a 1280 px wide
    window. A longer line would make the reader scroll sideways; 96 leaves a little margin.
    """
    offenders = []
    for path in sorted([*ROOT.glob("book/*.py"), *ROOT.glob("figures/*.py")]):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if len(line) > MAX_LINE:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {len(line)}")
    assert not offenders, (
        f"{len(offenders)} lines are longer than {MAX_LINE} characters "
        "(file:line: length):\n" + "\n".join(offenders)
    )
