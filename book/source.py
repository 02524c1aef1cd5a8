"""Show the book's own code inside a chapter, read from the module itself.

A chapter that teaches a function calls ``show_source(fn)`` instead of pasting it, so the
code a reader sees is exactly the code that runs. A shown function that calls other
functions or classes of the book brings their definitions along, once per chapter, so that
no name on the page is left unexplained.
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


def source_markdown(obj: Any) -> str:
    """The source of a function, class or module as a Markdown code block with its file named.

    Methods are dedented, so that a method reads like a function.
    """
    source = textwrap.dedent(inspect.getsource(obj)).rstrip()
    path = Path(inspect.getsourcefile(obj))
    return f"From `{path.parent.name}/{path.name}`:\n\n```python\n{source}\n```"


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


def show_source(*objs: Any) -> None:
    """Display each object's source, then that of the book's definitions it uses, not yet shown.

    Highlighted in Jupyter, Colab and on the website.
    """
    from IPython.display import Markdown, display

    pending = list(objs)
    _shown.update(_key(obj) for obj in objs)  # shown in this call: not again as a dependency
    while pending:
        obj = pending.pop(0)
        display(Markdown(source_markdown(obj)))
        unseen = [d for d in book_dependencies(obj) if _key(d) not in _shown]
        for dependency in unseen:
            _shown.add(_key(dependency))  # announced here, displayed next
        if unseen:
            names = ", ".join(f"`{d.__name__}`" for d in unseen)
            display(Markdown(f"It uses {names}:"))
        pending[:0] = unseen
