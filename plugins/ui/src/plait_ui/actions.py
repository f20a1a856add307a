"""Restart, replay and fire buttons (only with ``plait ui --allow-actions``).

A run can only be restarted or replayed with its :class:`~plait.Dag`, so the server is told
which DAGs it may run (``--dag MODULE:DAG``, keyed by their nsref); runs of other DAGs show
no buttons. Every action is a POST that must carry the server's token (a secret made when
the server starts and written only into its own pages) and, when the browser sends one, an
``Origin`` of the server itself: another site cannot make the browser press a button.

A restarted or replayed run executes inside the server process, in a task of the server's
task group, through a fresh :class:`~plait.DagRunner` writing to the same store. A fire is
what ``plait fire`` does: a ``requested`` fire in the trigger store, which the running
``plait engine`` claims and runs; the button then opens the run once it shows up.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs

import anyio
import anyio.abc
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from plait import Dag, DagRunner
from plait.engine import find_fire_run
from plait.errors import PlaitError
from plait.records import RunRecord, RunStatus, utcnow
from plait.triggers import FireOutcome, FireRecord
from plait_ui.queries import BadQueryError, PageNotFoundError
from plait_ui.render import fire_url, run_url
from plait_ui.triggers import parse_payload, request_fire

if TYPE_CHECKING:
    from plait.protocols import ProvenanceBackend
    from plait.triggers import TriggerStore

__all__ = ["ActionRefusedError", "Actions"]

#: How long a button waits for its run to show up in the store before redirecting anyway.
START_WAIT = 5.0


class ActionRefusedError(PlaitError, PermissionError):
    """A POST without the server's token, or from another origin."""


class _Pages(Protocol):
    async def opened(self) -> ProvenanceBackend: ...


class Actions:
    """The DAGs the server may run, the token, and the task group runs execute in."""

    def __init__(
        self,
        dags: Mapping[str, Dag],
        make_runner: Callable[[Dag], DagRunner],
        *,
        token: str | None = None,
    ) -> None:
        self.dags = dict(dags)
        self.make_runner = make_runner
        self.token = token or secrets.token_urlsafe(32)
        self.errors: dict[str, str] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                yield
            finally:
                self._tg = None
                tg.cancel_scope.cancel()

    # ------------------------------------------------------------------ what a page offers
    def can_restart(self, run: RunRecord) -> bool:
        return (
            run.parent_run_id is None
            and run.dag_nsref in self.dags
            and run.status in (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.PAUSED)
        )

    def can_replay(self, run: RunRecord) -> bool:
        return run.parent_run_id is None and run.dag_nsref in self.dags and run.status.is_final

    # ------------------------------------------------------------------ the POST
    def check(self, request: Request, form: Mapping[str, list[str]]) -> None:
        sent = (form.get("csrf") or [""])[0]
        if not secrets.compare_digest(sent.encode(), self.token.encode()):
            raise ActionRefusedError("the form's token is missing or wrong: reload the page")
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != own:
            raise ActionRefusedError(f"a request from {origin!r} may not act on {own!r}")
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise ActionRefusedError("a cross-site request may not act on runs")

    async def checked_form(self, request: Request) -> dict[str, list[str]]:
        """The POST's form fields, once :meth:`check` let it through."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        self.check(request, form)
        return form

    async def handle(self, request: Request, pages: _Pages) -> Response:
        action = request.path_params["action"]
        if action not in ("restart", "replay"):
            raise PageNotFoundError(f"there is no action {action!r} (restart, replay)")
        form = await self.checked_form(request)
        prov = await pages.opened()
        run = await prov.get_run(request.path_params["run_id"])
        dag = self.dags.get(run.dag_nsref)
        if dag is None:
            raise BadQueryError(
                f"run {run.run_id!r} is of DAG {run.dag_nsref!r}, which this server was not "
                "given: start it with `plait ui --allow-actions --dag MODULE:DAG`"
            )
        if action == "restart":
            target = await self._restart(prov, run, dag)
        else:
            target = await self._replay(prov, run, dag, form.get("rerun") or [])
        return RedirectResponse(run_url(target), status_code=303)

    def _start(self, run_id: str, call: Callable[[], object]) -> anyio.Event:
        assert self._tg is not None, "actions run only inside the server's lifespan"
        done = anyio.Event()

        async def task() -> None:
            try:
                await call()  # type: ignore[misc]
            except PlaitError as exc:
                self.errors[run_id] = str(exc)
            finally:
                done.set()

        self.errors.pop(run_id, None)
        self._tg.start_soon(task)
        return done

    async def _wait(self, run_id: str, done: anyio.Event, changed: Callable[[], object]) -> None:
        """Until the new run is visible in the store, or the task ended (maybe failing)."""
        with anyio.move_on_after(START_WAIT):
            while True:
                finished = done.is_set()  # read first: one last look after the task ends
                if await changed() or finished:  # type: ignore[misc]
                    break
                await anyio.sleep(0.05)
        if run_id in self.errors:
            raise BadQueryError(self.errors.pop(run_id))

    async def _restart(self, prov: ProvenanceBackend, run: RunRecord, dag: Dag) -> str:
        runner = self.make_runner(dag)
        done = self._start(run.run_id, lambda: runner.restart(run.run_id))

        async def changed() -> bool:
            now = await prov.get_run(run.run_id)
            return now.updated_at != run.updated_at

        await self._wait(run.run_id, done, changed)
        return run.run_id

    async def _replay(
        self, prov: ProvenanceBackend, run: RunRecord, dag: Dag, rerun: list[str]
    ) -> str:
        if not rerun:
            raise BadQueryError(f"replay of run {run.run_id!r}: pick at least one node to rerun")
        runner = self.make_runner(dag)
        done = self._start(run.run_id, lambda: runner.replay(run.run_id, rerun_nodes=set(rerun)))
        found: list[str] = []

        async def changed() -> bool:
            for candidate in await prov.list_runs(dag_nsref=run.dag_nsref, limit=20):
                if candidate.replay_of == run.run_id and candidate.started_at > run.updated_at:
                    found.append(candidate.run_id)
                    return True
            return False

        await self._wait(run.run_id, done, changed)
        return found[0] if found else run.run_id

    # ------------------------------------------------------------------ fire
    async def fire(
        self, request: Request, store: TriggerStore, prov: ProvenanceBackend
    ) -> Response:
        """Fire the trigger of the URL (form field ``payload``: optional JSON run inputs),
        then open its run once the engine started it, else the fire's page."""
        form = await self.checked_form(request)
        name = request.path_params["name"]
        payload = parse_payload((form.get("payload") or [""])[0])
        record, engine_running = await request_fire(store, name, payload, utcnow())
        target = fire_url(name, record.fire_id)
        if engine_running:
            run = await self._fire_run(store, prov, record)
            if run is not None:
                target = run_url(run.run_id)
        return RedirectResponse(target, status_code=303)

    async def _fire_run(
        self, store: TriggerStore, prov: ProvenanceBackend, record: FireRecord
    ) -> RunRecord | None:
        """The run of a fire, once an engine claimed the fire and started it (None when the
        fire was skipped, queued or failed to start, or nothing happened in time)."""
        with anyio.move_on_after(START_WAIT):
            while True:
                fire = await store.get_fire(record.fire_id)
                if fire.outcome in (FireOutcome.QUEUED, FireOutcome.SKIPPED, FireOutcome.ERROR):
                    return None
                if fire.outcome is not FireOutcome.REQUESTED:
                    run = await find_fire_run(prov, fire)
                    if run is not None or not fire.outcome.is_open:
                        return run
                await anyio.sleep(0.05)
        return None
