"""Every exception a user of plait can cause.

Each class derives from [`PlaitError`][plait.errors.PlaitError] and from the builtin it
refines, so callers can catch either ``PlaitError`` or, say, ``LookupError``. Messages name
the offending node, parameter, path or run id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "BackendError",
    "BackendNotFoundError",
    "CacheBypassError",
    "CacheKeyError",
    "CachePushback",
    "CallError",
    "CompositeError",
    "ConfigError",
    "ConversionError",
    "DagPause",
    "DagValidationError",
    "DuplicateBackendError",
    "DuplicateNameError",
    "ExecutorError",
    "FactoryError",
    "GrefError",
    "InputError",
    "MapInputError",
    "NodeNotFoundError",
    "NodeTimeoutError",
    "NsrefError",
    "OutputNotStoredError",
    "PlaitError",
    "PlaitWarning",
    "PluginHookError",
    "RestartError",
    "RunBusyError",
    "RunNotFoundError",
    "StoreError",
    "SwitchKeyError",
    "TagError",
    "TagQueryError",
    "TriggerError",
    "TriggerNotFoundError",
    "TtlError",
]


class PlaitError(Exception):
    """Root of every error plait raises on purpose."""


class ArgumentError(PlaitError, ValueError):
    """An argument of a plait function has a value it cannot take (``max_concurrency=0``,
    ``retries=-1``, a naive datetime, a NUL byte in a path). The message names it."""


class ArgumentTypeError(PlaitError, TypeError):
    """An argument of a plait function has the wrong type (``max_concurrency="4"``,
    ``retries=2.5``, ``DagRunner("x")``). The message names it and the type it takes."""


class NsrefError(PlaitError, ValueError):
    """A namespace reference (``"a.b:name"``) is malformed or names nothing."""


class GrefError(NsrefError):
    """A global reference (``"package.module:callable"``) is malformed or imports nothing."""


class TagError(PlaitError, ValueError):
    """A tag is not a tag (see :mod:`plait.tags`), or tags were given as one string."""


class TagQueryError(PlaitError, ValueError):
    """A tag query is malformed. ``position`` is the 0-based offset of the culprit in
    ``text``; the message repeats the query with a caret under it."""

    def __init__(self, message: str, *, text: str, position: int) -> None:
        self.text = text
        self.position = position
        super().__init__(
            f"tag query {text!r}: {message} at position {position}\n  {text}\n  {' ' * position}^"
        )


class FactoryError(PlaitError, TypeError):
    """A DAG factory (or an entry built on load) is misused or did not build what it must."""


class ConfigError(PlaitError, ValueError):
    """A configuration is invalid. ``problems`` lists every one, each naming file and key."""

    def __init__(self, problems: Sequence[Any]) -> None:
        self.problems: tuple[Any, ...] = tuple(problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} {noun}):\n{lines}")


class DuplicateNameError(PlaitError, ValueError):
    """A name (nsref, node label) is registered twice."""


class DagValidationError(PlaitError, ValueError):
    """A DAG is not runnable. ``problems`` lists every reason, one line each."""

    def __init__(self, problems: Sequence[str], *, dag: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.dag = dag
        head = f"DAG {dag!r} is invalid" if dag else "DAG is invalid"
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head} ({len(self.problems)} {noun}):\n{lines}")


class InputError(PlaitError, ValueError):
    """Run inputs do not fit the DAG's source nodes (missing or unknown parameters)."""


class BackendNotFoundError(PlaitError, LookupError):
    """No installed plugin provides a backend of that name."""


class DuplicateBackendError(PlaitError, ValueError):
    """Two plugins register a backend under the same name."""


class BackendError(PlaitError, RuntimeError):
    """A backend could not be created or used."""


