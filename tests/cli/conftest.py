"""Run the real ``plait`` console script in a subprocess, in a temporary HOME."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from _cli import BACKEND, PLAIT, Result

PIPELINE = """
from datetime import date

from plait import Dag, DagPause


def load(day: date, n: int = 3) -> list[int]:
    return [day.day * i for i in range(n)]


def total(xs: list[int]) -> float:
    if sum(xs) > 1000:
        raise ValueError("too big")
    return float(sum(xs))


with Dag("pipe") as dag:
    dag.node(load) >> dag.node(total)


def halt(xs: list[int]) -> float:
    raise DagPause("waiting for approval")


with Dag("paused") as paused:
    paused.node(load) >> paused.node(halt)

not_a_dag = 42
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A working directory with an importable ``pipe`` module."""
    (tmp_path / "pipe.py").write_text(PIPELINE)
    return tmp_path


@pytest.fixture
def plait(project: Path) -> Callable[..., Result]:
    """``plait(*args)`` runs the console script in ``project`` with the suite's HOME."""
    if not PLAIT.exists():
        pytest.fail(f"console script {PLAIT} is missing: is plait installed in this venv?")

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        full_env = {**os.environ, "PLAIT_LOOP": BACKEND, "COLUMNS": "200", **(env or {})}
        full_env.pop("PLAIT_PROVENANCE", None)
        proc = subprocess.run(
            [str(PLAIT), *args],
            cwd=project,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Result(proc)

    return run
