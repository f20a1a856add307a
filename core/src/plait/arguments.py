"""Checks of the arguments users pass to plait's public functions and backends.

Each check raises :class:`~plait.errors.ArgumentTypeError` (a ``TypeError``) or
:class:`~plait.errors.ArgumentError` (a ``ValueError``) whose message names the argument
and the function it was given to. Checks run once per call of a public function (building
a node, a runner, a backend), never per node of a run.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from plait.errors import ArgumentError, ArgumentTypeError

__all__ = ["count", "file_path", "flag", "instance", "label_set", "seconds"]


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.60}"


def instance(value: Any, types: type | tuple[type, ...], *, name: str, where: str) -> Any:
    """``value`` when it is an instance of ``types``."""
    if not isinstance(value, types):
        wanted = (
            types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        )
        raise ArgumentTypeError(f"{where}: {name} must be {wanted}, got {_shown(value)}")
    return value


def flag(value: Any, *, name: str, where: str) -> bool:
    """``value`` when it is a bool."""
    return bool(instance(value, bool, name=name, where=where))


def count(value: Any, *, name: str, where: str, minimum: int) -> int:
    """``value`` when it is an int (not a bool) of at least ``minimum``."""
    if type(value) is bool or not isinstance(value, int):
        raise ArgumentTypeError(f"{where}: {name} must be an int, got {_shown(value)}")
    if value < minimum:
        raise ArgumentError(f"{where}: {name} must be >= {minimum}, got {value}")
    return value


def seconds(value: Any, *, name: str, where: str, zero: bool) -> float:
    """``value`` when it is a finite number of seconds, > 0 (or >= 0 when ``zero``)."""
    if type(value) is bool or not isinstance(value, int | float):
        raise ArgumentTypeError(f"{where}: {name} must be a number of seconds, got {_shown(value)}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ArgumentError(f"{where}: {name} must be a finite number {bound}, got {value}")
    return float(value)


def file_path(value: Any, *, name: str, where: str) -> Path:
    """``value`` (a ``str`` or path-like) as a :class:`Path`; no NUL byte in it."""
    if not isinstance(value, str | os.PathLike):
        raise ArgumentTypeError(f"{where}: {name} must be a str or a path, got {_shown(value)}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise ArgumentTypeError(f"{where}: {name} must be a str path, got {_shown(text)}")
    if "\0" in text:
        raise ArgumentError(f"{where}: {name} {text!r} holds a NUL byte, which no path may hold")
    return Path(text)


def label_set(value: Any, *, name: str, where: str) -> frozenset[str]:
    """``value`` (a set, list or tuple of node labels; not a single string) as a set."""
    if isinstance(value, str | bytes) or not isinstance(value, set | frozenset | list | tuple):
        raise ArgumentTypeError(
            f"{where}: {name} must be a set of node labels, got {_shown(value)} "
            f"(for one node: {{{value!r:.40}}})"
        )
    for item in value:
        if not isinstance(item, str):
            raise ArgumentTypeError(f"{where}: {name} holds {_shown(item)}, not a node label")
    return frozenset(value)
