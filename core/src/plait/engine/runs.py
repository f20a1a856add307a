"""One fire's run: start it (or resume the run a dead engine left), retry it when it fails,
and record how it ended on the fire.

The fire's id is the run's correlation id: that is how a new engine finds the run of a fire
whose engine died before it could write the run id down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import attrs

from plait.dag import Dag
from plait.errors import PlaitError, RunBusyError, RunNotFoundError
from plait.owners import owner_alive
from plait.protocols import ProvenanceBackend
from plait.records import RunRecord, RunStatus
from plait.runner import DagRunner, DagRunResult
from plait.triggers.inputs import run_inputs
from plait.triggers.model import Trigger
from plait.triggers.store import FireOutcome, FireRecord, TriggerStore

__all__ = ["FireRun", "RunEnd", "find_fire_run"]

log = logging.getLogger("plait.engine")

#: Completed runs searched (newest first) for a fire's run when its engine died between the
#: run's end and the fire's update.
COMPLETED_LOOKBACK = 500
_UNFINISHED = (RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.PAUSED)


@attrs.frozen(kw_only=True)
class RunEnd:
    """How a fire's run ended: what to write on the fire."""

    outcome: FireOutcome
    run_id: str | None = None
    error: str | None = None
    attempt: int = 0


def _end_of(result: DagRunResult, attempt: int) -> RunEnd:
    error = None
    if result.status is not RunStatus.COMPLETED and result.error is not None:
        where = f"node {result.failed_node!r}: " if result.failed_node else ""
        error = f"{where}{result.error}"
    return RunEnd(
        outcome=FireOutcome(result.status.value), run_id=result.run_id, error=error, attempt=attempt
    )


async def find_fire_run(prov: ProvenanceBackend, fire: FireRecord) -> RunRecord | None:
    """The top-level run whose correlation id is the fire's id, if one was recorded."""
    if fire.run_id is not None:
        try:
            return await prov.get_run(fire.run_id)
        except RunNotFoundError:
            return None
    for status in _UNFINISHED:
        for run in await prov.list_runs(status=status):
            if run.correlation_id == fire.fire_id and run.parent_run_id is None:
                return run
    for run in await prov.list_runs(status=RunStatus.COMPLETED, limit=COMPLETED_LOOKBACK):
        if run.correlation_id == fire.fire_id and run.parent_run_id is None:
            return run
    return None


class FireRun:
    """Runs one fire of ``trigger`` with ``runner`` (whose Dag is ``dag``).

    ``sleep_until`` is the engine's (so retry back-offs follow its clock); ``now`` reads it.
    """

    def __init__(
        self,
        *,
        trigger: Trigger,
        dag: Dag,
        runner: DagRunner,
        store: TriggerStore,
        now: Callable[[], datetime],
        sleep_until: Callable[[datetime], Awaitable[None]],
    ) -> None:
        self.trigger = trigger
        self.dag = dag
        self.runner = runner
        self.store = store
        self.now = now
        self.sleep_until = sleep_until
        #: what is known so far (an engine that stops mid-run records these)
        self.run_id: str | None = None
        self.attempt = 0

    @property
    def where(self) -> str:
        return f"trigger {self.trigger.name!r}"

    async def execute(self, fire: FireRecord, *, resume: bool) -> RunEnd:
        """Run (or resume) the fire's run to its end, retrying failures by the policy."""
        self.run_id, self.attempt = fire.run_id, fire.attempt
        try:
            if resume:
                end = await self._resume(fire)
            else:
                end = _end_of(await self._start(fire), fire.attempt)
            return await self._retry(fire, end)
        except PlaitError as exc:
            log.warning("%s: fire %s did not run: %s", self.where, fire.fire_id, exc)
            return RunEnd(outcome=FireOutcome.ERROR, run_id=self.run_id, error=str(exc))
        except Exception as exc:  # a bug must cost this fire, never the engine
            log.exception("%s: fire %s failed unexpectedly", self.where, fire.fire_id)
            return RunEnd(
                outcome=FireOutcome.ERROR,
                run_id=self.run_id,
                error=f"unexpected {type(exc).__name__}: {exc}",
            )

    async def _start(self, fire: FireRecord) -> DagRunResult:
        inputs = run_inputs(
            self.dag, self.trigger.inputs, fire.payload, where=f"{self.where} fire {fire.fire_id}"
        )
        dag_nsref = self.trigger.dag if isinstance(self.trigger.dag, str) else None
        return await self.runner.run(
            source_inputs=inputs, dag_nsref=dag_nsref, correlation_id=fire.fire_id
        )

    async def _resume(self, fire: FireRecord) -> RunEnd:
        run = await find_fire_run(self.runner.provenance, fire)
        if run is None:
            log.info("%s: fire %s has no run yet: starting it", self.where, fire.fire_id)
            return _end_of(await self._start(fire), fire.attempt)
        self.run_id = run.run_id
        await self.store.update_fire(fire.fire_id, self.now(), run_id=run.run_id)
        if run.status is RunStatus.COMPLETED:
            return RunEnd(outcome=FireOutcome.COMPLETED, run_id=run.run_id, attempt=fire.attempt)
        if run.status in (RunStatus.FAILED, RunStatus.PAUSED):
            # ended on its own before the engine died: the retry policy decides
            return RunEnd(
                outcome=FireOutcome(run.status.value),
                run_id=run.run_id,
                error=run.error_message,
                attempt=fire.attempt,
            )
        log.info("%s: resuming run %s of fire %s", self.where, run.run_id, fire.fire_id)
        return _end_of(await self._restart(run.run_id), fire.attempt)

    async def _restart(self, run_id: str) -> DagRunResult:
        try:
            return await self.runner.restart(run_id)
        except RunBusyError:
            run = await self.runner.provenance.get_run(run_id)
            if owner_alive(run.owner) is not None:
                # alive (a user's `plait restart`, say), or another restart claimed it
                # between our read and our claim: never take a live owner's run
                raise
            # marked running by a process on another host: the fire's engine lease ran
            # out, which proves that engine gone, so the run is ours to take over. The
            # claim still names the owner read here, so of two engines only one wins.
            return await self.runner.restart(run_id, force=True)

    async def _retry(self, fire: FireRecord, end: RunEnd) -> RunEnd:
        policy = self.trigger.retry
        attempt = end.attempt
        self.run_id = end.run_id or self.run_id
        while (
            policy is not None
            and end.outcome is FireOutcome.FAILED
            and end.run_id is not None
            and attempt < policy.attempts
        ):
            attempt += 1
            self.attempt = attempt
            delay = policy.delay(attempt)
            log.info(
                "%s: run %s failed; restart %d of %d in %.3g s",
                self.where,
                end.run_id,
                attempt,
                policy.attempts,
                delay,
            )
            await self.store.update_fire(
                fire.fire_id, self.now(), run_id=end.run_id, attempt=attempt, error=end.error
            )
            await self.sleep_until(self.now() + timedelta(seconds=delay))
            end = _end_of(await self.runner.restart(end.run_id), attempt)
        return attrs.evolve(end, attempt=attempt)
