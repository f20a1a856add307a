"""Namespace entries as data, and module fragments.

An *entry* is what a configuration file's ``[[entries]]`` table (or one item of
:meth:`plait.Namespace.to_dict`) declares::

    gref = "package.module:callable"   # required: what to register
    nsref = "branch.sub:name"          # default: the callable's name
    tags = ["etl", "slow"]             # matched by Namespace.query
    cache = { min_ttl = 1, max_ttl = 7, version = 2 }   # served through the cache backend
    factory = true                     # gref builds the entry: call it with args on load
    args = { region = "eu" }           # keyword arguments of the factory

A ``gref`` naming a :func:`~plait.dag_factory` is a factory without saying so. A *module*
(``[[modules]]``: ``module = "package.module"``, ``branch = "a.b"``) registers every
function of the module marked with :func:`entry`.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

import attrs

from plait.errors import ConfigError, FactoryError, GrefError, PlaitError, TtlError
from plait.factory import DagFactory, FactoryCall
from plait.gref import gref_of, import_module, resolve
from plait.namespace import EntryMeta
from plait.problems import Checker, join
from plait.tags import check_tags

if TYPE_CHECKING:
    from plait.namespace import Namespace, NamespaceNode
    from plait.protocols import CacheBackend

__all__ = [
    "CachePolicy",
    "EntrySpec",
    "ModuleSpec",
    "entry",
    "build_namespace",
    "namespace_from_dict",
    "namespace_to_dict",
    "parse_namespace",
    "register_module",
    "register_spec",
]

F = TypeVar("F")

ENTRY_KEYS: Final = ("gref", "nsref", "tags", "cache", "factory", "args")
MODULE_KEYS: Final = ("module", "branch")
CACHE_KEYS: Final = ("min_ttl", "max_ttl", "version")
MARK: Final = "__plait_entry__"


def _days(value: float | timedelta) -> float:
    return value.total_seconds() / 86400.0 if isinstance(value, timedelta) else value


@attrs.frozen(kw_only=True)
class CachePolicy:
    """TTLs (days, or :class:`~datetime.timedelta`, kept as days) and version of an entry
    served through the cache; see :func:`plait.cached`."""

    min_ttl: float = attrs.field(converter=_days)
    max_ttl: float = attrs.field(converter=_days)
    version: str | int | None = None

    def __attrs_post_init__(self) -> None:
        from plait.cache import check_ttls

        check_ttls(self.min_ttl, self.max_ttl)
        if self.version is not None and type(self.version) not in (str, int):
            raise TtlError(f"version must be a str or an int, not {type(self.version).__name__}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"min_ttl": self.min_ttl, "max_ttl": self.max_ttl}
        if self.version is not None:
            out["version"] = self.version
        return out


@attrs.frozen(kw_only=True)
class EntryMark:
    """What :func:`entry` attaches to a function of a module fragment."""

    name: str | None
    tags: frozenset[str]
    cache: CachePolicy | None


@attrs.frozen(kw_only=True)
class EntrySpec:
    """One validated ``[[entries]]`` table; ``key`` is where it was declared."""

    key: str
    gref: str
    nsref: str | None = None
    tags: frozenset[str] = frozenset()
    cache: CachePolicy | None = None
    factory: bool | None = None
    args: Mapping[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ModuleSpec:
    """One validated ``[[modules]]`` table."""

    key: str
    module: str
    branch: str | None = None


# ---------------------------------------------------------------------- module fragments
@overload
def entry(fn: F, /) -> F: ...
@overload
def entry(
    *,
    name: str | None = None,
    tags: Iterable[str] | None = None,
    cache: CachePolicy | Mapping[str, Any] | None = None,
) -> Callable[[F], F]: ...
def entry(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    tags: Iterable[str] | None = None,
    cache: CachePolicy | Mapping[str, Any] | None = None,
) -> Any:
    """Mark a module-level function (or ``@dag_factory``) as an entry of its module.

    :meth:`plait.Namespace.register_module` (or a ``[[modules]]`` table) registers every
    marked function, under ``name`` (default: its own), with ``tags``, served through the
    cache when ``cache`` is given (``CachePolicy(min_ttl=..., max_ttl=...)`` or a dict of
    the same keys). The function itself is returned unchanged, still a plain function.
    """
    checked = check_tags(tags, where=f"@entry({name or ''})")
    policy = CachePolicy(**cache) if isinstance(cache, Mapping) else cache
    mark = EntryMark(name=name, tags=checked, cache=policy)

    def decorate(target: F) -> F:
        if not callable(target):
            raise TypeError(f"@entry marks a function, not {target!r}")
        setattr(target, MARK, mark)
        return target

    return decorate if fn is None else decorate(fn)


def marked(module: types.ModuleType) -> list[tuple[str, Any, EntryMark]]:
    """``(attribute name, object, mark)`` of every entry defined in ``module``."""
    out = []
    for attr, obj in vars(module).items():
        mark = getattr(obj, MARK, None)
        if isinstance(mark, EntryMark) and getattr(obj, "__module__", None) == module.__name__:
            out.append((attr, obj, mark))
    return out


def register_module(
    ns: Namespace,
    module: str | types.ModuleType,
    branch: str | None = None,
    *,
    cache: CacheBackend | str | None = None,
) -> list[NamespaceNode]:
    """See :meth:`plait.Namespace.register_module`."""
    from plait.namespace import format_nsref, parse_nsref

    target: types.ModuleType = import_module(module) if isinstance(module, str) else module
    prefix: tuple[str, ...] = ()
    if branch:
        prefix = parse_nsref(f"{branch}:x")[0]
    nodes = []
    for attr, obj, mark in marked(target):
        nsref = format_nsref(prefix, mark.name or attr)
        nodes.append(_register(ns, obj, nsref, mark.tags, mark.cache, cache))
    return nodes


# ---------------------------------------------------------------------- registering
def _register(
    ns: Namespace,
    obj: Any,
    nsref: str,
    tags: frozenset[str],
    policy: CachePolicy | None,
    cache: CacheBackend | str | None,
    factory_call: FactoryCall | None = None,
) -> NamespaceNode:
    if policy is None:
        node = ns.register(obj, nsref, tags=tags)
    else:
        from plait.cache import register_cached_callable

        if isinstance(obj, DagFactory) or _is_dag(obj):
            raise FactoryError(f"nsref {nsref!r}: a DAG cannot be cached (drop its cache section)")
        node = register_cached_callable(
            ns,
            obj,
            policy.min_ttl,
            policy.max_ttl,
            nsref=nsref,
            backend=cache,
            version=policy.version,
            tags=tags,
        )
    if factory_call is not None:
        node.meta = EntryMeta(
            tags=node.tags, cache_policy=node.cache_policy, factory_call=factory_call
        )
    return node


def _is_dag(obj: Any) -> bool:
    from plait.dag import Dag

    return isinstance(obj, Dag)


def register_spec(
    ns: Namespace, spec: EntrySpec, *, cache: CacheBackend | str | None = None
) -> NamespaceNode:
    """Import, build (for a factory) and register the entry ``spec`` describes."""
    target = resolve(spec.gref)
    is_dag_factory = isinstance(target, DagFactory)
    factory = spec.factory if spec.factory is not None else is_dag_factory
    where = f"{spec.key} (gref {spec.gref!r})"
    if spec.args is not None and not factory:
        raise FactoryError(
            f"{where}: args are given, but the gref is not a factory (add factory = true)"
        )
    if not callable(target):
        raise GrefError(f"gref {spec.gref!r} names {type(target).__name__} object, not a callable")
    nsref = spec.nsref or spec.gref.rpartition(":")[2].rpartition(".")[2]
    factory_call = None
    if factory:
        if is_dag_factory:
            target = target.build(spec.args or {}, where=where)
        else:
            target = _call_factory(target, spec, where)
            factory_call = FactoryCall(gref=spec.gref, args=dict(spec.args or {}), factory=None)
    return _register(ns, target, nsref, spec.tags, spec.cache, cache, factory_call)


def _call_factory(factory: Callable[..., Any], spec: EntrySpec, where: str) -> Any:
    try:
        built = factory(**(spec.args or {}))
    except TypeError as exc:
        raise FactoryError(f"{where}: calling the factory failed: {exc}") from exc
    if not callable(built):
        raise FactoryError(
            f"{where}: the factory returned {type(built).__name__}, not a callable or a Dag"
        )
    return built


# ---------------------------------------------------------------------- dict form
def namespace_to_dict(ns: Namespace) -> dict[str, Any]:
    """See :meth:`plait.Namespace.to_dict`."""
    return {"entries": [_entry_dict(node) for node in ns]}


def _entry_dict(node: NamespaceNode) -> dict[str, Any]:
    from plait.converter import to_json_safe

    call = node.factory_call
    item: dict[str, Any]
    if call is not None:
        if call.gref is None:
            raise GrefError(
                f"nsref {node.nsref!r}: built by a factory that is not importable by a gref "
                "(define it at module level)"
            )
        item = {"gref": call.gref, "nsref": node.nsref}
        if not isinstance(call.factory, DagFactory):
            item["factory"] = True
        if call.args:
            item["args"] = to_json_safe(dict(call.args), where=f"args of nsref {node.nsref!r}")
    else:
        if node.dag is not None:
            raise GrefError(
                f"nsref {node.nsref!r}: a Dag can be written to a dict only when a "
                "@dag_factory built it"
            )
        gref = gref_of(node.fn)
        if gref is None:
            raise GrefError(
                f"nsref {node.nsref!r}: {node.fn!r} is not importable by a gref (a lambda, a "
                "nested function or an object made at run time); register a module-level "
                "function"
            )
        item = {"gref": gref, "nsref": node.nsref}
    if node.tags:
        item["tags"] = sorted(node.tags)
    if node.cache_policy is not None:
        item["cache"] = node.cache_policy.to_dict()
    return item


def parse_namespace(
    data: Mapping[str, Any], checker: Checker, *, key: str = ""
) -> tuple[list[EntrySpec], list[ModuleSpec]]:
    """The ``entries`` and ``modules`` of ``data``, validated; problems go to ``checker``."""
    entries = []
    for where, raw in checker.records(data.get("entries"), join(key, "entries")):
        spec = _parse_entry(raw, where, checker)
        if spec is not None:
            entries.append(spec)
    modules = []
    for where, raw in checker.records(data.get("modules"), join(key, "modules")):
        table = checker.table(raw, where, MODULE_KEYS)
        if table is None:
            continue
        module = checker.string(table, "module", where, required=True)
        branch = checker.string(table, "branch", where)
        if branch is not None and not _valid_branch(branch, join(where, "branch"), checker):
            continue
        if module is not None:
            modules.append(ModuleSpec(key=where, module=module, branch=branch))
    return entries, modules


def _valid_branch(branch: str, key: str, checker: Checker) -> bool:
    from plait.namespace import parse_nsref

    try:
        parse_nsref(f"{branch}:x")
    except PlaitError:
        checker.add(key, f"{branch!r} is not a branch like 'a.b'")
        return False
    return True


def _parse_entry(raw: object, key: str, checker: Checker) -> EntrySpec | None:
    table = checker.table(raw, key, ENTRY_KEYS)
    if table is None:
        return None
    before = len(checker.problems)
    gref = checker.string(table, "gref", key, required=True)
    nsref = checker.string(table, "nsref", key)
    if nsref is not None:
        from plait.namespace import parse_nsref

        try:
            parse_nsref(nsref)
        except PlaitError as exc:
            checker.add(join(key, "nsref"), str(exc))
    tags: frozenset[str] = frozenset()
    raw_tags = checker.strings(table, "tags", key)
    try:
        tags = check_tags(raw_tags, where=None)
    except PlaitError as exc:
        checker.add(join(key, "tags"), str(exc))
    factory = table.get("factory")
    if factory is not None and not isinstance(factory, bool):
        checker.add(join(key, "factory"), f"must be true or false, got {factory!r}")
    args = table.get("args")
    if args is not None:
        checker.table(args, join(key, "args"), None)
    policy = _parse_cache(table.get("cache"), join(key, "cache"), checker)
    if len(checker.problems) > before or gref is None:
        return None
    return EntrySpec(
        key=key,
        gref=gref,
        nsref=nsref,
        tags=tags,
        cache=policy,
        factory=factory,
        args=args,
    )


def _parse_cache(raw: object, key: str, checker: Checker) -> CachePolicy | None:
    if raw is None:
        return None
    table = checker.table(raw, key, CACHE_KEYS)
    if table is None:
        return None
    values = {}
    for name in ("min_ttl", "max_ttl"):
        value = table.get(name)
        if value is None:
            checker.add(join(key, name), "is required (days, a number)")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            checker.add(join(key, name), f"must be a number of days, got {value!r}")
        else:
            values[name] = value
    if len(values) < 2:
        return None
    try:
        return CachePolicy(**values, version=table.get("version"))
    except PlaitError as exc:
        checker.add(key, str(exc))
        return None


def build_namespace(
    ns: Namespace,
    entries: Iterable[EntrySpec],
    modules: Iterable[ModuleSpec],
    checker: Checker,
    *,
    cache: CacheBackend | str | None = None,
) -> dict[str, str]:
    """Register every module and entry in ``ns``; each failure becomes a problem. Returns
    the key that declared each registered nsref."""
    declared: dict[str, str] = {}
    for module in modules:
        try:
            nodes = register_module(ns, module.module, module.branch, cache=cache)
        except PlaitError as exc:
            checker.add(module.key, str(exc))
        else:
            declared.update((node.nsref, module.key) for node in nodes)
    for spec in entries:
        try:
            node = register_spec(ns, spec, cache=cache)
        except PlaitError as exc:
            checker.add(spec.key, str(exc))
        else:
            declared[node.nsref] = spec.key
    return declared


def namespace_from_dict(
    data: Mapping[str, Any],
    *,
    cache: CacheBackend | str | None = None,
    namespace: Namespace,
) -> Namespace:
    """See :meth:`plait.Namespace.from_dict`."""
    checker = Checker()
    table = checker.table(data, "namespace", ("entries", "modules"))
    if table is not None:
        entries, modules = parse_namespace(table, checker)
        if not checker.problems:
            build_namespace(namespace, entries, modules, checker, cache=cache)
    if checker.problems:
        raise ConfigError(checker.problems)
    return namespace
