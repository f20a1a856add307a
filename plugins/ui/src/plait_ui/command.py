"""The ``plait ui`` command.

Which stores it shows is decided as the other ``plait`` commands decide it: ``--provenance``
and ``--store`` when given, else the ``[storage]`` of the configuration file (``--config``, or
``plait --config``), else the default store. The trigger store is the one of the same backend
on the same file (as ``plait triggers``/``plait fire`` reach it), when that backend has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from plait.cli.common import State, provenance_options

if TYPE_CHECKING:
    from plait import Dag
    from plait.config import Config
    from plait.plugins import PluginHost
    from plait.protocols import ProvenanceBackend
    from plait.records import CacheStats
    from plait.triggers import TriggerStore

__all__ = ["ui"]

DEFAULT_PORT = 8765


@attrs.frozen(kw_only=True)
class StoreChoice:
    """The provenance backend by name with its options (``path``: the store file)."""

    backend: str
    options: Mapping[str, Any] = attrs.field(factory=dict)


def choose_store(
    provenance: str | None, store: Path | None, configured: Config | None
) -> StoreChoice:
    """``--provenance``/``--store`` when either is given, else the configuration's
    ``[storage.provenance]``, else the default backend on its default file."""
    from plait import defaults

    spec = configured.storage.provenance if configured is not None else None
    if provenance is None and store is None and spec is not None:
        return StoreChoice(backend=spec.backend, options=dict(spec.options))
    name = defaults.provenance_name(provenance, fallback=defaults.CLI_PROVENANCE)
    assert name is not None  # there is a fallback
    return StoreChoice(backend=name, options={} if store is None else {"path": str(store)})


def open_store(host: PluginHost, choice: StoreChoice) -> tuple[ProvenanceBackend, str]:
    """The chosen provenance backend (not opened), refusing a store file that does not
    exist yet, and the name the pages show for it."""
    from plait.cli import open_provenance
    from plait.errors import StoreError
    from plait.records import BackendKind

    if set(choice.options) <= {"path"}:  # as every command opens it, with its messages
        path_option = choice.options.get("path")
        backend = open_provenance(host, choice.backend, Path(path_option) if path_option else None)
    else:
        backend = host.create(BackendKind.PROVENANCE, choice.backend, **choice.options)
    path = getattr(backend, "path", None)
    if isinstance(path, Path) and not path.exists():
        # a read-only view must not leave an empty store behind a mistyped path
        raise StoreError(f"no provenance store at {str(path)!r}: run a DAG first, or pass --store")
    return backend, str(path or choice.backend)


def open_trigger_store(host: PluginHost, choice: StoreChoice) -> TriggerStore | None:
    """The trigger store of the chosen backend on the same file (``sqlite`` keeps triggers
    in the provenance file), or ``None`` when that backend has no trigger store."""
    from plait.records import BackendKind

    if choice.backend not in host.backends(BackendKind.TRIGGER_STORE):
        return None
    path = choice.options.get("path")
    options = {} if path is None else {"path": str(path)}
    trigger_store: TriggerStore = host.create(BackendKind.TRIGGER_STORE, choice.backend, **options)
    return trigger_store


def cache_reader(host: PluginHost, path: Path | None, configured: Config | None = None) -> Any:
    """A function reading the counters of the cache: the ``sqlite`` cache at ``path``
    (``--cache``), else the configuration's ``[storage.cache]``, else the default file."""
    from plait.records import BackendKind, CacheStats

    spec = configured.storage.cache if configured is not None else None
    name, options = "sqlite", {"path": path}
    if path is None and spec is not None:
        name, options = spec.backend, dict(spec.options)

    def read() -> dict[str, CacheStats]:
        backend = host.create(BackendKind.CACHE, name, **options)
        backend.open()
        try:
            counts = backend.stats()
        finally:
            backend.close()
        return {cid: CacheStats(callable_id=cid, **c) for cid, c in counts.items()}

    return read


def load_dags(refs: tuple[str, ...], configured: Config | None = None) -> dict[str, Dag]:
    """The DAGs the buttons may run, by the nsref their runs are recorded under: every DAG
    of the configuration's namespace, and ``MODULE:DAG`` references (as ``plait run``)."""
    from plait.cli import load_dag

    found: dict[str, Dag] = {}
    if configured is not None:
        found.update({n.nsref: n.dag for n in configured.namespace if n.dag is not None})
    for dag in (load_dag(ref) for ref in refs):
        found[dag.nsref] = dag
    return found


async def _check(prov: ProvenanceBackend) -> None:
    await prov.open()
    await prov.aclose()


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A configuration file: its [storage] names the provenance (and trigger) store and "
    "the cache, its DAGs can be restarted; --provenance, --store and --cache win.",
)
@provenance_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--cache",
    "cache_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite cache file for the cache page (default: the user's cache file).",
)
@click.option(
    "--allow-actions",
    is_flag=True,
    help="Show restart, replay and fire buttons (protected by a per-server token).",
)
@click.option(
    "--dag",
    "dag_refs",
    multiple=True,
    metavar="MODULE:DAG",
    help="A DAG whose runs the buttons may restart or replay; repeat for more.",
)
def ui(
    config_path: Path | None,
    provenance: str | None,
    store: Path | None,
    host: str,
    port: int,
    cache_path: Path | None,
    allow_actions: bool,
    dag_refs: tuple[str, ...],
) -> None:
    """Serve a local web view of the runs in a provenance store (read-only by default)."""
    import anyio

    from plait import DagRunner
    from plait_ui.actions import Actions
    from plait_ui.app import LOCAL_HOSTS, UiConfig, create_app
    from plait_ui.server import free_port, serve

    state = click.get_current_context().ensure_object(State)
    if config_path is not None:
        state.config_path = config_path
    configured = state.config()  # a bad file: the config layer's ConfigError, exit 2
    plugins, loop = state.host, state.loop
    choice = choose_store(provenance, store, configured)
    prov, name = open_store(plugins, choice)
    anyio.run(_check, open_store(plugins, choice)[0], backend=loop)
    actions = None
    if allow_actions:
        dags = load_dags(dag_refs, configured)

        def make_runner(dag: Dag) -> DagRunner:
            return DagRunner(dag, provenance=open_store(plugins, choice)[0])

        actions = Actions(dags, make_runner)
    config = UiConfig(
        provenance=prov,
        allow_actions=allow_actions,
        actions=actions,
        cache_stats=cache_reader(plugins, cache_path, configured),
        allowed_hosts=LOCAL_HOSTS if host in LOCAL_HOSTS else ("*",),
        store_name=name,
        triggers=open_trigger_store(plugins, choice),
        host=plugins,
    )
    port = port or free_port(host)
    mode = "actions on" if allow_actions else "read-only"
    click.echo(f"plait ui: {name} at http://{host}:{port}/ ({mode}; Ctrl-C stops)")
    serve(create_app(config), host=host, port=port, loop=loop)
