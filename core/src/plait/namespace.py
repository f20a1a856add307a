"""``Namespace``: a hierarchical registry of callables addressed by nsref (``"a.b:name"``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from plait.errors import ArgumentTypeError, DuplicateNameError, NsrefError
from plait.introspect import CallableInfo, describe

__all__ = ["Namespace", "NamespaceNode", "format_nsref", "parse_nsref"]


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


class NamespaceNode:
    """A registered callable. Stays callable; knows its nsref, signature and resolved types.

    ``decorator``, when given, wraps the callable for calls (the signature and types are
    still read from the original).
    """

    __slots__ = ("__weakref__", "_call", "decorator", "fn", "localns", "nsref")

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
        self._call = decorator(fn) if decorator is not None else fn

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


class Namespace:
    """Callables by nsref. Branches are reachable by attribute: ``ns.a.b.name(...)``."""

    def __init__(self) -> None:
        self._leaves: dict[str, NamespaceNode] = {}
        self._branches: dict[str, Namespace] = {}

    def register(
        self,
        fn: Callable[..., Any] | NamespaceNode,
        nsref: str | None = None,
        *,
        decorator: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
        localns: dict[str, Any] | None = None,
    ) -> NamespaceNode:
        """Register ``fn`` at ``nsref`` (default: its ``__name__``) and return its node."""
        if isinstance(fn, NamespaceNode):
            decorator = decorator or fn.decorator
            fn = fn.fn
        if nsref is None:
            nsref = getattr(fn, "__name__", None) or type(fn).__name__
        branches, leaf = parse_nsref(nsref)
        nsref = format_nsref(branches, leaf)
        target = self._branch(branches, create=True, nsref=nsref)
        if leaf in target._leaves or leaf in target._branches:
            raise DuplicateNameError(f"nsref {nsref!r} is already registered")
        node = NamespaceNode(fn, nsref, decorator, localns)
        target._leaves[leaf] = node
        return node

    def get(self, nsref: str) -> NamespaceNode:
        """The node at ``nsref``; :class:`NsrefError` naming it when there is none."""
        branches, leaf = parse_nsref(nsref)
        target = self._branch(branches, create=False, nsref=nsref)
        try:
            return target._leaves[leaf]
        except KeyError:
            raise NsrefError(f"nothing is registered at nsref {nsref!r}") from None

    def __contains__(self, nsref: object) -> bool:
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
        if name.startswith("__"):
            raise AttributeError(name)
        branches = self.__dict__.get("_branches", {})
        if name in branches:
            return branches[name]
        leaves = self.__dict__.get("_leaves", {})
        if name in leaves:
            return leaves[name]
        raise AttributeError(f"namespace has no branch or callable {name!r}")

    def __iter__(self) -> Iterator[NamespaceNode]:
        """Every registered node, depth first."""
        yield from self._leaves.values()
        for branch in self._branches.values():
            yield from branch

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def nsrefs(self) -> list[str]:
        return [node.nsref for node in self]
