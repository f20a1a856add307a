"""Cached callables: ``@cached`` and :func:`register_cached_callable`.

A cached callable keeps its results in a cache backend (by default the ``sqlite`` backend of
``plait-cache-sqlite``, one file shared by every process of the user). For a call whose
stored value is ``age`` old:

- ``age < min_ttl``: the stored value is returned (a *hit*);
- ``min_ttl <= age < max_ttl``: the value is recomputed with probability
  ``(age - min_ttl) / (max_ttl - min_ttl)`` (a *refresh*), else returned;
- ``age >= max_ttl``, or nothing stored: the value is computed and stored (a *miss*).

The key is the callable's identity (``module:qualname``), its ``version`` and the canonical
form of its bound arguments (defaults applied), so ``f(1, b=2)`` and ``f(b=2, a=1)`` share
an entry. Values go through plait's converter as JSON and come back as the annotated return
type. Exceptions are never cached. Concurrent identical calls in one process compute once.

Pushback: when a rate-limited service asks you to back off, :func:`push_back` (or raising
:class:`plait.errors.CachePushback` from the cached callable) suppresses the probabilistic
refreshes of every cached callable under a namespace prefix for a while; values are then
served until ``max_ttl``. The pushback is kept in the cache store, for every process.

Nothing happens at import or decoration time: the backend is looked up and opened on the
first call.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import hashlib
import inspect
import json
import json.scanner
import math
import os
import random
import sys
import threading
import time
import typing
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Final, ParamSpec, Protocol, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread

from plait import arguments, defaults
from plait.converter import dumps, get_converter, is_json_safe, loads, structure, to_json_safe
from plait.errors import (
    ArgumentTypeError,
    CacheBypassError,
    CacheKeyError,
    CachePushback,
    ConversionError,
    PlaitWarning,
    StoreError,
    TtlError,
)
from plait.gref import resolve_callable
from plait.records import CacheStats

if TYPE_CHECKING:
    from plait.namespace import Namespace, NamespaceNode
    from plait.plugins import PluginHost
    from plait.protocols import CacheBackend, CacheEntry

__all__ = [
    "CachedFunction",
    "RandomSource",
    "cached",
    "callable_id",
    "check_ttls",
    "clear",
    "close_backends",
    "in_scope",
    "prune",
    "push_back",
    "pushbacks",
    "register_cached_callable",
    "require_cache",
    "stats",
]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: Seconds in a day: TTLs given as numbers are days.
DAY: Final = 86400.0
#: Arguments whose canonical JSON is longer than this are keyed by their SHA-256.
MAX_INLINE_KEY: Final = 160

_HIT: Final = 0
_REFRESH: Final = 1
_MISS: Final = 2

_FAST_TYPES: Final = frozenset({str, int, bool, float, type(None)})
_SCALAR_RETURNS: Final = frozenset({str, int, bool, type(None)})
_TAG: Final = "$plait"
_scan_json: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed types the argument oddly
)
_encode_key = json.JSONEncoder(
    separators=(",", ":"), sort_keys=True, allow_nan=False, ensure_ascii=False
).encode


class _Required:
    """Marks a parameter without a default in the fast argument binder."""


_REQUIRED: Final = _Required()


class RandomSource(Protocol):
    """Anything with ``random() -> float`` in ``[0, 1)``, such as :class:`random.Random`."""

    def random(self) -> float: ...


class CachedFunction(Protocol[P, R_co]):
    """What :func:`cached` returns: the callable, plus cache helpers.

    ``__wrapped__`` is the original callable (its signature and type hints are what a DAG
    wires); ``callable_id`` is the identity the cache keys and counters use.
    """

    @property
    def __wrapped__(self) -> Callable[P, R_co]: ...

    @property
    def callable_id(self) -> str: ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def cache_info(self) -> CacheStats:
        """This callable's counters and entry count."""
        ...

    def cache_clear(self) -> int:
        """Drop this callable's entries and counters; return how many entries."""
        ...


# ---------------------------------------------------------------------- TTLs and identity
def _ttl_seconds(value: object, name: str) -> float:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value) * DAY
    elif value is None:
        raise TtlError(f"{name} is required: write @cached(min_ttl=..., max_ttl=...) (days)")
    elif callable(value):
        raise TtlError(
            f"{name} must be a number of days or a timedelta, got the callable {value!r}: "
            "write @cached(min_ttl=..., max_ttl=...), not bare @cached"
        )
    else:
        raise TtlError(
            f"{name} must be a number of days or a timedelta, not {type(value).__name__}"
        )
    if math.isnan(seconds) or seconds < 0:
        raise TtlError(f"{name} must be a non-negative duration, got {value!r}")
    return seconds


