from __future__ import annotations

from plait.executors import CallResult, NodeCall


class InlineExecutor:
    """Runs a sync callable directly on the event loop.

    For cheap functions only: while it runs, nothing else on the loop does.
    """

    name = "inline"

    async def run(self, call: NodeCall, /) -> CallResult:
        return call()

    async def aclose(self) -> None:
        return None
