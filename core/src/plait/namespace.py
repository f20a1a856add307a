"""``Namespace``: a hierarchical registry of callables addressed by nsref (``"a.b:name"``)."""

from __future__ import annotations

import re
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

import attrs

from plait.errors import ArgumentTypeError, DuplicateNameError, FactoryError, NsrefError
from plait.introspect import CallableInfo, describe
from plait.tags import TagQuery, check_tags

if TYPE_CHECKING:
    from plait.dag import Dag
    from plait.entries import CachePolicy
    from plait.factory import FactoryCall
    from plait.protocols import CacheBackend

__all__ = ["EntryMeta", "Namespace", "NamespaceNode", "format_nsref", "parse_nsref"]

_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NO_TAGS: Final[frozenset[str]] = frozenset()
_FUNCTION: Final = types.FunctionType


def parse_nsref(nsref: str) -> tuple[tuple[str, ...], str]:
    """Split ``"a.b:name"`` into ``(("a", "b"), "name")``. ``"name"`` has no branches.

    Branches and leaf are Python identifiers (``str.isidentifier``: ``"café"`` and
    ``"节点"`` are fine)."""
    if type(nsref) is str and nsref.isascii() and nsref.isidentifier():
        return (), nsref  # a bare ASCII leaf: what nearly every node of a Dag registers under
    if not isinstance(nsref, str):
        raise NsrefError(f"nsref must be a string like 'a.b:name', got {type(nsref).__name__}")
    branch_part, colon, leaf = nsref.rpartition(":")
    if colon and not branch_part:
        raise NsrefError(f"malformed nsref {nsref!r}: nothing before ':' (expected 'a.b:name')")
    if ":" in branch_part:
        raise NsrefError(f"malformed nsref {nsref!r}: more than one ':' (expected 'a.b:name')")
    branches = tuple(branch_part.split(".")) if colon else ()
    for part in (*branches, leaf):
        if not part.isidentifier():
            where = "leaf" if part is leaf else "branch"
            raise NsrefError(
                f"malformed nsref {nsref!r}: {where} {part!r} is not an identifier "
                "(expected 'a.b:name')"
            )
    return branches, leaf


def format_nsref(branches: tuple[str, ...], leaf: str) -> str:
    return f"{'.'.join(branches)}:{leaf}" if branches else leaf


@attrs.frozen(kw_only=True)
class EntryMeta:
    """What a namespace entry carries besides its callable."""

    tags: frozenset[str] = _NO_TAGS
    #: set when the entry is served through a cache
    cache_policy: CachePolicy | None = None
    #: set when a factory built the entry
    factory_call: FactoryCall | None = None


