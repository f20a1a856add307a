"""Pickle a call for a Dask worker, and say precisely what could not be pickled.

The helpers mirror ``plait_executors._pickling`` (each plugin depends on plait only); the
pickler is Dask's own (pickle, falling back to cloudpickle), as workers unpickle with it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from distributed.protocol import pickle

from plait.errors import ExecutorError


def callable_name(fn: Any) -> str:
    """``module.qualname`` of the function behind ``fn``.

    plait's runner hands executors ``functools.partial(helper, node_function, kwargs)``: the
    node function is the first callable positional argument of the partial.
    """
    if isinstance(fn, functools.partial):
        for arg in fn.args:
            if callable(arg):
                return callable_name(arg)
        return callable_name(fn.func)
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{qualname}" if module else qualname


def _parts(obj: Any, where: str) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, functools.partial):
        yield f"function {callable_name(obj.func)}", obj.func
        for i, arg in enumerate(obj.args):
            if callable(arg):
                yield f"function {callable_name(arg)}", arg
            elif isinstance(arg, dict):
                yield from _parts(arg, "argument")
            else:
                yield f"positional argument {i}", arg
        yield from _parts(obj.keywords, "argument")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield f"{where} {key!r}", value
    elif isinstance(obj, (tuple, list)):
        for i, value in enumerate(obj):
            yield f"{where} item {i}", value


def describe_unpicklable(
    obj: Any, dumps: Callable[[Any], bytes], exc: BaseException, where: str = "value"
) -> str:
    """Name the innermost part of ``obj`` that ``dumps`` refuses, and why."""
    for label, part in _parts(obj, where):
        try:
            dumps(part)
        except Exception as inner:
            return describe_unpicklable(part, dumps, inner, label)
    return f"{where} ({type(obj).__qualname__}) cannot be pickled ({type(exc).__name__}: {exc})"


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
