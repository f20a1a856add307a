"""Entry point module: registers the ``inline``, ``thread`` and ``process`` executors."""

from __future__ import annotations

from plait import hookimpl
from plait.records import BackendInfo
from plait_executors.inline import InlineExecutor
from plait_executors.process import ProcessExecutor
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
        BackendInfo(
            name="process",
            factory=ProcessExecutor,
            description="run sync nodes in a pool of worker processes (options: max_workers, "
            "start_method)",
        ),
    ]
