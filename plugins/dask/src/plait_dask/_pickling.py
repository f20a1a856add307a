"""Pickle a call for a Dask worker, and say precisely what could not be pickled.

The helpers mirror ``plait_executors._pickling`` (each plugin depends on plait only); the
pickler is Dask's own (pickle, falling back to cloudpickle), as workers unpickle with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from distributed.protocol import pickle

from plait.errors import ExecutorError
from plait.pickling import callable_name, describe_unpicklable


def dumps_call(fn: Callable[[], Any]) -> bytes:
    """Pickle ``fn`` or raise :class:`ExecutorError` naming the function and the culprit."""
    try:
        return bytes(pickle.dumps(fn))
    except Exception as exc:
        detail = describe_unpicklable(fn, pickle.dumps, exc, "call")
        raise ExecutorError(
            f"the dask executor cannot send {callable_name(fn)} to the cluster: {detail}. "
            "Node functions must be importable on the workers (or picklable by "
            "cloudpickle) and their arguments picklable"
        ) from exc


def dumps_result(fn: Callable[[], Any], value: Any) -> bytes:
    """On the worker: pickle ``value`` or raise :class:`ExecutorError` naming the culprit."""
    try:
        return bytes(pickle.dumps(value))
    except Exception as exc:
        detail = describe_unpicklable(value, pickle.dumps, exc, "result")
        raise ExecutorError(
            f"{callable_name(fn)} returned a value that cannot be sent back from the "
            f"Dask worker: {detail}"
        ) from None
