"""Show the book's own code inside a chapter, read from the module itself.

A chapter that teaches a function calls ``show_source(fn)`` instead of pasting it, so the
code a reader sees is exactly the code that runs.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any


def source_markdown(obj: Any) -> str:
    """The source of a function, class or module as a Markdown code block with its file named."""
    source = inspect.getsource(obj).rstrip()
    path = Path(inspect.getsourcefile(obj))
    where = f"{path.parent.name}/{path.name}"
    return f"From `{where}`:\n\n```python\n{source}\n```"


def show_source(*objs: Any) -> None:
    """Display the source of each object (highlighted in Jupyter, Colab and on the website)."""
    from IPython.display import Markdown, display

    for obj in objs:
        display(Markdown(source_markdown(obj)))