class PluginHookError(PlaitError, TypeError):
    """A plugin implements a hook plait does not specify (a misspelled name), or implements
    one with parameters its specification lacks. ``plugin`` names the plugin, ``hooks`` the
    offending hook implementations."""

    def __init__(self, message: str, *, plugin: str, hooks: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.hooks: tuple[str, ...] = tuple(hooks)


class ExecutorError(PlaitError, RuntimeError):
    """An executor could not run a node (for instance: the callable cannot be pickled)."""


class StoreError(PlaitError, OSError):
    """A storage file is unusable: not ours, corrupt, a directory, or from a newer schema."""


class RunNotFoundError(PlaitError, LookupError):
    """No run with that id is recorded in the provenance store."""


class NodeNotFoundError(PlaitError, LookupError):
    """The run is recorded but has no node (no execution) with that label."""


class OutputNotStoredError(PlaitError, LookupError):
    """A node's output was recorded as not restorable (it had no JSON form), so it cannot
    be read back as a value."""


class RestartError(PlaitError, RuntimeError):
    """A run cannot be restarted or replayed (still running, wrong DAG, unknown node)."""


class RunBusyError(RestartError):
    """Another process owns the run: it is still running there, or another restart claimed
    it first. ``run_id`` names the run; ``owner_pid``, ``owner_host`` and ``attempt`` say who
    holds it (as the store recorded it when the claim was refused)."""

    def __init__(
        self, message: str, *, run_id: str, owner_pid: int, owner_host: str, attempt: int
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.owner_pid = owner_pid
        self.owner_host = owner_host
        self.attempt = attempt


class ConversionError(PlaitError, TypeError):
    """A value cannot be turned into JSON-safe data or back into its annotated type."""

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        self.details: tuple[str, ...] = tuple(details)
        full = (
            message
            if not self.details
            else message + "\n" + "\n".join(f"  {d}" for d in self.details)
        )
        super().__init__(full)


class CacheKeyError(PlaitError, TypeError):
    """An argument of a cached callable cannot be part of a cache key."""


class CacheBypassError(PlaitError, RuntimeError):
    """A function that calls :func:`plait.cache.require_cache` was called directly, not
    through its cache."""


class TtlError(PlaitError, ValueError):
    """Cache TTLs are invalid (negative, or ``min_ttl > max_ttl``)."""


class CompositeError(PlaitError, RuntimeError):
    """An element of a map node (or the sub-DAG of a call node) failed.

    ``node`` is the composite's label, ``key`` the key of the element that failed first
    (``None`` for a call node), ``failed_keys`` every failed element's key in collection
    order (several when the runner runs with ``fail_fast=False``), ``sub_run_id`` the failed
    sub-run when one was recorded. The element's own exception is the ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str,
        key: Any = None,
        failed_keys: Sequence[Any] = (),
        sub_run_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.node = node
        self.key = key
        self.failed_keys: tuple[Any, ...] = tuple(failed_keys)
        self.sub_run_id = sub_run_id


class MapInputError(PlaitError, TypeError):
    """A map node received something other than a list or a dict from its upstream."""


class SwitchKeyError(PlaitError, LookupError):
    """A switch node got a key none of its branches handles (the message names the key and
    the known ones), or an upstream value that is not a ``(key, value)`` pair."""


class CallError(PlaitError, LookupError):
    """``ctx.call(nsref)`` named nothing in the DAG's namespace, or was made where it cannot
    run (``ctx.call`` on the event loop: use ``await ctx.acall(...)`` there)."""


class NodeTimeoutError(PlaitError, TimeoutError):
    """A node ran longer than its ``timeout``."""


class TriggerError(PlaitError, ValueError):
    """A trigger is invalid (bad cron expression, unknown kind, a poll check that does not
    import) or cannot fire (inactive, its DAG does not resolve)."""


class TriggerNotFoundError(PlaitError, LookupError):
    """No trigger of that name is defined or stored."""


class DagPause(Exception):
    """Raise inside a node to pause the run at that node.

    The node is recorded as ``paused``, no new node starts, in-flight nodes finish, and the
    run ends ``paused``; ``DagRunner.restart`` resumes it, executing the paused node again.
    """

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(reason or "paused")


class CachePushback(Exception):
    """Raise inside a cached callable to ask for fewer calls (a rate-limited API said so).

    Probabilistic refreshes of every cached callable under the namespace ``prefix``
    (default: the raising callable's own scope) are suppressed for ``duration`` (days as a
    number, or a :class:`~datetime.timedelta`); the pushback is kept in the cache store, so
    every process sharing the store backs off. The call that raised is answered from the
    cache when its stored value is still within ``max_ttl``; otherwise this exception
    propagates to the caller.
    """

    def __init__(self, duration: Any, prefix: str | None = None) -> None:
        self.duration = duration
        self.prefix = prefix
        super().__init__(f"back off for {duration} (prefix {prefix!r})")


class PlaitWarning(UserWarning):
    """Something plait handled but you should know (e.g. an output that cannot be stored)."""
