"""What plait needs to know about a callable: parameters, resolved types, sync or async.

Results are cached per function object, so building a 100,000-node DAG of one function
inspects it once.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing
import weakref
from collections.abc import Callable
from typing import Any, Final

import attrs

__all__ = ["EMPTY", "CallableInfo", "ParamInfo", "describe", "is_inline", "type_name"]


class _Empty:
    """Marker for a missing annotation or default."""

    _instance: _Empty | None = None

    def __new__(cls) -> _Empty:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unannotated>"


EMPTY: Final = _Empty()

INLINE_ATTR: Final = "__plait_inline__"


@attrs.frozen(kw_only=True)
class ParamInfo:
    name: str
    annotation: Any
    default: Any = EMPTY
    is_context: bool = False

    @property
    def required(self) -> bool:
        return self.default is EMPTY

    def describe(self) -> str:
        return f"{self.name}: {type_name(self.annotation)}"


@attrs.frozen(kw_only=True)
class CallableInfo:
    name: str
    params: tuple[ParamInfo, ...]
    return_type: Any
    is_async: bool
    inline: bool
    hint_error: str | None = None

    @property
    def data_params(self) -> tuple[ParamInfo, ...]:
        """Parameters that receive values (every one but the context)."""
        return tuple(p for p in self.params if not p.is_context)

    @property
    def context_param(self) -> ParamInfo | None:
        return next((p for p in self.params if p.is_context), None)


_CACHE: weakref.WeakKeyDictionary[Any, CallableInfo] = weakref.WeakKeyDictionary()


def type_name(tp: Any) -> str:
    if tp is EMPTY:
        return "<unannotated>"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def is_inline(fn: Callable[..., Any]) -> bool:
    return bool(getattr(fn, INLINE_ATTR, False))


def _closure_namespace(fn: Any) -> dict[str, Any]:
    """Names a closure can see beyond its globals: its free variables' current values."""
    code = getattr(fn, "__code__", None)
    cells = getattr(fn, "__closure__", None)
    if code is None or not cells:
        return {}
    out: dict[str, Any] = {}
    for name, cell in zip(code.co_freevars, cells, strict=False):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # empty cell
            continue
    return out


def _is_context_type(tp: Any) -> bool:
    from plait.context import DagContext

    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return isinstance(tp, type) and issubclass(tp, DagContext)


def describe(fn: Callable[..., Any], localns: dict[str, Any] | None = None) -> CallableInfo:
    """Inspect ``fn`` (following ``__wrapped__``), resolving string annotations.

    ``localns`` adds names visible where a nested function was defined (its enclosing
    function's locals), so ``from __future__ import annotations`` works for local types.
    """
    try:
        return _CACHE[fn]
    except (KeyError, TypeError):
        pass
    info = _describe(fn, localns)
    with contextlib.suppress(TypeError):  # not weak-referenceable (builtins, partials)
        _CACHE[fn] = info
    return info


def _annotated(target: Any) -> Any:
    """What holds the annotations of ``target``: itself, or for a callable object its
    class's ``__call__``, for a ``functools.partial`` its function."""
    if isinstance(target, functools.partial):
        return _annotated(inspect.unwrap(target.func))
    if (
        inspect.isfunction(target)
        or inspect.ismethod(target)
        or inspect.isclass(target)
        or inspect.ismodule(target)
        or inspect.isbuiltin(target)
    ):
        return target
    return getattr(type(target), "__call__", target)  # noqa: B004 - callable objects


def _describe(fn: Callable[..., Any], localns: dict[str, Any] | None) -> CallableInfo:
    target = inspect.unwrap(fn)
    name = getattr(target, "__name__", None) or type(target).__name__
    sig = inspect.signature(target)
    hint_error = None
    try:
        source = _annotated(target)
        names = {**(localns or {}), **_closure_namespace(source)}
        hints = typing.get_type_hints(source, localns=names, include_extras=True)
    except Exception as exc:  # NameError for an undefined forward reference, mostly
        hints = {}
        hint_error = f"cannot resolve type hints of {name}: {exc}"
    params: list[ParamInfo] = []
    for p in sig.parameters.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        ann = hints.get(p.name, EMPTY if p.annotation is inspect.Parameter.empty else p.annotation)
        params.append(
            ParamInfo(
                name=p.name,
                annotation=ann,
                default=EMPTY if p.default is inspect.Parameter.empty else p.default,
                is_context=ann is not EMPTY and _is_context_type(ann),
            )
        )
    ret = hints.get(
        "return",
        EMPTY if sig.return_annotation is inspect.Signature.empty else sig.return_annotation,
    )
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )
    return CallableInfo(
        name=name,
        params=tuple(params),
        return_type=ret,
        is_async=is_async,
        inline=is_inline(fn),
        hint_error=hint_error,
    )
