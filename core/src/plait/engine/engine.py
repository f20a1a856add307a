"""``Engine``: runs triggers in the foreground, each fire a run of its DAG.

Everything runs on one anyio task group: a task per active trigger (its watcher), a task per
run, one housekeeping task (heartbeat, fires requested from outside, activation changes). No
thread per trigger, and a slow run never delays another trigger's fire: a watcher only
claims the fire in the store and hands the run to a task of its own.

Stopping (``stop()``, SIGTERM, Ctrl-C) is graceful: watchers stop first (no new fires),
in-flight runs get ``grace_period`` seconds to finish, then they are cancelled (their runs
end ``cancelled``, their fires ``interrupted``) and the next engine resumes them. On start an
engine adopts the open fires of engines that died (their process is gone, or they stopped
sending heartbeats) and resumes their runs in place (``DagRunner.restart``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final

import anyio
import anyio.abc

from plait.dag import Dag
from plait.engine.liveness import engine_alive
from plait.engine.resolve import open_trigger_store, resolve_dag
from plait.engine.runs import FireRun, RunEnd
from plait.engine.watch import TriggerWatch
from plait.errors import PlaitError, TriggerError, TriggerNotFoundError
from plait.namespace import Namespace
from plait.plugins import PluginHost, default_host
from plait.protocols import ProvenanceBackend
from plait.records import BackendKind, utcnow
from plait.runner import DagRunner
from plait.triggers.clock import Clock, SystemClock
from plait.triggers.inputs import json_payload, run_inputs
from plait.triggers.kinds import Watcher, get_trigger_kind
from plait.triggers.model import Trigger
from plait.triggers.store import (
    EngineRecord,
    FireClaim,
    FireOutcome,
    FireRecord,
    TriggerDefinition,
    TriggerState,
    TriggerStore,
)

__all__ = ["Engine"]

log = logging.getLogger("plait.engine")

_HOST: Final = socket.gethostname()


class Engine:
    """Runs ``triggers`` until stopped.

    ``store`` keeps trigger state (an instance, or the name of a registered trigger store
    built with ``store_options``); ``provenance`` records the runs (instance or name). Each
    fire runs its trigger's DAG with a runner from ``runner_factory(dag)`` (default: a
    ``DagRunner`` on ``provenance``). String DAG references resolve in ``namespace`` first,
    then as ``"package.module:attribute"``. ``clock`` is the time triggers follow (tests pass
    a :class:`~plait.triggers.ManualClock`). Heartbeats and requested fires are checked every
    ``poll_interval`` seconds of real time; an engine silent for ``lease`` seconds is dead.

    Use ``async with Engine(...) as engine:`` (it serves in the background and stops
    gracefully on exit) or ``await engine.serve()`` in the foreground.
    """

    def __init__(
        self,
        triggers: Sequence[Trigger],
        *,
        store: TriggerStore | str = "sqlite",
        store_options: Mapping[str, Any] | None = None,
        provenance: ProvenanceBackend | str = "sqlite",
        provenance_options: Mapping[str, Any] | None = None,
        runner_factory: Callable[[Dag], DagRunner] | None = None,
        namespace: Namespace | None = None,
        clock: Clock | None = None,
        grace_period: float = 10.0,
        poll_interval: float = 1.0,
        lease: float = 30.0,
        host: PluginHost | None = None,
    ) -> None:
        self.host = host or default_host()
        self.triggers: dict[str, Trigger] = {}
        for trigger in triggers:
            if trigger.name in self.triggers:
                raise TriggerError(f"trigger {trigger.name!r} is defined twice")
            self.triggers[trigger.name] = trigger
        self.watchers: dict[str, Watcher] = {
            t.name: get_trigger_kind(t.kind, self.host, trigger=t.name).watcher(t)
            for t in self.triggers.values()
        }
        self.dags: dict[str, Dag] = {t.name: resolve_dag(t, namespace) for t in triggers}
        self.store = open_trigger_store(store, self.host, dict(store_options or {}))
        self.provenance: ProvenanceBackend = (
            self.host.create(BackendKind.PROVENANCE, provenance, **dict(provenance_options or {}))
            if isinstance(provenance, str)
            else provenance
        )
        self._runner_factory = runner_factory
        self.clock: Clock = clock or SystemClock()
        self.grace_period = grace_period
        self.poll_interval = poll_interval
        self.lease = lease
        self.engine_id = uuid.uuid4().hex
        self._served = False
        self._runners: dict[int, DagRunner] = {}
        self._in_flight = 0  # runs
        self._runs_done: anyio.Event | None = None
        self._runs: anyio.abc.TaskGroup | None = None
        self._watching: dict[str, anyio.CancelScope] = {}
        self._watch_group: anyio.abc.TaskGroup | None = None
        self._stop: anyio.Event | None = None
        self._stop_requested = False
        self._stopping = False
        self._grace: float | None = None
        self._started: anyio.Event | None = None
        self._awake = 0
        self._idle: anyio.Event | None = None
        self._finished: dict[str, anyio.Event] = {}
        self._background: anyio.abc.TaskGroup | None = None

    # ------------------------------------------------------------------ context manager
    async def __aenter__(self) -> Engine:
        self._background = anyio.create_task_group()
        await self._background.__aenter__()
        await self._background.start(self.serve)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.stop()
        group, self._background = self._background, None
        assert group is not None
        return await group.__aexit__(exc_type, exc, tb)

    # ------------------------------------------------------------------ control
    def stop(self, *, grace_period: float | None = None) -> None:
        """Stop gracefully: no new fires; in-flight runs get ``grace_period`` seconds (the
        engine's by default) before they are cancelled. Safe to call from a signal task."""
        self._stop_requested = True
        if grace_period is not None:
            self._grace = grace_period
        if self._stop is not None:
            self._stop.set()

    async def idle(self) -> None:
        """Return once nothing is happening: every watcher waits on the clock, no fire is
        being claimed and no run is in flight (for tests driving a ManualClock)."""
        if self._started is None:
            raise TriggerError("the engine is not serving: use `async with engine` or serve()")
        await self._started.wait()
        while self._awake > 0:
            self._idle = anyio.Event()
            await self._idle.wait()

    def _enter(self) -> None:
        self._awake += 1

    def _leave(self) -> None:
        self._awake -= 1
        if self._awake == 0 and self._idle is not None:
            self._idle.set()

    async def sleep_until(self, when: datetime) -> None:
        """Wait on the engine's clock; the engine counts the caller as idle meanwhile."""
        self._leave()
        try:
            await self.clock.sleep_until(when)
        finally:
            self._enter()

    # ------------------------------------------------------------------ serving
    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until :meth:`stop`; ``task_status.started()`` once every trigger is watched."""
        if self._started is not None:
            raise TriggerError(f"engine {self.engine_id} is already serving")
        if self._served:  # each time it serves, an engine is a new incarnation
            self.engine_id = uuid.uuid4().hex
        self._served = True
        self._started = anyio.Event()
        self._stop = anyio.Event()
        if self._stop_requested:
            self._stop.set()
        self._awake = 1  # this task, until it waits for the stop
        try:
            async with contextlib.AsyncExitStack() as stack:
                await self._open(stack)
                await self._serve_open(task_status)
        finally:  # ready to serve again
            self._started = None
            self._stopping = self._stop_requested = False
            self._grace = None
            self._runners.clear()

    async def _open(self, stack: contextlib.AsyncExitStack) -> None:
        stack_entered: list[DagRunner] = []
        # the provenance first: a SQLite provenance store that opens a file another
        # connection of this process already uses would drop that connection's locks
        await self.provenance.open()
        stack.push_async_callback(self._close_provenance)
        await self.store.open()
        stack.push_async_callback(self._close_store)
        now = utcnow()
        await self.store.register_engine(
            EngineRecord(
                engine_id=self.engine_id,
                pid=os.getpid(),
                host=_HOST,
                started_at=now,
                heartbeat_at=now,
            )
        )
        for name in self.triggers:  # kept open (with their executors) until the engine ends
            runner = self.runner_for(name)
            if runner not in stack_entered:
                stack_entered.append(runner)
                await stack.enter_async_context(runner)

    async def _close_store(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.store.stop_engine(self.engine_id, utcnow())
            finally:
                await self.store.aclose()

    async def _close_provenance(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.provenance.aclose()

    async def _serve_open(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        assert self._stop is not None
        assert self._started is not None
        states = await self.store.define_triggers(
            [
                TriggerDefinition(name=t.name, kind=t.kind, definition=t.to_dict(), active=t.active)
                for t in self.triggers.values()
            ],
            self.clock.now(),
        )
        async with anyio.create_task_group() as runs:
            self._runs = runs
            async with anyio.create_task_group() as watchers:
                self._watch_group = watchers
                await self._recover()
                for state in states:
                    if state.active:
                        self._watch(state)
                self._enter()
                watchers.start_soon(self._housekeeping)
                self._started.set()
                task_status.started()
                self._leave()
                try:
                    await self._stop.wait()
                finally:
                    self._enter()
                    self._stopping = True
                    watchers.cancel_scope.cancel()
            await self._drain(runs)
        self._runs = None

    async def _drain(self, runs: anyio.abc.TaskGroup) -> None:
        grace = self.grace_period if self._grace is None else self._grace
        if self._in_flight:
            log.info("engine stopping: %d run(s) in flight, %.3g s grace", self._in_flight, grace)
        with anyio.move_on_after(grace):
            while self._in_flight:
                self._runs_done = anyio.Event()
                await self._runs_done.wait()
        runs.cancel_scope.cancel()

    # ------------------------------------------------------------------ watchers
    def _watch(self, state: TriggerState) -> None:
        assert self._watch_group is not None
        if state.name in self._watching or state.name not in self.triggers:
            return
        scope = anyio.CancelScope()
        self._watching[state.name] = scope
        self._enter()
        self._watch_group.start_soon(self._watch_task, state, scope)

    async def _watch_task(self, state: TriggerState, scope: anyio.CancelScope) -> None:
        trigger = self.triggers[state.name]
        ctx = TriggerWatch(self, trigger, state)
        failures = 0
        try:
            with scope:
                while True:
                    try:
                        await self.watchers[trigger.name].watch(ctx)
                        return
                    except Exception as exc:  # a broken watcher must not stop the engine
                        failures += 1
                        log.exception("trigger %r: its watcher failed", trigger.name)
                        await ctx.record_error(f"watcher failed: {type(exc).__name__}: {exc}")
                        pause = min(2.0**failures, 3600.0)
                        await self.sleep_until(self.clock.now() + timedelta(seconds=pause))
        finally:
            self._leave()  # a watcher that returned stays registered: nothing left to watch

    def _unwatch(self, name: str) -> None:
        scope = self._watching.pop(name, None)
        if scope is not None:
            scope.cancel()

    # ------------------------------------------------------------------ housekeeping
    async def _housekeeping(self) -> None:
        """Heartbeat, requested fires and activation changes, every ``poll_interval``
        seconds of real time (not the trigger clock: liveness is about real time)."""
        try:
            while True:
                self._leave()
                try:
                    await anyio.sleep(self.poll_interval)
                finally:
                    self._enter()
                try:
                    await self._housekeep()
                except PlaitError as exc:  # a busy or broken store: try again next time
                    log.warning("engine housekeeping failed: %s", exc)
                except Exception:
                    log.exception("engine housekeeping failed")
        finally:
            self._leave()

    async def _housekeep(self) -> None:
        await self.store.heartbeat(self.engine_id, utcnow())
        active = await self.store.activations()
        for name, on in active.items():
            if name not in self.triggers:
                continue
            if on and name not in self._watching:
                log.info("trigger %r activated", name)
                self._watch(await self.store.get_trigger(name))
            elif not on and name in self._watching:
                log.info("trigger %r deactivated", name)
                self._unwatch(name)
        limits = {
            name: (t.max_active_runs, t.overlap.value)
            for name, t in self.triggers.items()
            if active.get(name)
        }
        if limits:
            with anyio.CancelScope(shield=True):
                for fire in await self.store.claim_requests(
                    self.engine_id, limits, self.clock.now()
                ):
                    self._started_fire(fire)

    # ------------------------------------------------------------------ recovery
    def _dead(self, engine: EngineRecord, now: datetime) -> bool:
        return engine.engine_id != self.engine_id and not engine_alive(
            engine, now, within=self.lease
        )

    async def _recover(self) -> None:
        """Adopt the open fires of dead engines: resume their runs, keep their queue."""
        now = utcnow()
        dead = [e.engine_id for e in await self.store.list_engines() if self._dead(e, now)]
        with anyio.CancelScope(shield=True):
            adopted = await self.store.adopt_fires(self.engine_id, dead, self.clock.now())
        for fire in adopted:
            if fire.trigger not in self.triggers:
                await self.store.update_fire(
                    fire.fire_id,
                    self.clock.now(),
                    outcome=FireOutcome.ERROR,
                    error=f"trigger {fire.trigger!r} is not defined in the engine that "
                    "adopted this fire",
                )
            elif fire.outcome is FireOutcome.RUNNING:
                log.info("trigger %r: adopting fire %s", fire.trigger, fire.fire_id)
                self._start_run(fire, resume=True)
        for name in {f.trigger for f in adopted if f.trigger in self.triggers}:
            await self._promote(name)

    # ------------------------------------------------------------------ firing
    def _started_fire(self, fire: FireRecord) -> None:
        if fire.outcome is FireOutcome.RUNNING:
            self._start_run(fire, resume=False)
        elif not fire.outcome.is_open:
            self._finish_waiters(fire.fire_id)

    async def claim(
        self, trigger: Trigger, payload: Mapping[str, Any] | None, scheduled_for: datetime | None
    ) -> FireRecord | None:
        """Record a fire of ``trigger`` and start its run if a slot is free. ``None`` when
        this ``scheduled_for`` was already fired (by this engine or another)."""
        data = json_payload(payload, trigger=trigger.name)
        claim = FireClaim(
            fire_id=uuid.uuid4().hex,
            trigger=trigger.name,
            fired_at=self.clock.now(),
            engine_id=self.engine_id,
            max_active_runs=trigger.max_active_runs,
            overlap=trigger.overlap.value,
            scheduled_for=scheduled_for,
            payload=data,
        )
        with anyio.CancelScope(shield=True):  # a claimed fire always gets its run
            fire = await self.store.claim_fire(claim)
            if fire is not None:
                self._finished.setdefault(fire.fire_id, anyio.Event())
                self._started_fire(fire)
        if fire is not None:
            log.info(
                "trigger %r fired (%s)%s",
                trigger.name,
                fire.outcome,
                f" for {scheduled_for.isoformat()}" if scheduled_for else "",
            )
        return fire

    async def fire(
        self, name: str, payload: Mapping[str, Any] | None = None, *, wait: bool = False
    ) -> FireRecord:
        """Fire trigger ``name`` now with ``payload`` as the run's inputs.

        Returns the fire as recorded (``running``, ``queued`` or ``skipped``), or with
        ``wait=True`` once its run has ended. Unknown or inactive triggers and payloads that
        do not fit the DAG raise, naming the trigger.
        """
        trigger = self.triggers.get(name)
        if trigger is None:
            known = ", ".join(sorted(self.triggers)) or "none"
            raise TriggerNotFoundError(f"no trigger named {name!r} (triggers: {known})")
        if self._started is None or self._stopping:
            raise TriggerError(f"cannot fire trigger {name!r}: the engine is not serving")
        await self._started.wait()
        state = await self.store.get_trigger(name)
        if not state.active:
            raise TriggerError(
                f"trigger {name!r} is inactive (`plait triggers activate {name}` enables it)"
            )
        data = json_payload(payload, trigger=name)
        run_inputs(self.dags[name], trigger.inputs, data, where=f"trigger {name!r}")
        self._enter()
        try:
            fire = await self.claim(trigger, data, None)
        finally:
            self._leave()
        assert fire is not None  # manual fires have no scheduled instant to collide on
        done = self._finished.get(fire.fire_id)
        if wait and done is not None:
            await done.wait()
            fire = await self.store.get_fire(fire.fire_id)
        return fire

    # ------------------------------------------------------------------ runs
    def runner_for(self, name: str) -> DagRunner:
        """The runner that runs trigger ``name``'s DAG (one per Dag, kept open)."""
        dag = self.dags[name]
        runner = self._runners.get(id(dag))
        if runner is None:
            if self._runner_factory is not None:
                runner = self._runner_factory(dag)
            else:
                runner = DagRunner(dag, provenance=self.provenance, host=self.host)
            self._runners[id(dag)] = runner
        return runner

    def _start_run(self, fire: FireRecord, *, resume: bool) -> None:
        assert self._runs is not None
        self._finished.setdefault(fire.fire_id, anyio.Event())
        self._enter()
        self._in_flight += 1
        self._runs.start_soon(self._run_task, fire, resume)

    async def _run_task(self, fire: FireRecord, resume: bool) -> None:
        name = fire.trigger
        job = FireRun(
            trigger=self.triggers[name],
            dag=self.dags[name],
            runner=self.runner_for(name),
            store=self.store,
            now=self.clock.now,
            sleep_until=self.sleep_until,
        )
        end: RunEnd | None = None
        try:
            end = await job.execute(fire, resume=resume)
        finally:
            if end is None:  # cancelled: the engine is stopping
                end = RunEnd(
                    outcome=FireOutcome.INTERRUPTED, run_id=job.run_id, attempt=job.attempt
                )
            with anyio.CancelScope(shield=True):
                await self._record_end(fire, end)
            self._in_flight -= 1
            if self._in_flight == 0 and self._runs_done is not None:
                self._runs_done.set()
            self._leave()

    async def _record_end(self, fire: FireRecord, end: RunEnd) -> None:
        outcome = end.outcome
        if outcome is FireOutcome.CANCELLED and self._stopping:
            outcome = FireOutcome.INTERRUPTED
        await self.store.update_fire(
            fire.fire_id,
            self.clock.now(),
            outcome=outcome,
            run_id=end.run_id,
            attempt=end.attempt,
            error=end.error,
        )
        self._finish_waiters(fire.fire_id)
        log.info("trigger %r: fire %s %s", fire.trigger, fire.fire_id, outcome)
        if not self._stopping:
            await self._promote(fire.trigger)

    def _finish_waiters(self, fire_id: str) -> None:
        event = self._finished.pop(fire_id, None)
        if event is not None:
            event.set()

    async def _promote(self, name: str) -> None:
        trigger = self.triggers[name]
        while not self._stopping:
            fire = await self.store.promote(
                name, self.engine_id, trigger.max_active_runs, self.clock.now()
            )
            if fire is None:
                return
            self._start_run(fire, resume=False)


def _signals() -> tuple[signal.Signals, ...]:
    names = ("SIGTERM", "SIGINT")  # SIGTERM is missing on some platforms
    return tuple(getattr(signal, n) for n in names if hasattr(signal, n))


async def serve_until_signalled(engine: Engine) -> None:
    """Serve ``engine`` until SIGTERM or SIGINT (Ctrl-C): the first stops it gracefully,
    a second one cuts the grace period short."""
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(*_signals()) as received:
                count = 0
                async for signum in received:
                    count += 1
                    log.info("engine: signal %s, stopping", signal.Signals(signum).name)
                    engine.stop(grace_period=0.0 if count > 1 else None)

        tg.start_soon(watch_signals)
        await engine.serve()
        tg.cancel_scope.cancel()
