"""Pickle a call for another process, and say precisely what could not be pickled."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from plait.errors import ExecutorError
from plait.pickling import callable_name, describe_unpicklable


def dumps_call(fn: Callable[[], Any], executor: str) -> bytes:
    """Pickle ``fn`` or raise :class:`ExecutorError` naming the function and the culprit."""
    try:
        return pickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        detail = describe_unpicklable(fn, pickle.dumps, exc, "call")
        raise ExecutorError(
            f"the {executor} executor cannot send {callable_name(fn)} to a worker process: "
            f"{detail}. Node functions must be importable (defined at module level) and "
            "their arguments picklable"
        ) from exc


def dumps_result(fn: Callable[[], Any], value: Any) -> bytes:
    """In the worker: pickle ``value`` or raise :class:`ExecutorError` naming the culprit."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        detail = describe_unpicklable(value, pickle.dumps, exc, "result")
        raise ExecutorError(
            f"{callable_name(fn)} returned a value that cannot be sent back from the "
            f"worker process: {detail}"
        ) from None
