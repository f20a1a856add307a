"""``plait engine``, ``plait engine status``, ``plait triggers [activate|deactivate]`` and
``plait fire``: triggers and the engine that runs them.

Trigger state lives in a trigger store (``sqlite``: tables of their own in the provenance
file, so ``--store PATH`` names both). ``plait engine --config FILE`` defines the triggers of
the file's ``[triggers]`` section in the store and runs them; without ``--config`` it runs
the triggers the store already knows. ``plait fire`` records a requested fire that the
running engine claims within a second.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import attrs
import click
from rich.table import Table
from rich.text import Text

from plait.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    State,
    echo_json,
    format_when,
    json_option,
    make_console,
    pass_state,
    status_text,
    to_json,
)
from plait.cli.config import provenance_for
from plait.config import Config
from plait.engine import Engine, engine_alive, serve_until_signalled
from plait.errors import TriggerError
from plait.records import BackendKind
from plait.triggers import (
    EngineRecord,
    FireOutcome,
    FireRecord,
    Trigger,
    TriggerState,
    TriggerStore,
    spec_text,
    triggers_from_config,
    upcoming_fires,
)

__all__ = ["engine", "fire", "triggers"]


def store_option(fn: Any) -> Any:
    """``--store PATH`` of ``plait engine``, which creates the file when missing."""
    return _store_option(fn, existing=False)


def existing_store_option(fn: Any) -> Any:
    """``--store PATH`` of the commands that read or change what an engine defined: a file
    that does not exist is a usage error (a mistyped path creates nothing)."""
    return _store_option(fn, existing=True)


def _store_option(fn: Any, *, existing: bool) -> Any:
    return click.option(
        "--store",
        "store",
        type=click.Path(exists=existing, dir_okay=False, path_type=Path),
        default=None,
        help="The store file: runs and trigger state (default: the user's data directory).",
    )(fn)


def config_option(fn: Any) -> Any:
    return click.option(
        "--config",
        "config",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="A configuration file (as for plait --config): its [triggers] run, their DAGs "
        "may be nsrefs of its namespace, its [storage] is the store.",
    )(fn)


def store_path(state: State, store: Path | None) -> Path | None:
    """``--store`` when given, else the ``sqlite`` provenance file of the configuration
    (``plait --config FILE``, or the engine's own ``--config``), else ``None`` (the default
    file): trigger state lives beside the runs it starts."""
    if store is not None:
        return store
    configured = state.config()
    spec = configured.storage.provenance if configured is not None else None
    if spec is not None and spec.backend == "sqlite" and spec.options.get("path") is not None:
        return Path(spec.options["path"])
    return None


def open_trigger_store(state: State, store: Path | None) -> TriggerStore:
    path = store_path(state, store)
    options: dict[str, Any] = {} if path is None else {"path": str(path)}
    trigger_store: TriggerStore = state.host.create(BackendKind.TRIGGER_STORE, "sqlite", **options)
    return trigger_store


def configured_triggers(state: State, config: Config) -> list[Trigger]:
    """The triggers of a configuration file loaded as ``plait --config`` loads one (its
    ``pythonpath``, namespace and storage included; every problem listed at once)."""
    if not config.triggers:
        raise TriggerError(f"configuration {str(config.path)!r} has no [triggers] section")
    return triggers_from_config(config.triggers, host=state.host)


async def _stored_triggers(state: State, store: TriggerStore) -> list[Trigger]:
    async with _opened(store):
        states = await store.list_triggers()
    return [Trigger.from_dict(s.definition, host=state.host) for s in states]


class _opened:
    """``async with _opened(store)``: open and close a trigger store."""

    def __init__(self, store: TriggerStore) -> None:
        self.store = store

    async def __aenter__(self) -> TriggerStore:
        await self.store.open()
        return self.store

    async def __aexit__(self, *exc_info: object) -> None:
        await self.store.aclose()


def _log_to_stderr() -> None:
    logger = logging.getLogger("plait.engine")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


# ---------------------------------------------------------------------- plait engine
@click.group(invoke_without_command=True)
@config_option
@store_option
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds in-flight runs may still finish after SIGTERM or Ctrl-C.",
)
@pass_state
@click.pass_context
def engine(
    ctx: click.Context, state: State, config: Path | None, store: Path | None, grace: float
) -> None:
    """Run the triggers in the foreground until SIGTERM or Ctrl-C.

    With --config, the file's [triggers] are defined in the store (a trigger's stored
    activation is kept); without it, the triggers the store already knows run. Runs a dead
    engine left behind are resumed first.
    """
    if ctx.invoked_subcommand is not None:
        return
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # DAG references import as with ``python -m``
    if config is not None:
        state.config_path = config  # the engine's own --config wins over plait --config
    configured = state.config()
    trigger_store = open_trigger_store(state, store)
    if configured is not None:
        defined = configured_triggers(state, configured)
    else:
        defined = state.run(lambda: _stored_triggers(state, trigger_store))
    if not defined:
        raise TriggerError(
            "no triggers to run: give a configuration with a [triggers] section (--config)"
        )
    runner = Engine(
        defined,
        store=trigger_store,
        provenance=provenance_for(state, {"provenance": None, "store": store}),
        namespace=configured.namespace if configured is not None else None,
        grace_period=grace,
        host=state.host,
    )
    _log_to_stderr()
    click.echo(
        f"engine {runner.engine_id} (pid {os.getpid()}): {len(defined)} trigger(s); "
        "SIGTERM or Ctrl-C stops it",
        err=True,
    )
    state.run(lambda: serve_until_signalled(runner))
    click.echo(f"engine {runner.engine_id} stopped", err=True)


@engine.command("status")
@existing_store_option
@json_option
@pass_state
def engine_status(state: State, store: Path | None, as_json: bool) -> None:
    """Engines that used the store (alive first), and the fires still open."""

    async def load() -> tuple[list[EngineRecord], list[FireRecord]]:
        async with _opened(open_trigger_store(state, store)) as s:
            records = await s.list_engines()
            fires = [f for f in await s.list_fires(limit=500) if f.outcome.is_open]
        return records, fires

    records, open_fires = state.run(load)
    now = datetime.now(UTC)
    alive = [r for r in records if engine_alive(r, now)]
    if as_json:
        echo_json(
            {
                "engines": [{**to_json(r), "alive": engine_alive(r, now)} for r in records],
                "open_fires": [to_json(f) for f in open_fires],
            }
        )
        return
    console = make_console()
    if not alive:
        console.print("no engine is running (start one: plait engine --config FILE)")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ENGINE", "STATE", "PID", "HOST", "STARTED", "HEARTBEAT", "OPEN FIRES"):
        table.add_column(column, no_wrap=True)
    for r in records[:20]:
        owned = sum(1 for f in open_fires if f.engine_id == r.engine_id)
        label = "alive" if r in alive else ("stopped" if r.stopped_at else "dead")
        table.add_row(
            r.engine_id[:12],
            Text(label, style="green" if label == "alive" else "bright_black"),
            str(r.pid),
            r.host,
            format_when(r.started_at),
            format_when(r.heartbeat_at),
            str(owned),
        )
    if records:
        console.print(table)


# ---------------------------------------------------------------------- plait triggers
def _next_fire(state: State, s: TriggerState, now: datetime) -> datetime | None:
    times, _problem = upcoming_fires(s, now, 1, state.host)
    return times[0] if times else None


@click.group(invoke_without_command=True)
@existing_store_option
@json_option
@pass_state
@click.pass_context
def triggers(ctx: click.Context, state: State, store: Path | None, as_json: bool) -> None:
    """List the triggers of the store with their next fire times."""
    if ctx.invoked_subcommand is not None:
        return

    async def load() -> tuple[list[TriggerState], dict[str, FireRecord]]:
        async with _opened(open_trigger_store(state, store)) as s:
            states = await s.list_triggers()
            last = {}
            for st in states:
                fires = await s.list_fires(trigger=st.name, limit=1)
                if fires:
                    last[st.name] = fires[0]
        return states, last

    states, last = state.run(load)
    now = datetime.now(UTC)
    states = [attrs.evolve(s, next_fire_at=_next_fire(state, s, now)) for s in states]
    if as_json:
        echo_json(
            [
                {**to_json(s), "last_outcome": last[s.name].outcome if s.name in last else None}
                for s in states
            ]
        )
        return
    console = make_console()
    if not states:
        console.print("no triggers defined yet (plait engine --config FILE defines them)")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("TRIGGER", "KIND", "SCHEDULE", "ACTIVE", "NEXT FIRE", "LAST FIRE", "LAST"):
        table.add_column(column, no_wrap=column not in ("SCHEDULE",))
    table.add_column("ERROR")
    for s in states:
        recent = last.get(s.name)
        table.add_row(
            s.name,
            s.kind,
            spec_text(s),
            "yes" if s.active else Text("no", style="bright_black"),
            format_when(s.next_fire_at),
            format_when(s.last_fire_at),
            status_text(recent.outcome) if recent else "",
            (s.last_error or "")[:80] if s.errors else "",
        )
    console.print(table)


def _set_active(state: State, store: Path | None, name: str, active: bool) -> None:
    async def change() -> TriggerState:
        async with _opened(open_trigger_store(state, store)) as s:
            return await s.set_active(name, active, datetime.now(UTC))

    changed = state.run(change)
    word = "activated" if changed.active else "deactivated"
    click.echo(f"trigger {changed.name!r} {word} (a running engine notices within a second)")


@triggers.command("activate")
@click.argument("name")
@existing_store_option
@pass_state
def activate(state: State, name: str, store: Path | None) -> None:
    """Activate trigger NAME (persists; a running engine starts watching it)."""
    _set_active(state, store, name, True)


@triggers.command("deactivate")
@click.argument("name")
@existing_store_option
@pass_state
def deactivate(state: State, name: str, store: Path | None) -> None:
    """Deactivate trigger NAME: it stops firing until activated again."""
    _set_active(state, store, name, False)


# ---------------------------------------------------------------------- plait fire
def _payload(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--payload") from None
    if not isinstance(data, dict):
        raise click.BadParameter(
            f"must be a JSON object of run inputs, got {type(data).__name__}",
            param_hint="--payload",
        )
    return data


async def _wait_final(store: TriggerStore, fire_id: str, timeout: float | None) -> FireRecord:
    with anyio.move_on_after(timeout):
        while True:
            fire = await store.get_fire(fire_id)
            if not fire.outcome.is_open:
                return fire
            await anyio.sleep(0.2)
    return await store.get_fire(fire_id)


@click.command()
@click.argument("name")
@click.option("--payload", default=None, metavar="JSON", help="The run's inputs, a JSON object.")
@click.option("--wait", is_flag=True, help="Wait until the run ends; exit 1 unless it completed.")
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=None, help="With --wait: give up after N s."
)
@existing_store_option
@json_option
@pass_state
def fire(
    state: State,
    name: str,
    payload: str | None,
    wait: bool,
    timeout: float | None,
    store: Path | None,
    as_json: bool,
) -> None:
    """Fire trigger NAME: the running engine starts its run within a second."""
    data = _payload(payload)

    async def request() -> FireRecord:
        async with _opened(open_trigger_store(state, store)) as s:
            trigger = await s.get_trigger(name)
            if not trigger.active:
                raise TriggerError(
                    f"trigger {name!r} is inactive (`plait triggers activate {name}` enables it)"
                )
            now = datetime.now(UTC)
            record = await s.request_fire(uuid.uuid4().hex, name, data, now)
            if not any(engine_alive(e, now) for e in await s.list_engines()):
                click.echo(
                    "warning: no engine is running on this store; the fire waits for the "
                    "next `plait engine`",
                    err=True,
                )
            if wait:
                record = await _wait_final(s, record.fire_id, timeout)
            return record

    record = state.run(request)
    if as_json:
        echo_json(to_json(record))
    else:
        click.echo(f"fire {record.fire_id} of trigger {name!r}: {record.outcome}")
        if record.run_id:
            click.echo(f"run {record.run_id}")
        if record.error:
            click.echo(f"error: {record.error}", err=True)
    if wait and record.outcome is not FireOutcome.COMPLETED:
        click.get_current_context().exit(EXIT_FAILED)
    click.get_current_context().exit(EXIT_OK)
