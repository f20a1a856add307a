"""Entry point module: registers the ``dask`` executor with plait.

``distributed`` is imported only when the executor is built, so loading plait's plugins
stays cheap for programs that never use Dask.
"""

from __future__ import annotations

from typing import Any

from plait import hookimpl
from plait.records import BackendInfo


def _make_executor(**options: Any) -> Any:
    from plait_dask.executor import DaskExecutor

    return DaskExecutor(**options)


@hookimpl
def plait_register_executors() -> list[BackendInfo]:
    return [
        BackendInfo(
            name="dask",
            factory=_make_executor,
            description="run sync nodes on a dask.distributed cluster (options: address, "
            "n_workers, threads_per_worker, client; env PLAIT_DASK_ADDRESS)",
        )
    ]
