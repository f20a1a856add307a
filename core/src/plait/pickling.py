"""Helpers for executors that send calls to other processes: say what cannot be pickled.

plait's runner hands executors a :class:`~plait.executors.NodeCall`; these helpers name the
node function and find the innermost argument a pickler refuses, so an executor can fail a
node with a message that points at the culprit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from plait.executors import NodeCall

__all__ = ["callable_name", "describe_unpicklable"]


def callable_name(fn: Any) -> str:
    """``module.qualname`` of the function behind ``fn`` (a node function, a
    :class:`~plait.executors.NodeCall`, or a partial: its first callable positional argument).
    """
    if isinstance(fn, NodeCall):
        return callable_name(fn.function)
    if isinstance(fn, functools.partial):
        for arg in fn.args:
            if callable(arg):
                return callable_name(arg)
        return callable_name(fn.func)
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{qualname}" if module else qualname


def _parts(obj: Any, where: str) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, NodeCall):
        yield f"function {callable_name(obj.function)}", obj.function
        yield from _parts(dict(obj.arguments), "argument")
        yield "context", obj.context
    elif isinstance(obj, functools.partial):
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
