"""The ``plait ui`` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from plait.dag import Dag
    from plait.plugins import PluginHost
    from plait.protocols import ProvenanceBackend
    from plait.records import CacheStats

__all__ = ["ui"]

DEFAULT_PORT = 8765


def open_store(host: PluginHost, store: str | None) -> tuple[ProvenanceBackend, str]:
    """The backend named ``store``, else the ``sqlite`` backend on the file ``store``.

    ``None`` means ``$PLAIT_PROVENANCE``, else the ``sqlite`` backend's default file.
    """
    from plait.errors import StoreError
    from plait.records import BackendKind

    spec = store or os.environ.get("PLAIT_PROVENANCE") or "sqlite"
    if spec in host.backends(BackendKind.PROVENANCE):
        backend: ProvenanceBackend = host.create(BackendKind.PROVENANCE, spec)
    else:
        backend = host.create(BackendKind.PROVENANCE, "sqlite", path=spec)
    path = getattr(backend, "path", None)
    if isinstance(path, Path) and not path.exists():
        # a read-only view must not leave an empty store behind a mistyped path
        raise StoreError(f"no provenance store at {str(path)!r}: run a DAG first, or pass --store")
    return backend, str(path or spec)


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
    """``MODULE:NAME`` references to DAG objects, by nsref."""
    import importlib

    from plait.dag import Dag

    dags: dict[str, Dag] = {}
    for ref in refs:
        module_name, sep, attr = ref.partition(":")
        if not sep or not module_name or not attr:
            raise click.BadParameter(f"{ref!r} is not MODULE:DAG", param_hint="--dag")
        try:
            dag = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise click.BadParameter(f"cannot load {ref!r}: {exc}", param_hint="--dag") from exc
        if not isinstance(dag, Dag):
            kind = type(dag).__name__
            raise click.BadParameter(f"{ref!r} is a {kind}, not a Dag", param_hint="--dag")
        dags[dag.nsref] = dag
    return dags


async def _check(prov: ProvenanceBackend) -> None:
    await prov.open()
    await prov.aclose()


@click.command()
@click.option(
    "--store",
    default=None,
    metavar="PATH|NAME",
    help="Provenance store: a SQLite file or a backend name ($PLAIT_PROVENANCE, else the "
    "user's default file).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
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
    store: str | None,
    host: str,
    port: int,
    cache_path: Path | None,
    allow_actions: bool,
    dag_refs: tuple[str, ...],
) -> None:
    """Serve a local web view of the runs in a provenance store (read-only by default)."""
    import anyio

    from plait.errors import PlaitError
    from plait.plugins import PluginHost
    from plait.runner import DagRunner
    from plait_ui.actions import Actions
    from plait_ui.app import LOCAL_HOSTS, UiConfig, create_app
    from plait_ui.server import free_port, serve

    plugins = PluginHost()
    loop = click.get_current_context().find_root().params.get("loop") or "asyncio"
    try:
        prov, name = open_store(plugins, store)
        anyio.run(_check, open_store(plugins, store)[0], backend=loop)
    except PlaitError as exc:
        raise click.ClickException(str(exc)) from exc
    actions = None
    if allow_actions:
        dags = load_dags(dag_refs)
        spec = store or os.environ.get("PLAIT_PROVENANCE") or "sqlite"

        def make_runner(dag: Dag) -> DagRunner:
            return DagRunner(dag, provenance=open_store(plugins, spec)[0], host=plugins)

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
