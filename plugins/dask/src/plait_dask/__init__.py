"""Run plait's sync nodes on a ``dask.distributed`` cluster: the ``dask`` executor."""

from __future__ import annotations

from plait_dask.executor import DaskExecutor

__all__ = ["DaskExecutor"]
