"""The entry-point module: tells plait which executors this distribution provides."""

from __future__ import annotations

from plait import hookimpl
from plait.records import BackendInfo
from plait_pool_executor.executor import PoolExecutor


@hookimpl
def plait_register_executors() -> list[BackendInfo]:
    return [
        BackendInfo(
            name="pool",
            factory=PoolExecutor,
            description="run sync nodes on a thread pool of the executor's own (option: "
            "max_workers)",
        )
    ]
