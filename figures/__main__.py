"""``python -m figures``: redraw every figure module that has ``draw(path)``.

Each is drawn into ``figures/<name>.png``.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

HERE = Path(__file__).resolve().parent


def draw_all() -> list[Path]:
    """Draw each ``figures/<name>.py`` with a ``draw`` function; returns the images written."""
    written = []
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda m: m.name):
        if info.name.startswith("_"):  # __main__ itself
            continue
        module = importlib.import_module(f"figures.{info.name}")
        if callable(getattr(module, "draw", None)):
            module.draw(HERE / f"{info.name}.png")
            written.append(HERE / f"{info.name}.png")
    return written


if __name__ == "__main__":
    for path in draw_all():
        print(f"drew {path.relative_to(HERE.parent)}")
