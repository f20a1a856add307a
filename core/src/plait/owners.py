"""Run ownership: which process owns a run, whether it is still alive, and the claim rule.

A run is owned by one process at a time, named by a :class:`~plait.records.RunOwner`: its
pid, its host and ``started``, a token of when that process started. A pid alone is not
enough: after the owner dies the pid may be given to another process, and a dead child
whose parent has not reaped it (a zombie) still answers ``kill(pid, 0)``. On Linux the
token is the boot id and the process start time from ``/proc/<pid>/stat``; elsewhere it is
the start time ``ps`` reports; where neither works it is ``""`` and the pid decides.

:func:`claimed` is the rule every provenance backend's ``claim_run`` applies inside its
own transaction: take the run only if its attempt and owner are what the caller read.
"""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import datetime
from functools import cache
from typing import Final

import attrs

from plait.errors import RestartError, RunBusyError
from plait.records import RunOwner, RunRecord, RunStatus

__all__ = [
    "claimed",
    "earlier_work_ms",
    "owner_alive",
    "process_started",
    "resumed_by",
    "this_process",
]

_ABSENT: Final = "absent"  # no such process, or a zombie: it will never write again


@cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return "boot"


def _from_proc(pid: int) -> str | None:
    """The start token from ``/proc`` (``_ABSENT`` for none or a zombie), or ``None``
    when this system has no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return _ABSENT if os.path.isdir("/proc/self") else None
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields follow the last ")"
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):  # zombie, or dead
        return _ABSENT
    return f"linux:{_boot_id()}:{int(fields[19])}"  # field 22: start time in clock ticks


def _from_ps(pid: int) -> str | None:
    """The start token from ``ps`` (``_ABSENT`` for none or a zombie), or ``None``."""
    try:
        done = subprocess.run(
            ["ps", "-o", "stat=", "-o", "lstart=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    line = done.stdout.strip()
    if not line:
        return _ABSENT if done.returncode != 0 else None
    state, _, started = line.partition(" ")
    if state.startswith("Z"):
        return _ABSENT
    return "ps:" + " ".join(started.split())


def _probe(pid: int) -> str | None:
    """``_ABSENT``, a start token (``""`` if unknown) for a live process, or ``None`` when
    this system gives no way to tell."""
    if pid <= 0:
        return _ABSENT
    found = _from_proc(pid)
    if found is None and os.name == "posix":
        found = _from_ps(pid)
    if found is None and os.name == "posix":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return _ABSENT
        except PermissionError:
            return ""
        return ""
    return found


def process_started(pid: int) -> str:
    """The start token of live process ``pid`` (``""`` when it cannot be told)."""
    found = _probe(pid)
    return "" if found is None or found == _ABSENT else found


@cache
def _owner_of(pid: int) -> RunOwner:
    return RunOwner(pid=pid, host=socket.gethostname(), started=process_started(pid))


def this_process() -> RunOwner:
    """This process as the owner of a run (computed once per process, again after fork)."""
    return _owner_of(os.getpid())


def owner_alive(owner: RunOwner) -> bool | None:
    """Is the process that owns a run still alive?

    ``False`` when it is gone, a zombie, or its pid now belongs to a process started at
    another time; ``None`` when that cannot be told from here (another host, or a system
    with neither ``/proc`` nor ``ps``); ``True`` otherwise.
    """
    if owner.pid <= 0:
        return False
    if owner.host != this_process().host:
        return None
    found = _probe(owner.pid)
    if found is None:
        return None
    if found == _ABSENT:
        return False
    return not (owner.started and found and owner.started != found)


def claimed(
    run: RunRecord,
    *,
    expected_attempt: int,
    owner: RunOwner,
    at: datetime,
    expected_owner: RunOwner | None = None,
) -> RunRecord:
    """``run`` as ``owner`` takes it over at ``at``: running, one attempt more, no error.

    The claim rule, applied by a backend inside the transaction that stores the result:
    raises :class:`~plait.errors.RunBusyError` (naming the run and its current owner) when
    the run's attempt is not ``expected_attempt`` or, if given, its owner is not
    ``expected_owner`` (someone claimed it since it was read, whether or not they have
    finished it since), and :class:`~plait.errors.RestartError` when the run, as read,
    had completed.
    """
    if run.attempt != expected_attempt or (
        expected_owner is not None and run.owner != expected_owner
    ):
        raise RunBusyError(
            f"run {run.run_id!r} is owned by process {run.owner_pid} on host "
            f"{run.owner_host!r} (attempt {run.attempt}, {run.status}): it was claimed after "
            f"you read it at attempt {expected_attempt}",
            run_id=run.run_id,
            owner_pid=run.owner_pid,
            owner_host=run.owner_host,
            attempt=run.attempt,
        )
    if run.status is RunStatus.COMPLETED:
        raise RestartError(f"run {run.run_id!r} already completed; use replay() to run it again")
    return resumed_by(run, owner, at)


def resumed_by(run: RunRecord, owner: RunOwner, at: datetime) -> RunRecord:
    """``run`` as ``owner`` resumes it at ``at``: running again, one attempt more, no error,
    the work of its earlier attempts added up (so the idle gap before does not count)."""
    return attrs.evolve(
        run,
        status=RunStatus.RUNNING,
        updated_at=at,
        resumed_at=at,
        earlier_ms=earlier_work_ms(run),
        finished_at=None,
        attempt=run.attempt + 1,
        owner_pid=owner.pid,
        owner_host=owner.host,
        owner_started=owner.started,
        failed_node=None,
        error_type=None,
        error_message=None,
        traceback=None,
    )


def earlier_work_ms(run: RunRecord) -> float:
    """The work time of ``run``'s attempts so far, as a restart resumes it: each attempt
    counts up to when it ended (or was last heard of), so the idle time between attempts
    does not count as work."""
    last = run.finished_at or run.updated_at
    return run.earlier_ms + max(
        (last - (run.resumed_at or run.started_at)).total_seconds() * 1000.0, 0.0
    )
