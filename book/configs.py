"""A model's config holds plain Python values, checked when it is built.

Configs are frozen dataclasses (``Architecture``, ``MLPConfig``, ``ConvConfig``) that a
checkpoint stores beside the weights. ``plain_fields`` converts each field to the type of its
default at construction: ``np.int64(4)`` becomes ``4`` and ``np.float64`` a float, so the
checkpoint holds only data that ``torch.load(..., weights_only=True)`` reads, and a value of
the wrong kind (``z_dim=2.5``, ``channels=16``) fails at once, with the field's name, instead
of deep inside a layer or when the checkpoint is read back.
"""
from __future__ import annotations

import dataclasses
import operator
from typing import Any


def plain_fields(config: Any) -> None:
    """Convert, in place, every field of the frozen dataclass ``config`` to the type of its
    default: int, float, str or a tuple of those. Raises ValueError naming the field."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        try:
            converted = _like(field.default, value)
        except (TypeError, ValueError):
            kind = type(field.default).__name__
            raise ValueError(f"{type(config).__name__}.{field.name} must be of type {kind} "
                             f"(like {field.default!r}), got {value!r}") from None
        object.__setattr__(config, field.name, converted)


def require(config: Any, condition: bool, field: str, what: str) -> None:
    """ValueError ``<Config>.<field> must be <what>, got <value>`` unless ``condition``."""
    if not condition:
        raise ValueError(f"{type(config).__name__}.{field} must be {what}, "
                         f"got {getattr(config, field)!r}")


def _like(default: Any, value: Any) -> Any:
    """``value`` as a plain value of ``default``'s type; TypeError or ValueError if it is not
    one (a float for an int, a string for a number, a tuple of another length)."""
    if isinstance(value, bool) or isinstance(default, bool):
        raise TypeError("booleans are not config values")
    if isinstance(default, int):
        return operator.index(value)  # any integer type; 2.0 and "2" are refused
    if isinstance(default, float):
        if isinstance(value, (str, bytes)):
            raise TypeError("a number, not text")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise TypeError("text")
        return str(value)
    if isinstance(default, tuple):
        value = tuple(value)
        if len(value) != len(default):
            raise ValueError(f"{len(default)} values")
        return tuple(_like(d, v) for d, v in zip(default, value))
    raise TypeError(f"no plain type for a default of {type(default).__name__}")
