"""plait-dask: run plait nodes on a ``dask.distributed`` cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait_dask.executor import DaskExecutor

__all__ = ["DaskExecutor"]


def __getattr__(name: str) -> Any:
    # lazy: importing the package (as plait's plugin loader does) must not import distributed
    if name == "DaskExecutor":
        from plait_dask.executor import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module 'plait_dask' has no attribute {name!r}")