def check_ttls(min_ttl: object, max_ttl: object) -> tuple[float, float]:
    """``(min, max)`` in seconds; :class:`TtlError` for bad TTLs (days or timedeltas)."""
    return _ttls(min_ttl, max_ttl)


def _ttls(min_ttl: object, max_ttl: object) -> tuple[float, float]:
    low = _ttl_seconds(min_ttl, "min_ttl")
    high = _ttl_seconds(max_ttl, "max_ttl")
    if low > high:
        raise TtlError(f"min_ttl ({min_ttl!r}) must not exceed max_ttl ({max_ttl!r})")
    return low, high


def callable_id(fn: Callable[..., Any]) -> str:
    """The identity a cache uses for ``fn``: ``"module:qualname"`` of the original callable."""
    target = inspect.unwrap(fn)
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise CacheKeyError(
            f"cannot cache {fn!r}: it has no __module__/__qualname__ to identify it by "
            "(wrap it in a def)"
        )
    return f"{module}:{qualname}"


# ---------------------------------------------------------------------- argument keys
def _canonical(value: Any, where: str) -> Any:
    """JSON-safe canonical form of one argument (``where`` names it in errors)."""
    kind = type(value)
    if kind in _FAST_TYPES:
        if kind is float and not math.isfinite(value):
            return {_TAG: "float", "v": repr(value)}
        return value
    if isinstance(value, datetime):
        return {_TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {_TAG: "date", "v": value.isoformat()}
    if isinstance(value, PurePath):
        return {_TAG: "path", "v": str(value)}
    if kind is list or kind is tuple:
        return [_canonical(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if kind is set or kind is frozenset:
        items = [_canonical(item, f"{where} item") for item in value]
        return {_TAG: "set", "v": sorted(items, key=_encode_key)}
    if kind is dict:
        if all(type(k) is str for k in value):
            return {k: _canonical(v, f"{where}[{k!r}]") for k, v in value.items()}
        pairs = [
            [_canonical(k, f"{where} key"), _canonical(v, f"{where}[{k!r}]")]
            for k, v in value.items()
        ]
        return {_TAG: "dict", "v": sorted(pairs, key=_encode_key)}
    try:
        data = to_json_safe(value, where=where)
    except ConversionError as exc:
        raise CacheKeyError(
            f"{where} ({kind.__module__}.{kind.__qualname__}) cannot be part of a cache key: "
            "use str, int, float, bool, None, date, datetime, Path, attrs classes, "
            "dataclasses or containers of those, or register a cattrs unstructure hook"
        ) from exc
    return {_TAG: f"{kind.__module__}.{kind.__qualname__}", "v": data}


class _KeyMaker:
    """Turns a call's arguments into a key string. Built on the first call."""

    def __init__(self, fn: Callable[..., Any], cid: str, prefix: str) -> None:
        from plait.introspect import describe

        self.cid = cid
        self.prefix = prefix
        self.sig = inspect.signature(fn)
        params = list(self.sig.parameters.values())
        context = {p.name for p in describe(fn).params if p.is_context}
        self.keyed = tuple(p.name not in context for p in params)
        self.names = tuple(p.name for p in params)
        self.index = {p.name: i for i, p in enumerate(params)}
        self.defaults = tuple(
            _REQUIRED if p.default is inspect.Parameter.empty else p.default for p in params
        )
        plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self.fast = all(p.kind in plain for p in params) and all(self.keyed)
        self.npos = sum(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        #: positional calls with at least this many arguments need no further checks
        self.complete_from = 1 + max(
            (i for i, d in enumerate(self.defaults) if d is _REQUIRED), default=-1
        )

    def _bind(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Sequence[str], Sequence[Any]]:
        if self.fast:
            n = len(args)
            if not kwargs and self.complete_from <= n <= self.npos:
                return self.names, args + self.defaults[n:]  # the rest have defaults
            if n <= self.npos:
                values = [*args, *self.defaults[n:]]
                index = self.index
                for name, value in kwargs.items():
                    i = index.get(name, -1)
                    if i < n:  # unknown name, or given twice: let bind() raise
                        break
                    values[i] = value
                else:
                    if not any(v is _REQUIRED for v in values):
                        return self.names, values
        bound = self.sig.bind(*args, **kwargs)  # raises TypeError like a plain call would
        bound.apply_defaults()
        names = []
        values = []
        for (name, value), keyed in zip(bound.arguments.items(), self.keyed, strict=True):
            if keyed:
                names.append(name)
                values.append(value)
        return names, values

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        names, values = self._bind(args, kwargs)
        for value in values:
            if type(value) not in _FAST_TYPES:
                break
        else:
            # Only str, int, bool, float and None: the repr of the tuple is canonical and
            # injective, and starts with "(" where the JSON form below starts with "[".
            payload = repr(tuple(values))
            if len(payload) > MAX_INLINE_KEY:
                payload = "#" + hashlib.sha256(payload.encode()).hexdigest()
            return self.prefix + payload
        payload = _encode_key(
            [
                _canonical(value, f"{self.cid}: argument {name!r}")
                for name, value in zip(names, values, strict=True)
            ]
        )
        if len(payload) > MAX_INLINE_KEY:
            payload = "#" + hashlib.sha256(payload.encode()).hexdigest()
        return self.prefix + payload


def _parsed_as(rtype: Any) -> type | None:
    """``dict`` for a ``dict[str, Any]`` (or bare ``dict``) return type, ``list`` for
    ``list[Any]`` (or bare ``list``): the converter would only copy parsed JSON of that
    type, so it is the value as it is. None for every other type."""
    if rtype is dict or rtype is list:
        return cast("type", rtype)
    origin, args = typing.get_origin(rtype), typing.get_args(rtype)
    if origin is dict and args == (str, Any):
        return dict
    if origin is list and args == (Any,):
        return list
    return None


# ---------------------------------------------------------------------- shared backends
class _Registry:
    """Backends plait opened by name, shared by every cached callable of the process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.backends: dict[tuple[str, str | None, int], CacheBackend] = {}
        self.users: weakref.WeakSet[_Cached] = weakref.WeakSet()
        # Backends inherited across a fork. Never read, but they must stay referenced: if the
        # child let them be collected, their finalisers would close the parent's SQLite
        # connections and could checkpoint or delete the WAL under the parent.
        self.abandoned: list[CacheBackend] = []
        self.atexit_registered = False

    def get(self, name: str, db_path: str | Path | None, host: PluginHost | None) -> CacheBackend:
        key = (name, None if db_path is None else str(db_path), id(host) if host else 0)
        with self.lock:
            backend = self.backends.get(key)
            if backend is None:
                from plait.plugins import get_cache

                options: dict[str, Any] = {} if db_path is None else {"path": db_path}
                backend = cast("CacheBackend", get_cache(name, host=host, **options))
                backend.open()
                self.backends[key] = backend
                if not self.atexit_registered:
                    atexit.register(close_backends)
                    self.atexit_registered = True
            return backend

    def close_all(self) -> None:
        with self.lock:
            backends = list(self.backends.values())
            self.backends.clear()
            for user in list(self.users):
                user.forget_shared_backend()
        errors = []
        for backend in backends:
            try:
                backend.close()
            except Exception as exc:  # close the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]

    def after_fork(self) -> None:
        """In a forked child, never touch the parent's connections: start afresh."""
        self.lock = threading.Lock()
        self.abandoned.extend(self.backends.values())
        self.backends.clear()
        for user in list(self.users):
            user.after_fork()


_REGISTRY: Final = _Registry()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_REGISTRY.after_fork)

#: The callable id of the cached callable computing in this context (see require_cache).
_THROUGH_CACHE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "plait_through_cache", default=None
)

_LIMITER: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar(
    "plait_cache_limiter"
)


def _limiter() -> anyio.CapacityLimiter:
    """plait's own limiter for cache writes from async code, one per event loop."""
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(4)
        _LIMITER.set(limiter)
        return limiter


def close_backends() -> None:
    """Close every backend plait opened by name (buffered counters are written first).

    Runs at interpreter exit; call it yourself to release the files earlier (tests do).
    Cached callables reopen their backend on their next call.
    """
    _REGISTRY.close_all()


def _resolve_backend(
    backend: str | CacheBackend | None, db_path: str | Path | None, host: PluginHost | None
) -> CacheBackend:
    if backend is None or isinstance(backend, str):
        name = defaults.cache_name(backend)
        return _REGISTRY.get(name, db_path, host)
    backend.open()
    return backend


# ---------------------------------------------------------------------- the cached callable
_UNSET: Final = object()


class _Flight:
    """One in-progress computation that identical concurrent calls wait for."""

    __slots__ = ("done", "error", "result", "value_json")

    def __init__(self, done: Any) -> None:
        self.done = done
        self.value_json: str | None = None
        self.error: Exception | None = None
        #: the leader's value when it could not be stored (no ``value_json`` then)
        self.result: Any = _UNSET


class _Cached:
    """State and logic behind one cached callable."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        min_s: float,
        max_s: float,
        backend: str | CacheBackend | None,
        version: str | int | None,
        db_path: str | Path | None,
        clock: Callable[[], float] | None,
        rng: RandomSource | None,
        host: PluginHost | None,
        scope: str | None = None,
    ) -> None:
        self.fn = fn
        self.callable_id = callable_id(fn)
        #: the name pushbacks are matched against: its nsref, or its callable id
        self.scope = scope or self.callable_id
        self.min_s = min_s
        self.max_s = max_s
        self.version = version
        self._backend_spec = backend
        self._db_path = db_path
        self._host = host
        self._clock = clock or time.time
        self._random = (rng or random).random
        self._shared = backend is None or isinstance(backend, str)
        self.backend: CacheBackend | None = None
        self._keys: _KeyMaker | None = None
        self._return_type: Any = None
        #: dict or list when parsed JSON of that type already is a return value (see
        #: :func:`_parsed_as`): a hit then skips the converter
        self._parsed_type: type | None = None
        self._lock = threading.Lock()
        self._flights: dict[Any, _Flight] = {}
        _REGISTRY.users.add(self)

    # -- setup (first call) ---------------------------------------------------------
    def setup(self) -> CacheBackend:
        with self._lock:
            if self._keys is None:
                from plait.introspect import EMPTY, describe

                prefix = _encode_key([self.callable_id, self.version])
                self._keys = _KeyMaker(self.fn, self.callable_id, prefix)
                info = describe(self.fn)
                ret = info.return_type
                # Any or object say nothing of the type: the stored data comes back as is
                self._return_type = None if ret is EMPTY or ret is Any or ret is object else ret
                self._parsed_type = _parsed_as(self._return_type)
        backend = _resolve_backend(self._backend_spec, self._db_path, self._host)
        self.backend = backend
        return backend

    def forget_shared_backend(self) -> None:
        if self._shared:
            self.backend = None

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._flights = {}
        self.forget_shared_backend()

    # -- values ---------------------------------------------------------------------
    def restore(self, value_json: str) -> Any:
        try:  # the C scanner behind json.loads, minus its per-call Python overhead
            data, end = _scan_json(value_json, 0)
        except StopIteration:
            data, end = None, -1
        if end != len(value_json):
            data = loads(value_json)  # raises ValueError for text that is not JSON
        rtype = self._return_type
        kind = type(data)
        if (
            rtype is None
            or kind is self._parsed_type
            or (kind is rtype and rtype in _SCALAR_RETURNS)
        ):
            return data
        return structure(data, rtype, where=f"cached value of {self.callable_id}")

    def _restored(self, entry: CacheEntry | None) -> tuple[bool, Any]:
        """``(True, value)``, or ``(False, None)`` when the entry cannot be restored
        (stored by an older version of the code, say): then it is recomputed."""
        if entry is None:
            return False, None
        try:
            return True, self.restore(entry.value_json)
        except (ConversionError, ValueError):
            return False, None

    def encode(self, result: Any) -> str:
        # JSON-safe already (the converter would give the same data back): no converter
        data = (
            result
            if is_json_safe(result)
            else to_json_safe(
                result, self._return_type, where=f"return value of {self.callable_id}"
            )
        )
        try:
            return json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        except ValueError:  # an infinity: spelled 1e999, read back as inf
            return dumps(data)

    def encode_storable(self, result: Any) -> str | None:
        """``result`` as JSON text, or None (with a :class:`PlaitWarning`) when it holds a
        non-finite float, which JSON cannot hold. A type with no JSON form still raises."""
        try:
            return self.encode(result)
        except (ConversionError, ValueError) as exc:
            if not _has_non_finite(result):
                raise
            self.not_stored(f"it holds a non-finite float ({exc})")
            return None

    def not_stored(self, reason: str) -> None:
        """Warn that a computed value is returned without being cached, and why."""
        warnings.warn(
            f"{self.callable_id}: the computed value is returned but not cached: {reason}",
            PlaitWarning,
            stacklevel=5,
        )

    def decide(self, entry: CacheEntry | None, backend: CacheBackend) -> int:
        if entry is None:
            return _MISS
        now = self._clock()
        age = now - entry.stored_at
        if age < self.min_s:
            return _HIT
        if age >= self.max_s:
            return _MISS
        chance = (age - self.min_s) / (self.max_s - self.min_s)
        if self._random() >= chance:
            return _HIT
        # a refresh: unless someone asked this scope to back off
        for prefix in backend.pushbacks(now):
            if in_scope(prefix, self.scope):
                return _HIT
        return _REFRESH

    def _compute(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = _THROUGH_CACHE.set(self.callable_id)
        try:
            return self.fn(*args, **kwargs)
        finally:
            _THROUGH_CACHE.reset(token)

    async def _acompute(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = _THROUGH_CACHE.set(self.callable_id)
        try:
            return await self.fn(*args, **kwargs)
        finally:
            _THROUGH_CACHE.reset(token)

    def _pushback(self, exc: CachePushback) -> tuple[str, float]:
        """``(prefix, until)`` of a pushback the callable asked for by raising ``exc``."""
        seconds = _ttl_seconds(exc.duration, "CachePushback duration")
        return exc.prefix or self.scope, self._clock() + seconds

    def _serve_stale(self, backend: CacheBackend, entry: CacheEntry | None) -> tuple[bool, Any]:
        """After a pushback: ``(True, value)`` when the stored value is within ``max_ttl``."""
        if entry is None or self._clock() - entry.stored_at >= self.max_s:
            return False, None
        ok, value = self._restored(entry)
        if ok:
            backend.record_stats(self.callable_id, hits=1)
        return ok, value

    def _fresher(self, first: CacheEntry | None, now: CacheEntry | None) -> bool:
        """Whether ``now`` was stored by someone else since we saw ``first``, and is usable."""
        if now is None or (first is not None and now.stored_at <= first.stored_at):
            return False
        return self._clock() - now.stored_at < self.max_s

    def _refresh_failed(
        self, backend: CacheBackend, decision: int, entry: CacheEntry | None, exc: Exception
    ) -> tuple[bool, Any]:
        """An early refresh raised: the cached value is still within ``max_ttl``, so serve it
        (and warn) rather than fail a call that a plain hit would have answered. After a
        :class:`CachePushback` (already recorded), a value within ``max_ttl`` is served
        quietly, whatever the call was."""
        if isinstance(exc, CachePushback):
            return self._serve_stale(backend, entry)
        if decision != _REFRESH or entry is None:
            return False, None
        ok, value = self._restored(entry)
        if ok:
            warnings.warn(
                f"refreshing {self.callable_id} failed ({type(exc).__name__}: {exc}); "
                "serving the cached value, which is still within max_ttl",
                PlaitWarning,
                stacklevel=4,
            )
            backend.record_stats(self.callable_id, hits=1)
        return ok, value

    def _counted(self, backend: CacheBackend, decision: int) -> None:
        if decision == _REFRESH:
            backend.record_stats(self.callable_id, refreshes=1)
        else:
            backend.record_stats(self.callable_id, misses=1)

    # -- sync calls -----------------------------------------------------------------
    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        backend = self.backend
        if backend is None:
            backend = self.setup()
        keys = self._keys
        assert keys is not None
        key = keys.key(args, kwargs)
        entry = backend.lookup(key)
        if entry is not None and self._clock() - entry.stored_at < self.min_s:
            ok, value = self._restored(entry)
            if ok:
                backend.record_stats(self.callable_id, hits=1)
                return value
        return self._call_slow(backend, key, entry, args, kwargs)

    def _call_slow(
        self,
        backend: CacheBackend,
        key: str,
        entry: CacheEntry | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        while True:
            decision = self.decide(entry, backend)
            if decision == _HIT:
                ok, value = self._restored(entry)
                if ok:
                    backend.record_stats(self.callable_id, hits=1)
                    return value
                decision = _MISS
            with self._lock:
                flight = self._flights.get(key)
                leader = flight is None
                if flight is None:
                    flight = self._flights[key] = _Flight(threading.Event())
            if not leader:
                flight.done.wait()
                if flight.result is not _UNSET:
                    return flight.result
                if flight.value_json is not None:
                    backend.record_stats(self.callable_id, hits=1)
                    return self.restore(flight.value_json)
                if flight.error is not None:
                    raise flight.error
                entry = backend.lookup(key)  # the leader gave up (interrupted): try again
                continue
            try:
                latest = backend.lookup(key)
                if self._fresher(entry, latest):
                    assert latest is not None
                    ok, value = self._restored(latest)
                    if ok:
                        flight.value_json = latest.value_json
                        backend.record_stats(self.callable_id, hits=1)
                        return value
                result = self._compute(args, kwargs)
                value_json = self.encode_storable(result)
                if value_json is not None:
                    stored_at = self._clock()
                    try:
                        backend.store(
                            key, self.callable_id, value_json, stored_at, stored_at + self.max_s
                        )
                    except StoreError as exc:
                        self.not_stored(str(exc))
                        value_json = None
                if value_json is None:
                    flight.result = result
                flight.value_json = value_json
                self._counted(backend, decision)
                return result
            except Exception as exc:
                if isinstance(exc, CachePushback):
                    backend.push_back(*self._pushback(exc))
                served, value = self._refresh_failed(backend, decision, entry, exc)
                if served:
                    assert entry is not None
                    flight.value_json = entry.value_json
                    return value
                flight.error = exc
                raise
            finally:
                with self._lock:
                    self._flights.pop(key, None)
                flight.done.set()

    # -- async calls ----------------------------------------------------------------
    async def acall(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        backend = self.backend
        if backend is None:  # opening may create files: keep it off the event loop
            backend = await anyio.to_thread.run_sync(self.setup, limiter=_limiter())
        keys = self._keys
        assert keys is not None
        key = keys.key(args, kwargs)
        entry = backend.lookup(key)
        if entry is not None and self._clock() - entry.stored_at < self.min_s:
            ok, value = self._restored(entry)
            if ok:
                backend.record_stats(self.callable_id, hits=1)
                return value
        return await self._acall_slow(backend, key, entry, args, kwargs)

    async def _acall_slow(
        self,
        backend: CacheBackend,
        key: str,
        entry: CacheEntry | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        flight_key = (threading.get_ident(), key)  # one event loop per thread
        while True:
            decision = self.decide(entry, backend)
            if decision == _HIT:
                ok, value = self._restored(entry)
                if ok:
                    backend.record_stats(self.callable_id, hits=1)
                    return value
                decision = _MISS
            with self._lock:
                flight = self._flights.get(flight_key)
                leader = flight is None
                if flight is None:
                    flight = self._flights[flight_key] = _Flight(anyio.Event())
            if not leader:
                await flight.done.wait()
                if flight.result is not _UNSET:
                    return flight.result
                if flight.value_json is not None:
                    backend.record_stats(self.callable_id, hits=1)
                    return self.restore(flight.value_json)
                if flight.error is not None:
                    raise flight.error
                entry = backend.lookup(key)  # the leader was cancelled: try again
                continue
            try:
                latest = backend.lookup(key)
                if self._fresher(entry, latest):
                    assert latest is not None
                    ok, value = self._restored(latest)
                    if ok:
                        flight.value_json = latest.value_json
                        backend.record_stats(self.callable_id, hits=1)
                        return value
                result = await self._acompute(args, kwargs)
                value_json = self.encode_storable(result)
                if value_json is not None:
                    stored_at = self._clock()
                    try:
                        await anyio.to_thread.run_sync(
                            backend.store,
                            key,
                            self.callable_id,
                            value_json,
                            stored_at,
                            stored_at + self.max_s,
                            limiter=_limiter(),
                        )
                    except StoreError as exc:
                        self.not_stored(str(exc))
                        value_json = None
                if value_json is None:
                    flight.result = result
                flight.value_json = value_json
                self._counted(backend, decision)
                return result
            except Exception as exc:
                if isinstance(exc, CachePushback):
                    pushback = self._pushback(exc)
                    await anyio.to_thread.run_sync(backend.push_back, *pushback, limiter=_limiter())
                served, value = self._refresh_failed(backend, decision, entry, exc)
                if served:
                    assert entry is not None
                    flight.value_json = entry.value_json
                    return value
                flight.error = exc
                raise
            finally:
                with self._lock:
                    self._flights.pop(flight_key, None)
                flight.done.set()

    # -- helpers exposed on the wrapper --------------------------------------------
    def _backend(self) -> CacheBackend:
        return self.backend if self.backend is not None else self.setup()

    def info(self) -> CacheStats:
        counts = self._backend().stats().get(self.callable_id, {})
        return CacheStats(callable_id=self.callable_id, **counts)

    def clear(self) -> int:
        return self._backend().clear(self.callable_id)


def _has_non_finite(value: Any) -> bool:
    """Whether ``value`` (unstructured by the converter) holds an infinite or NaN float."""
    try:
        stack = [get_converter().unstructure(value)]
    except Exception:
        return False
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return False


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


def cached(
    min_ttl: float | timedelta | None = None,
    max_ttl: float | timedelta | None = None,
    backend: str | CacheBackend | None = None,
    version: str | int | None = None,
    *,
    db_path: str | Path | None = None,
    clock: Callable[[], float] | None = None,
    rng: RandomSource | None = None,
    host: PluginHost | None = None,
    scope: str | None = None,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """Cache a sync or async callable's results with a TTL.

    ``min_ttl`` and ``max_ttl`` are days (``float``) or :class:`~datetime.timedelta`; see
    the module docstring for what they mean. ``backend`` is a backend name (default: the
    ``PLAIT_CACHE`` environment variable, else ``"sqlite"``) or an instance implementing
    :class:`plait.protocols.CacheBackend`; ``db_path`` is passed to a named backend as its
    ``path``. Bump ``version`` when the callable's results change meaning: old entries are
    then ignored. ``clock`` (epoch seconds) and ``rng`` make the TTL logic deterministic in
    tests; ``host`` is the plugin host to look the backend up in. ``scope`` is the name
    pushbacks are matched against (:func:`push_back`; default: the callable id, and the
    nsref for callables registered in a namespace).

    Raises :class:`plait.errors.TtlError` for bad TTLs. At call time an argument that
    cannot be part of a key raises :class:`plait.errors.CacheKeyError` (a ``TypeError``)
    naming the parameter.
    """
    min_s, max_s = _ttls(min_ttl, max_ttl)
    _check_backend_arguments(backend, db_path)
    if version is not None and type(version) not in (str, int):
        raise CacheKeyError(f"version must be a str or an int, not {type(version).__name__}")

    def decorate(fn: Callable[P, R]) -> CachedFunction[P, R]:
        if not callable(fn):
            raise ArgumentTypeError(f"@cached can only decorate a callable, not {fn!r:.60}")
        state = _Cached(
            fn,
            min_s=min_s,
            max_s=max_s,
            backend=backend,
            version=version,
            db_path=db_path,
            clock=clock,
            rng=rng,
            host=host,
            scope=scope,
        )
        wrapper: Any
        if _is_async(fn):
            acall = state.acall

            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                return await acall(args, kwargs)

        else:
            call = state.call

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return call(args, kwargs)

        wrapper.callable_id = state.callable_id
        wrapper.cache_info = state.info
        wrapper.cache_clear = state.clear
        wrapper.__plait_cache__ = state
        return cast("CachedFunction[P, R]", wrapper)

    return decorate


# ---------------------------------------------------------------------- registration
def _check_backend_arguments(backend: object, db_path: object) -> None:
    if backend is not None and not isinstance(backend, str):
        missing = [m for m in ("lookup", "store") if not callable(getattr(backend, m, None))]
        if missing:
            raise ArgumentTypeError(
                f"cached(): backend must be a backend name or a cache backend, got "
                f"{type(backend).__name__} {backend!r:.60} (it has no {', '.join(missing)})"
            )
    if db_path is not None:
        arguments.file_path(db_path, name="db_path", where="cached()")


def register_cached_callable(
    ns: Namespace,
    gref: str | Callable[..., Any],
    min_ttl: float | timedelta,
    max_ttl: float | timedelta,
    db_path: str | Path | None = None,
    nsref: str | None = None,
    *,
    backend: str | CacheBackend | None = None,
    version: str | int | None = None,
    clock: Callable[[], float] | None = None,
    rng: RandomSource | None = None,
    host: PluginHost | None = None,
    tags: Iterable[str] | None = None,
) -> NamespaceNode:
    """Register the callable at ``gref`` (``"package.module:callable"``, or the callable
    itself) in ``ns`` at ``nsref`` (default: its name), cached as :func:`cached` does, with
    ``tags``. Pushbacks match its nsref.

    The node keeps the original callable's signature and type hints, so a DAG wires it like
    the uncached one.
    """
    from plait.entries import CachePolicy
    from plait.namespace import format_nsref, parse_nsref

    fn = resolve_callable(gref) if isinstance(gref, str) else gref
    policy = CachePolicy(min_ttl=min_ttl, max_ttl=max_ttl, version=version)
    if nsref is None:
        nsref = getattr(fn, "__name__", None) or type(fn).__name__
    nsref = format_nsref(*parse_nsref(nsref))
    decorator = cached(
        min_ttl,
        max_ttl,
        backend,
        version,
        db_path=db_path,
        clock=clock,
        rng=rng,
        host=host,
        scope=nsref,
    )
    return ns.register(fn, nsref, decorator=decorator, tags=tags, cache_policy=policy)


# ---------------------------------------------------------------------- operations
def _state_of(target: Any) -> _Cached | None:
    state = getattr(target, "__plait_cache__", None)
    return state if isinstance(state, _Cached) else None


def stats(
    backend: str | CacheBackend | None = None,
    *,
    db_path: str | Path | None = None,
    host: PluginHost | None = None,
) -> dict[str, CacheStats]:
    """Counters and entry counts of every cached callable in the store, by callable id."""
    store = _resolve_backend(backend, db_path, host)
    return {cid: CacheStats(callable_id=cid, **counts) for cid, counts in store.stats().items()}


def clear(
    target: str | Callable[..., Any] | None = None,
    *,
    backend: str | CacheBackend | None = None,
    db_path: str | Path | None = None,
    host: PluginHost | None = None,
) -> int:
    """Drop the entries and counters of one callable (a cached callable, the original, or a
    ``"module:qualname"`` id) or of every callable; return how many entries were dropped.

    A cached callable is cleared in its own backend; otherwise ``backend``/``db_path``
    name the store (default: the default cache).
    """
    state = _state_of(target)
    if state is not None:
        return state.clear()
    store = _resolve_backend(backend, db_path, host)
    if target is None:
        return store.clear()
    cid = target if isinstance(target, str) else callable_id(target)
    return store.clear(cid)


def require_cache() -> None:
    """Call first thing in a function that must only be reached through its cache (an API
    whose rate limit a direct call would spend): raises :class:`CacheBypassError` unless a
    cached wrapper is computing it right now.

    ::

        @cached(min_ttl=1, max_ttl=7)
        def quote(ticker: str) -> float:
            require_cache()
            return expensive_api.quote(ticker)

        quote.__wrapped__("ACME")  # CacheBypassError naming quote
    """
    frame = sys._getframe(1)
    caller = f"{frame.f_globals.get('__name__')}:{frame.f_code.co_qualname}"
    if _THROUGH_CACHE.get() != caller:  # none computing, or another cached callable
        raise CacheBypassError(
            f"{caller} must be called through its cache (the @cached function, or its "
            "namespace entry), not directly"
        )


def in_scope(prefix: str, scope: str) -> bool:
    """Whether a pushback for ``prefix`` covers ``scope`` (an nsref or a callable id).

    ``"market"`` covers ``"market:fetch"`` and ``"market.eu:fetch"``, not
    ``"marketing:fetch"``; ``"market:fetch"`` covers only itself.
    """
    if not scope.startswith(prefix):
        return False
    return len(scope) == len(prefix) or prefix[-1] in ".:" or scope[len(prefix)] in ".:"


def push_back(
    prefix: str,
    duration: float | timedelta,
    backend: str | CacheBackend | None = None,
    *,
    db_path: str | Path | None = None,
    host: PluginHost | None = None,
    now: float | None = None,
) -> float:
    """Suppress probabilistic refreshes of every cached callable under ``prefix`` (an nsref
    prefix such as ``"market"``, or a callable id) for ``duration`` (days, or a timedelta);
    return when it ends (epoch seconds). The pushback is kept in the store, for every process
    that shares it; a later one for the same prefix replaces it (a ``duration`` of 0 lifts
    it). Values past ``max_ttl`` and misses are still computed."""
    if not isinstance(prefix, str) or not prefix:
        raise TtlError(f"a pushback needs a non-empty prefix, got {prefix!r}")
    until = (time.time() if now is None else now) + _ttl_seconds(duration, "duration")
    _resolve_backend(backend, db_path, host).push_back(prefix, until)
    return until


def pushbacks(
    backend: str | CacheBackend | None = None,
    *,
    db_path: str | Path | None = None,
    host: PluginHost | None = None,
    now: float | None = None,
) -> dict[str, float]:
    """Pushbacks in force (as of ``now``): prefix -> when it ends (epoch seconds)."""
    store = _resolve_backend(backend, db_path, host)
    return store.pushbacks(time.time() if now is None else now)


def prune(
    backend: str | CacheBackend | None = None,
    *,
    db_path: str | Path | None = None,
    host: PluginHost | None = None,
    now: float | None = None,
) -> int:
    """Drop every entry past its ``max_ttl`` (as of ``now``, epoch seconds); return how many."""
    store = _resolve_backend(backend, db_path, host)
    return store.prune(time.time() if now is None else now)
