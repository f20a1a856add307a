"""Markers for callables."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from plait.introspect import INLINE_ATTR

F = TypeVar("F", bound=Callable[..., object])

__all__ = ["inline"]


def inline(fn: F) -> F:
    """Mark a cheap sync function to run directly on the event loop (no thread hop).

    The function is returned unchanged, so it stays a plain callable.
    """
    setattr(fn, INLINE_ATTR, True)
    return fn
