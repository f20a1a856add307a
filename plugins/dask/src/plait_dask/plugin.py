"""Entry point module: registers the ``dask`` executor with plait."""

from __future__ import annotations

from plait import hookimpl
from plait.records import BackendInfo
from plait_dask.executor import DaskExecutor


@hookimpl
def plait_register_executors() -> list[BackendInfo]:
    return [
        BackendInfo(
            name="dask",
            factory=DaskExecutor,
            description="run sync nodes on a dask.distributed cluster (options: address, "
            "n_workers, threads_per_worker, client; env PLAIT_DASK_ADDRESS)",
        )
    ]
