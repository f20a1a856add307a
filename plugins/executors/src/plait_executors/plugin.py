"""Entry point module: registers the ``inline`` and ``thread`` executors with plait."""

from __future__ import annotations

from plait import hookimpl
from plait.records import BackendInfo
from plait_executors.inline import InlineExecutor
from plait_executors.thread import ThreadExecutor


@hookimpl
def plait_register_executors() -> list[BackendInfo]:
    return [
        BackendInfo(
            name="inline", factory=InlineExecutor, description="run sync nodes on the event loop"
        ),
        BackendInfo(
            name="thread",
            factory=ThreadExecutor,
            description="run sync nodes on worker threads (option: max_workers)",
        ),
    ]
