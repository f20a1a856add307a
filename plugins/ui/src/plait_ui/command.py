"""The ``plait ui`` command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from plait.cli.common import State, provenance_options

if TYPE_CHECKING:
    from plait import Dag
    from plait.plugins import PluginHost
    from plait.protocols import ProvenanceBackend
    from plait.records import CacheStats

__all__ = ["ui"]

DEFAULT_PORT = 8765


def open_store(
    host: PluginHost, provenance: str | None, store: Path | None
) -> tuple[ProvenanceBackend, str]:
    """The provenance backend as every ``plait`` command opens it (``--provenance NAME``,
    ``--store PATH``), refusing a store file that does not exist yet."""
    from plait.cli import open_provenance
    from plait.errors import StoreError

    backend = open_provenance(host, provenance, store)
    path = getattr(backend, "path", None)
    if isinstance(path, Path) and not path.exists():
        # a read-only view must not leave an empty store behind a mistyped path
        raise StoreError(f"no provenance store at {str(path)!r}: run a DAG first, or pass --store")
    return backend, str(path or provenance)


def cache_reader(host: PluginHost, path: Path | None) -> Any:
    """A function reading the counters of the ``sqlite`` cache at ``path`` (default file)."""
    from plait.records import BackendKind, CacheStats

    def read() -> dict[str, CacheStats]:
        backend = host.create(BackendKind.CACHE, "sqlite", path=path)
        backend.open()
        try:
            counts = backend.stats()
        finally:
            backend.close()
        return {cid: CacheStats(callable_id=cid, **c) for cid, c in counts.items()}

    return read


def load_dags(refs: tuple[str, ...]) -> dict[str, Dag]:
    """``MODULE:DAG`` references (as ``plait run`` takes them) to DAGs, by nsref."""
    from plait.cli import load_dag

    dags = [load_dag(ref) for ref in refs]
    return {dag.nsref: dag for dag in dags}


async def _check(prov: ProvenanceBackend) -> None:
    await prov.open()
    await prov.aclose()


@click.command()
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
    help="Show restart and replay buttons (protected by a per-server token).",
)
@click.option(
    "--dag",
    "dag_refs",
    multiple=True,
    metavar="MODULE:DAG",
    help="A DAG whose runs the buttons may restart or replay; repeat for more.",
)
def ui(
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
    plugins, loop = state.host, state.loop
    prov, name = open_store(plugins, provenance, store)
    anyio.run(_check, open_store(plugins, provenance, store)[0], backend=loop)
    actions = None
    if allow_actions:
        dags = load_dags(dag_refs)

        def make_runner(dag: Dag) -> DagRunner:
            return DagRunner(dag, provenance=open_store(plugins, provenance, store)[0])

        actions = Actions(dags, make_runner)
    config = UiConfig(
        provenance=prov,
        allow_actions=allow_actions,
        actions=actions,
        cache_stats=cache_reader(plugins, cache_path),
        allowed_hosts=LOCAL_HOSTS if host in LOCAL_HOSTS else ("*",),
        store_name=name,
    )
    port = port or free_port(host)
    mode = "actions on" if allow_actions else "read-only"
    click.echo(f"plait ui: {name} at http://{host}:{port}/ ({mode}; Ctrl-C stops)")
    serve(create_app(config), host=host, port=port, loop=loop)
