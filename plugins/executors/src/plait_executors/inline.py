from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class InlineExecutor:
    """Runs a sync callable directly on the event loop.

    For cheap functions only: while it runs, nothing else on the loop does.
    """

    name = "inline"

    async def run(self, fn: Callable[[], T], /) -> T:
        return fn()

    async def aclose(self) -> None:
        return None
