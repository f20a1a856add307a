"""The terminal capture in the logging how-to comes from a real run, by code that runs here.

``docs/gen/terminal_capture.py`` runs ``plait run`` on the how-to's pipeline under a
pseudo-terminal and saves the screen a person sees; this test runs it and checks that the
committed capture is what it makes (up to run ids, times and durations).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parents[2]
GENERATOR = ROOT / "docs" / "gen" / "terminal_capture.py"
COMMITTED = ROOT / "docs" / "how-to" / "logging-run.txt"

pytestmark = pytest.mark.xdist_group("terminal")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("terminal_capture", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _shape(lines: list[str]) -> list[str]:
    """Lines with run ids, clock times, durations and spinner frames blanked out."""
    out = []
    for line in lines:
        line = re.sub(r"\b[0-9a-f]{32}\b", "<run>", line)
        line = re.sub(r"\d+:\d\d:\d\d", "<clock>", line)
        line = re.sub(r"\d+(\.\d+)? (s|ms)\b", "<time>", line)
        out.append(line.rstrip())
    return out


def test_the_committed_capture_is_what_a_real_run_shows(tmp_path: Path) -> None:
    lines = _generator().capture(tmp_path, plait=str(Path(sys.executable).with_name("plait")))
    text = "\n".join(lines)
    for message in (
        "INFO    weather: looking up the stations of north",
        "INFO    weather: fetched north-1",
        "INFO    weather: fetched north-3",
        "INFO    weather: averaging 3 readings",
        "mean temperature: 12.5",
    ):
        assert sum(message in line for line in lines) == 1, text
    bars = [line for line in lines[1:] if "run weather" in line]  # (line 0: the command)
    assert len(bars) == 1 and "completed" in bars[0] and "4/4" in bars[0], text
    assert (tmp_path / "logging-run.svg").read_text().startswith("<svg")
    committed = COMMITTED.read_text().splitlines()
    assert _shape(committed) == _shape(lines), (
        "docs/how-to/logging-run.txt is stale: run python docs/gen/terminal_capture.py"
    )
