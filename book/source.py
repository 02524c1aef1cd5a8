"""Show the book's own code inside a chapter, read from the module itself.

A chapter that teaches a function calls ``show_source(fn)`` instead of pasting it, so the
code a reader sees is exactly the code that runs. A shown function that calls other
functions or classes of the book brings their definitions along, once per chapter, so that
no name on the page is left unexplained.

Printed source is folded under a one-line summary (an HTML ``<details>`` element inside the
Markdown, which Jupyter, Colab and the website's MyST renderer all honour) that the reader opens
on demand; the code that *is* the lesson is shown open with ``folded=False``. The definitions a
shown function brings along are always folded.
"""
from __future__ import annotations

import inspect
import textwrap
import types
from pathlib import Path
from typing import Any

_shown: set[str] = set()  # what this kernel (this chapter) has displayed, by qualified name
# Plumbing a reader need not see: it picks NumPy or torch, or converts types.
NOT_FOLLOWED = {"_xp", "_to_float64"}


def _key(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def source_markdown(obj: Any, folded: bool = False) -> str:
    """The source of a function, class or module as a Markdown code block with its file named;
    ``folded``: inside a ``<details>`` element whose summary names it and counts its lines.

    Methods are dedented, so that a method reads like a function.
    """
    source = textwrap.dedent(inspect.getsource(obj)).rstrip()
    path = Path(inspect.getsourcefile(inspect.unwrap(obj)))  # its own file, not a decorator's
    where = f"{path.parent.name}/{path.name}"
    block = f"```python\n{source}\n```"
    if not folded:
        return f"From `{where}`:\n\n{block}"
    lines = source.count("\n") + 1
    summary = f"From <code>{where}</code>: <code>{_name(obj)}</code> ({lines} lines)"
    return _folded(summary, block)


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", obj.__name__)


def _folded(summary: str, markdown: str) -> str:
    """``markdown`` inside a ``<details>`` element opened by a click on ``summary``."""
    # Blank lines around the content: CommonMark (Jupyter, Colab) and MyST (the website) then
    # parse it as Markdown inside the HTML element.
    return (f'<details class="book-source"><summary>{summary}</summary>\n\n{markdown}\n\n'
            "</details>")


def _names(code: types.CodeType) -> list[str]:
    """The global names a code object (with its nested functions and lambdas) refers to."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _names(const)
    return names


def book_dependencies(obj: Any) -> list[Any]:
    """The functions and classes of the book's own modules that a function's body names."""
    function = inspect.unwrap(obj)
    if not inspect.isfunction(function):
        return []
    found = []
    for name in dict.fromkeys(_names(function.__code__)):  # in order, without repeats
        value = function.__globals__.get(name)
        if ((inspect.isfunction(value) or inspect.isclass(value)) and value is not obj
                and value.__module__.split(".")[0] == "book" and name not in NOT_FOLLOWED):
            found.append(value)
    return found


def show_source(*objs: Any, folded: bool = True) -> None:
    """Display each object's source, then, in one folded block, that of the book's definitions
    it uses (and they use) not yet shown in this chapter.

    Highlighted in Jupyter, Colab and on the website. ``folded=False`` shows the objects asked
    for open (the code that is the lesson); their dependencies are folded either way.
    """
    from IPython.display import Markdown, display

    _shown.update(_key(obj) for obj in objs)  # shown in this call: not again as a dependency
    for obj in objs:
        display(Markdown(source_markdown(obj, folded=folded)))
    used, pending = [], list(objs)
    while pending:  # breadth first: what the objects use, then what that uses
        for dependency in book_dependencies(pending.pop(0)):
            if _key(dependency) not in _shown:
                _shown.add(_key(dependency))
                used.append(dependency)
                pending.append(dependency)
    if used:
        display(Markdown(dependencies_markdown(used)))


def dependencies_markdown(objs: list[Any]) -> str:
    """The sources of the definitions a shown function uses, in one folded block whose summary
    names them (a chapter's page shows one line for them, not one per definition)."""
    names = ", ".join(f"<code>{_name(obj)}</code>" for obj in objs)
    what = "the definition" if len(objs) == 1 else f"{len(objs)} definitions"
    return _folded(f"It uses {what} of the book: {names}",
                   "\n\n".join(source_markdown(obj) for obj in objs))