class NamespaceNode:
    """A registered callable. Stays callable; knows its nsref, signature and resolved types.

    ``decorator``, when given, wraps the callable for calls (the signature and types are
    still read from the original). ``tags`` are what :meth:`Namespace.query` matches;
    ``cache_policy`` is set when the entry is served through a cache, ``factory_call`` when
    a DAG factory built it (both are what :meth:`Namespace.to_dict` writes).
    """

    __slots__ = ("__weakref__", "_call", "decorator", "fn", "localns", "meta", "nsref")

    def __init__(
        self,
        fn: Callable[..., Any],
        nsref: str,
        decorator: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
        localns: dict[str, Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise ArgumentTypeError(f"cannot register {fn!r:.60} at {nsref!r}: not callable")
        self.fn = fn
        self.nsref = nsref
        self.decorator = decorator
        self.localns = localns
        #: tags, cache policy, factory call; None for a plain entry (most: every Dag node)
        self.meta: EntryMeta | None = None
        self._call = decorator(fn) if decorator is not None else fn

    @property
    def tags(self) -> frozenset[str]:
        return _NO_TAGS if self.meta is None else self.meta.tags

    @property
    def cache_policy(self) -> CachePolicy | None:
        return None if self.meta is None else self.meta.cache_policy

    @property
    def factory_call(self) -> FactoryCall | None:
        return None if self.meta is None else self.meta.factory_call

    @property
    def dag(self) -> Dag | None:
        """The :class:`~plait.Dag` registered here, or ``None`` for a plain callable."""
        from plait.dag import Dag

        return self.fn if isinstance(self.fn, Dag) else None

    @property
    def call(self) -> Callable[..., Any]:
        """The callable the runner invokes (decorated, if a decorator was given)."""
        return self._call

    @property
    def info(self) -> CallableInfo:
        """Parameters, resolved type hints, return type, sync/async (cached)."""
        info = describe(self.fn, self.localns)
        if self._call is not self.fn:
            call_info = describe(self._call)
            if call_info.is_async != info.is_async or call_info.inline != info.inline:
                import attrs

                info = attrs.evolve(info, is_async=call_info.is_async, inline=call_info.inline)
        return info

    @property
    def name(self) -> str:
        return self.nsref.rpartition(":")[2]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<NamespaceNode {self.nsref}>"


class DeferredEntry(Protocol):
    """What :meth:`Namespace.defer` registers on first look: ``call`` at the leaf ``label``."""

    @property
    def label(self) -> str: ...

    @property
    def call(self) -> Callable[..., Any]: ...


class Namespace:
    """Callables by nsref. Branches are reachable by attribute: ``ns.a.b.name(...)``."""

    __hash__ = None  # type: ignore[assignment]  # equal by content, and mutable

    def __init__(self) -> None:
        self._leaves: dict[str, NamespaceNode] = {}
        self._branches: dict[str, Namespace] = {}
        #: entries registered on first look (see :meth:`defer`), in the order they came, and
        #: the one owner (a Dag) whose labels they are
        self._deferred: list[DeferredEntry] = []
        self._deferred_owner: object = None
        #: held while deferred entries are registered: a thread that looks at the namespace
        #: meanwhile waits for them instead of missing them
        self._settling = threading.Lock()

    def defer(self, entry: DeferredEntry, owner: object) -> bool:
        """Register ``entry.call`` at the leaf ``entry.label`` when the namespace is next
        looked at, as if now; False (nothing done) unless that leaf is a free ASCII
        identifier. ``owner`` (a Dag) keeps the labels of its entries distinct, so two
        deferred entries never claim one leaf: what :meth:`plait.dag.Dag.node` does for
        every plain function, without a :class:`NamespaceNode` per node until one is asked
        for. Every other method settles the deferred entries first, in order."""
        leaf = entry.label
        if not (leaf.isascii() and leaf.isidentifier()):
            return False
        if owner is not self._deferred_owner:
            self.settle()
            self._deferred_owner = owner
        if leaf in self._leaves or leaf in self._branches:
            return False
        self._deferred.append(entry)
        return True

    def settle(self) -> None:
        """Register the deferred entries (see :meth:`defer`)."""
        if self._deferred:
            with self._settling:
                deferred = self._deferred
                leaves = self._leaves
                for entry in deferred:
                    leaf = entry.label
                    leaves[leaf] = NamespaceNode(entry.call, leaf)
                # emptied once every entry is in: until then another thread waits above
                self._deferred = []
        self._deferred_owner = None

    def register(
        self,
        fn: Callable[..., Any] | NamespaceNode | Dag,
        nsref: str | None = None,
        *,
        decorator: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
        localns: dict[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        args: Mapping[str, Any] | None = None,
        cache_policy: CachePolicy | None = None,
    ) -> NamespaceNode:
        """Register ``fn`` at ``nsref`` (default: its ``__name__``) and return its node.

        ``fn`` may be a :class:`~plait.Dag`, or a :func:`~plait.dag_factory`, which is
        called with ``args`` (keyword arguments) and the Dag it builds registered. ``tags``
        are matched by :meth:`query`. ``cache_policy`` only records the TTLs of an entry
        that ``decorator`` serves through a cache (:func:`plait.register_cached_callable`
        sets both).
        """
        self.settle()
        carried = None
        if isinstance(fn, NamespaceNode):
            decorator = decorator or fn.decorator
            carried = fn.meta
            fn = fn.fn
        if nsref is None:
            nsref = getattr(fn, "__name__", None) or type(fn).__name__
        branches, leaf = parse_nsref(nsref)
        nsref = format_nsref(branches, leaf)
        meta = carried
        if (
            type(fn) is not _FUNCTION  # a Dag, a factory, a callable object...
            or tags is not None
            or args is not None
            or cache_policy is not None
        ):  # plain functions (every node a Dag registers) skip all this
            fn, meta = _entry(fn, nsref, tags, args, cache_policy, carried)
        target = self._branch(branches, create=True, nsref=nsref)
        if leaf in target._leaves or leaf in target._branches:
            raise DuplicateNameError(f"nsref {nsref!r} is already registered")
        node = NamespaceNode(fn, nsref, decorator, localns)
        if meta is not None:
            node.meta = meta
        target._leaves[leaf] = node
        return node

    def register_module(
        self,
        module: str | types.ModuleType,
        branch: str | None = None,
        *,
        cache: CacheBackend | str | None = None,
    ) -> list[NamespaceNode]:
        """Register every function (and DAG factory) of ``module`` marked with
        :func:`plait.entry`, under ``branch`` (``"a.b"``; default: top level), in the order
        they are defined. An entry marked with a cache section is served through the cache
        backend ``cache`` (a name or an instance; default: the default cache)."""
        from plait.entries import register_module

        return register_module(self, module, branch, cache=cache)

    def query(self, query: str) -> list[NamespaceNode]:
        """The entries whose tags match ``query`` (``"etl & ~slow | critical"``), depth
        first. A malformed query raises :class:`plait.errors.TagQueryError` at its position.
        """
        match = TagQuery(query)
        return [node for node in self if match(node.tags)]

    def to_dict(self) -> dict[str, Any]:
        """The namespace as JSON/TOML-safe data: ``{"entries": [{"gref": ..., "nsref": ...,
        "tags": [...], "cache": {...}, "args": {...}}, ...]}``. Every entry must be
        importable (a module-level function, or a Dag built by a ``@dag_factory``);
        otherwise :class:`plait.errors.GrefError` names its nsref."""
        from plait.entries import namespace_to_dict

        return namespace_to_dict(self)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        cache: CacheBackend | str | None = None,
    ) -> Namespace:
        """The namespace ``data`` describes (what :meth:`to_dict` returns, or the
        ``entries``/``modules`` of a configuration file). Every problem is reported at once
        in one :class:`plait.errors.ConfigError`. Cached entries use ``cache`` (a backend
        name or instance; default: the default cache)."""
        from plait.entries import namespace_from_dict

        return namespace_from_dict(data, cache=cache, namespace=cls())

    def __eq__(self, other: object) -> bool:
        """Same nsrefs holding the same callables (or the same factory calls), tags and
        cache policies."""
        if not isinstance(other, Namespace):
            return NotImplemented
        return _identity(self) == _identity(other)

    def register_free(
        self, fn: Callable[..., Any], base: str, localns: dict[str, Any] | None = None
    ) -> NamespaceNode:
        """Register ``fn`` at the leaf ``base`` (an identifier), or ``base_2``, ``base_3``...
        when it is taken: what :meth:`plait.dag.Dag.node` does for every plain callable."""
        self.settle()
        leaves, leaf, n = self._leaves, base, 1
        plain = base.isascii() and base.isidentifier()
        while (leaf in leaves) if plain else (leaf in self):
            n += 1
            leaf = f"{base}_{n}"
        if plain and leaf not in self._branches:
            node = leaves[leaf] = NamespaceNode(fn, leaf, None, localns)
            return node
        return self.register(fn, leaf, localns=localns)  # raises the error naming it

    def get(self, nsref: str) -> NamespaceNode:
        """The node at ``nsref``; :class:`NsrefError` naming it when there is none."""
        self.settle()
        branches, leaf = parse_nsref(nsref)
        target = self._branch(branches, create=False, nsref=nsref)
        try:
            return target._leaves[leaf]
        except KeyError:
            raise NsrefError(f"nothing is registered at nsref {nsref!r}") from None

    def __contains__(self, nsref: object) -> bool:
        self.settle()
        if type(nsref) is str and nsref.isascii() and nsref.isidentifier():
            return nsref in self._leaves  # a bare ASCII leaf (no branches): the fast path
        if not isinstance(nsref, str):
            return False
        try:
            self.get(nsref)
        except NsrefError:
            return False
        return True

    def _branch(self, branches: tuple[str, ...], *, create: bool, nsref: str) -> Namespace:
        self.settle()
        ns = self
        for part in branches:
            child = ns._branches.get(part)
            if child is None:
                if not create:
                    raise NsrefError(
                        f"nothing is registered at nsref {nsref!r} (no branch {part!r})"
                    )
                if part in ns._leaves:
                    raise DuplicateNameError(
                        f"cannot create branch {part!r} for {nsref!r}: "
                        "a callable is registered there"
                    )
                child = ns._branches[part] = Namespace()
            ns = child
        return ns

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("__", "_deferred")):
            raise AttributeError(name)
        if self.__dict__.get("_deferred"):
            self.settle()
        branches = self.__dict__.get("_branches", {})
        if name in branches:
            return branches[name]
        leaves = self.__dict__.get("_leaves", {})
        if name in leaves:
            return leaves[name]
        raise AttributeError(f"namespace has no branch or callable {name!r}")

    def __iter__(self) -> Iterator[NamespaceNode]:
        """Every registered node, depth first."""
        self.settle()
        yield from self._leaves.values()
        for branch in self._branches.values():
            yield from branch

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def nsrefs(self) -> list[str]:
        return [node.nsref for node in self]

    def __repr__(self) -> str:
        return f"<Namespace: {len(self)} entries>"


def _entry(
    fn: Any,
    nsref: str,
    tags: Iterable[str] | None,
    args: Mapping[str, Any] | None,
    cache_policy: CachePolicy | None,
    carried: EntryMeta | None,
) -> tuple[Any, EntryMeta | None]:
    """What to register for ``fn`` and its metadata: a DAG factory is called with
    ``args``; a Dag keeps the record of the factory call that built it."""
    from plait.factory import DagFactory, origin_of

    factory_call = None if carried is None else carried.factory_call
    if isinstance(fn, DagFactory):
        fn = fn.build(args or {}, where=f"nsref {nsref!r}")
        factory_call = origin_of(fn)
    elif args is not None:
        raise FactoryError(
            f"nsref {nsref!r}: args are for DAG factories, and {fn!r} is not one "
            "(decorate it with @plait.dag_factory)"
        )
    elif factory_call is None:
        factory_call = origin_of(fn)
    checked = _NO_TAGS if tags is None else check_tags(tags, where=f"nsref {nsref!r}")
    if not checked and cache_policy is None and factory_call is None:
        return fn, None
    return fn, EntryMeta(tags=checked, cache_policy=cache_policy, factory_call=factory_call)


def _identity(ns: Namespace) -> dict[str, tuple[Any, ...]]:
    return {
        node.nsref: (
            node.factory_call if node.factory_call is not None else node.fn,
            node.tags,
            node.cache_policy,
        )
        for node in ns
    }
