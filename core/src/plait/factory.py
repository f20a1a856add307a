"""DAG factories: ``@dag_factory`` functions build a :class:`~plait.Dag` from parameters.

A factory stands for a Dag wherever one is expected: ``dag.node(factory)``,
``dag.map(factory)``, ``ns.register(factory, args={...})`` and configuration entries
(``gref`` naming the factory, ``args`` its keyword arguments). Where no arguments can be
given (``dag.node``, ``dag.map``) it is called with its defaults. Every Dag a factory builds
remembers the call (:func:`origin_of`), so a namespace holding it can be written back to a
dict or a configuration file.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec

import attrs

from plait.errors import FactoryError
from plait.gref import gref_of

if TYPE_CHECKING:
    from plait.dag import Dag

__all__ = ["DagFactory", "FactoryCall", "dag_factory", "origin_of"]

P = ParamSpec("P")

_ORIGINS: weakref.WeakKeyDictionary[Any, FactoryCall] = weakref.WeakKeyDictionary()


@attrs.frozen(kw_only=True)
class FactoryCall:
    """How a Dag was built: the factory's gref (``None`` when it is not importable) and the
    arguments it was called with, by parameter name (defaults left out)."""

    gref: str | None
    args: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    #: the factory itself, for equality of factories that have no gref
    factory: Any = attrs.field(default=None, eq=False, repr=False, hash=False)


class DagFactory(Generic[P]):
    """What :func:`dag_factory` returns: call it like the function to build a Dag."""

    def __init__(self, fn: Callable[P, Dag]) -> None:
        if not callable(fn):
            raise FactoryError(f"@dag_factory decorates a function, not {fn!r}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name: str = getattr(fn, "__name__", type(fn).__name__)
        self.signature = inspect.signature(fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Dag:
        from plait.dag import Dag

        bound = self.signature.bind(*args, **kwargs)
        given = dict(bound.arguments)  # what the caller chose; defaults stay the factory's
        dag = self.fn(*bound.args, **bound.kwargs)
        if not isinstance(dag, Dag):
            raise FactoryError(
                f"DAG factory {self.name!r} returned {type(dag).__name__}, not a Dag"
            )
        call = FactoryCall(gref=gref_of(self), args=given, factory=self)
        _ORIGINS[dag] = call
        return dag

    def build(self, args: Mapping[str, Any], *, where: str) -> Dag:
        """Call with keyword ``args``; :class:`FactoryError` naming ``where``, the factory
        and the parameters when they do not fit."""
        if not isinstance(args, Mapping):
            raise FactoryError(f"{where}: args of DAG factory {self.name!r} must be a table")
        try:
            self.signature.bind(**args)
        except TypeError as exc:
            params = ", ".join(self.signature.parameters) or "none"
            raise FactoryError(
                f"{where}: DAG factory {self.name!r} cannot take args {sorted(args)}: {exc} "
                f"(parameters: {params})"
            ) from None
        build: Callable[..., Dag] = self  # the arguments were checked against the signature
        return build(**args)

    def __repr__(self) -> str:
        return f"<DagFactory {self.name}>"


def dag_factory(fn: Callable[P, Dag]) -> DagFactory[P]:
    """Mark ``fn`` as a function that builds a :class:`~plait.Dag` from its parameters.

    The result is called like ``fn`` and stands for a Dag wherever one is expected; see
    :mod:`plait.factory`. A factory that returns anything but a Dag raises
    :class:`plait.errors.FactoryError` naming it.
    """
    return DagFactory(fn)


def origin_of(obj: Any) -> FactoryCall | None:
    """The factory call that built the Dag ``obj``, or ``None``."""
    try:
        return _ORIGINS.get(obj)
    except TypeError:  # not weakly referenceable, or unhashable: not a Dag
        return None


def stand_in(target: Any) -> tuple[Dag, str] | None:
    """``(dag, default label)`` when ``target`` stands for a Dag: a :class:`DagFactory`
    (built with its defaults) or a namespace entry holding a Dag; else ``None``."""
    if isinstance(target, DagFactory):
        return target.build({}, where=f"dag.node({target.name})"), target.name
    from plait.namespace import NamespaceNode

    if isinstance(target, NamespaceNode) and target.dag is not None:
        return target.dag, target.name
    return None
