"""Hook specifications: the contract between plait and its plugins.

One function per hook. Hooks are synchronous, cheap and pure: registration hooks return
data (lists of :class:`~plait.records.BackendInfo`), lifecycle hooks observe frozen records.
Implementations may accept fewer parameters than a spec declares; specs gain parameters,
never lose or rename them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from plait.records import BackendInfo, MapProgress, NodeRecord, RunRecord

if TYPE_CHECKING:
    import click

    from plait.triggers.kinds import TriggerKind

PROJECT_NAME = "plait"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def plait_register_executors() -> list[BackendInfo]:  # type: ignore[empty-body]
    """Return the executors this plugin provides.

    Called once, when plait first looks up an executor by name. Each record's ``factory``
    is called with the user's options and must return an object implementing
    :class:`plait.protocols.Executor`. Names must be unique across installed plugins.

    .. versionadded:: 0.1
    """


@hookspec
def plait_register_provenance_backends() -> list[BackendInfo]:  # type: ignore[empty-body]
    """Return the provenance backends this plugin provides.

    Each ``factory(**options)`` returns a :class:`plait.protocols.ProvenanceBackend`.

    .. versionadded:: 0.1
    """


@hookspec
def plait_register_cache_backends() -> list[BackendInfo]:  # type: ignore[empty-body]
    """Return the cache backends this plugin provides.

    Each ``factory(**options)`` returns a :class:`plait.protocols.CacheBackend`.

    .. versionadded:: 0.1
    """


@hookspec
def plait_add_commands(cli: click.Group) -> None:
    """Add click commands to the ``plait`` group.

    Called once per invocation of ``plait``, the first time the group looks up a command
    name it does not have or lists its commands (``plait --help``), with the group itself:
    call ``cli.add_command(...)`` (or decorate with ``@cli.command()``) for each command this
    plugin provides. Core commands never wait for this hook. A name the group already has
    (from the core or an earlier plugin) is an error naming both. Import heavy dependencies
    inside the command functions, not at module level.

    .. versionadded:: 0.1
    """


@hookspec
def plait_register_trigger_stores() -> list[BackendInfo]:  # type: ignore[empty-body]
    """Return the trigger stores this plugin provides (durable trigger state for the engine).

    Each ``factory(**options)`` returns a :class:`plait.triggers.TriggerStore`.

    .. versionadded:: 0.2
    """


@hookspec
def plait_register_trigger_kinds() -> list[TriggerKind]:  # type: ignore[empty-body]
    """Return the trigger kinds this plugin provides, as
    :class:`plait.triggers.TriggerKind` records (name, options class, watcher factory).

    Called when an engine is built or a ``[triggers]`` table is read. Names must be unique
    across installed plugins; ``schedule``, ``poll`` and ``manual`` are the core's.

    .. versionadded:: 0.2
    """


@hookspec
def plait_on_run_start(run: RunRecord) -> None:
    """Called when a run (or a restart, a replay, a map element's sub-run) starts.

    .. versionadded:: 0.1
    """


@hookspec
def plait_on_node_start(node: NodeRecord) -> None:
    """Called when a node starts executing (status ``running``).

    .. versionadded:: 0.1
    """


@hookspec
def plait_on_node_finish(node: NodeRecord) -> None:
    """Called when a node ends: completed, failed, skipped, cancelled or paused.

    .. versionadded:: 0.1
    """


@hookspec
def plait_on_map_progress(progress: MapProgress) -> None:
    """Called when one element of a map node finishes.

    .. versionadded:: 0.1
    """


@hookspec
def plait_on_run_finish(run: RunRecord) -> None:
    """Called once when a run ends, with its final record.

    .. versionadded:: 0.1
    """
