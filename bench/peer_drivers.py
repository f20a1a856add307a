"""Peers that run in their own virtualenvs (DBOS, Prefect 3), driven in subprocesses.

``nox -s bench`` creates one virtualenv per peer (``PEER_REQUIREMENTS`` in ``noxfile.py``,
cached under ``.nox/bench-peers/``) and passes ``--peer-python NAME=PATH`` to ``run.py``,
or ``--peer-error NAME=REASON`` when the install failed. For each :class:`Driver` whose
environment exists, :func:`run_driver` starts ``bench/peers/<script>`` with that Python,
sends it the cases it runs (see ``bench/peers/protocol.py``) and reads one JSON result per
line. Every (case, lib) the driver owes and did not deliver (no environment, an install
that failed, a crash, a timeout) comes back as a result carrying the reason in ``error``,
so a peer is never silently missing from the table and never stops plait's rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PEERS_DIR = Path(__file__).resolve().parent / "peers"


@dataclass(frozen=True)
class Driver:
    """One run of one driver script: the environment it needs, the cases it runs (``None``:
    every size of that case) and the libs it reports for each."""

    env: str
    script: str
    libs: tuple[str, ...]
    cases: Mapping[str, frozenset[int] | None]
    request: Mapping[str, Any] = field(default_factory=dict)
    #: at most this many timed repetitions (a slow peer's runs take seconds each)
    max_reps: int | None = None

    def wanted(self, cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for case in cases:
            sizes = self.cases.get(case["key"], frozenset())
            if sizes is None or case["size"] in sizes:
                out.append(dict(case))
        return out


DRIVERS = (
    Driver(
        "dbos",
        "dbos_cases.py",
        ("dbos",),
        {"chain_sqlite": None, "fanout": None, "durable_one": None},
        {"variant": "default"},
    ),
    Driver(
        "dbos",
        "dbos_cases.py",
        ("dbos wal+normal",),
        {"chain_sqlite": None, "fanout": None, "durable_one": None},
        {"variant": "wal"},
    ),
    Driver(
        "prefect",
        "prefect_cases.py",
        ("prefect (flow run)", "prefect (in flow)"),
        {"chain": frozenset({100}), "fanout": None, "cache_hit": None, "cache_miss": None},
        max_reps=3,  # a flow run takes seconds: 3 keep the whole bench near 10 minutes
    ),
)


def _missing(cases: Sequence[Mapping[str, Any]], libs: Sequence[str], reason: str) -> list[dict]:
    return [
        {**{k: case[k] for k in ("key", "title", "size", "unit")}, "lib": lib, "error": reason}
        for case in cases
        for lib in libs
    ]


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no output"


def run_driver(
    driver: Driver,
    cases: Sequence[Mapping[str, Any]],
    *,
    python: str | None,
    install_error: str | None,
    reps: int,
    cap: float,
    slow: float = 3.0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(results, environment) of one driver on the cases it runs among ``cases``.

    A result is a dict with the fields of ``run.Measurement`` (``key`` for the case key).
    The driver gets ``cap`` seconds per case plus a minute to start before it is killed.
    """
    wanted = driver.wanted(cases)
    if not wanted:
        return [], {}
    if install_error:
        return _missing(wanted, driver.libs, f"not installed: {install_error}"), {}
    if not python:
        reason = f"no virtualenv for {driver.env} (run through `nox -s bench`)"
        return _missing(wanted, driver.libs, reason), {}
    reps = min(reps, driver.max_reps or reps)
    request = {"cases": wanted, "reps": reps, "cap": cap, "slow": slow, **driver.request}
    timeout = cap * (len(wanted) + 1) + 60
    try:
        out, failure = _communicate([python, str(PEERS_DIR / driver.script)], request, timeout)
    except OSError as exc:  # the virtualenv's Python is gone, say
        return _missing(wanted, driver.libs, f"cannot start {python}: {exc.strerror}"), {}
    results, environment = [], {}
    for line in out.splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue  # a peer's own print on stdout
        if "environment" in item:
            environment = item["environment"]
        elif "failure" in item:  # the driver's own account beats its last stderr line
            failure = item["failure"]
        elif "lib" in item:
            item["key"] = item.pop("case")
            results.append(item)
    got = {(r["key"], r["size"], r["lib"]) for r in results}
    owed = [c for c in wanted if any((c["key"], c["size"], lib) not in got for lib in driver.libs)]
    results += [
        r
        for r in _missing(owed, driver.libs, failure or "the driver gave no result")
        if (r["key"], r["size"], r["lib"]) not in got
    ]
    return results, environment


def _communicate(
    argv: list[str], request: Mapping[str, Any], timeout: float
) -> tuple[str, str | None]:
    """Run a driver: (its stdout, why it failed or None). Killed after ``timeout`` seconds;
    what it printed until then is kept."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),
            start_new_session=True,  # its own process group: Prefect's API server is in it
        )
        try:
            out, _ = proc.communicate(json.dumps(request), timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return out, f"killed after {timeout:.0f} s"
        except BaseException:  # Ctrl-C: the group does not get the terminal's SIGINT
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        stderr.seek(0)
        if proc.returncode:
            return out, f"exit {proc.returncode}: {_last_line(stderr.read())}"
        return out, None


def parse_pairs(values: Sequence[str], option: str) -> dict[str, str]:
    """``NAME=VALUE`` command-line pairs as a dict (``option`` names the flag in errors)."""
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            sys.exit(f"{option} takes NAME=VALUE, got {value!r}")
        out[name] = rest
    return out
