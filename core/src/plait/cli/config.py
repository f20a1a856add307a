"""``plait config check FILE``, and what ``plait --config FILE`` changes in the other
commands: DAG references are looked up in the file's namespace first, and the provenance
store and cache come from its ``[storage]`` section unless an option names others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from plait.cli.common import State, echo_json, json_option, pass_state
from plait.cli.loading import load_dag, open_provenance
from plait.config import check
from plait.dag import Dag
from plait.protocols import CacheBackend, ProvenanceBackend

__all__ = ["cache_backend_for", "config", "dag_for", "provenance_for"]


def dag_for(state: State, ref: str) -> tuple[Dag, str | None]:
    """The Dag ``ref`` names and the nsref to record its runs under: a DAG registered at
    that nsref in the ``--config`` file, else ``MODULE:DAG`` imported (nsref ``None``)."""
    configured = state.config()
    if configured is not None and ref in configured.namespace:
        return configured.dag(ref), ref
    return load_dag(ref), None


def provenance_for(state: State, options: dict[str, Any]) -> ProvenanceBackend:
    """``--provenance``/``--store`` when given, else the ``--config`` file's provenance
    store, else the default."""
    configured = state.config()
    if options["provenance"] is None and options["store"] is None and configured is not None:
        store = configured.provenance()
        if store is not None:
            return store
    return open_provenance(state.host, options["provenance"], options["store"])


def cache_backend_for(state: State) -> CacheBackend | str | None:
    """``--backend`` when given, else the ``--config`` file's cache, else the default."""
    configured = state.config()
    if state.cache_backend is None and state.cache_path is None and configured is not None:
        backend = configured.cache()
        if backend is not None:
            return backend
    return state.cache_backend


@click.group(invoke_without_command=True)
@click.pass_context
def config(ctx: click.Context) -> None:
    """Check configuration files."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(0)


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_state
def config_check(state: State, path: Path, as_json: bool) -> None:
    """Load FILE the way a run would and report every problem, each with its key.

    Every gref is imported, every factory called, every DAG validated and every backend
    built from its plugin. Exit code 0 when the file is valid, 2 when it is not.
    """
    problems = check(path, host=state.host)
    if as_json:
        echo_json([{"file": p.file, "key": p.key, "message": p.message} for p in problems])
    elif problems:
        noun = "problem" if len(problems) == 1 else "problems"
        click.echo(f"{path}: {len(problems)} {noun}", err=True)
        for problem in problems:
            click.echo(f"  {problem.key or '(file)'}: {problem.message}", err=True)
    else:
        click.echo(f"{path}: ok")
    click.get_current_context().exit(2 if problems else 0)
