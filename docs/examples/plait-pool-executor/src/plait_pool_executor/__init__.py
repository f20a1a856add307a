"""An executor on a thread pool of its own: the executor example of plait's plugin guide."""

from __future__ import annotations

from plait_pool_executor.executor import PoolExecutor

__all__ = ["PoolExecutor"]
