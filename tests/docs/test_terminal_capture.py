"""The terminal pictures in the docs come from a real run, and the script still makes them.

docs/capture/run_capture.py runs `plait run` in a pseudo-terminal (the live display on)
and writes the screen mid-run and after the run as SVGs; the docs show the committed ones.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "docs" / "capture" / "run_capture.py"
IMAGES = ROOT / "docs" / "assets" / "images"

pytestmark = pytest.mark.slow


def svg_text(path: Path) -> str:
    """The characters an SVG written by rich shows, one line per text element."""
    elements = re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text())
    return "\n".join(html.unescape(e).replace("\xa0", " ") for e in elements)


def assert_mid_run(text: str) -> None:
    assert "$ plait run weather:dag" in text
    assert re.search(r"map per_station", text)
    assert re.search(r"^ ?[4-8]/12$", text, re.M), text  # the map's bar part way


def assert_finished(text: str) -> None:
    assert "12/12" in text and "completed" in text
    assert re.search(r"details: plait show [0-9a-f]{32}", text), text


def test_the_script_captures_a_real_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_mid_run(svg_text(tmp_path / "plait-run.svg"))
    assert_finished(svg_text(tmp_path / "plait-run-done.svg"))


def test_the_docs_show_the_committed_captures() -> None:
    assert_mid_run(svg_text(IMAGES / "plait-run.svg"))
    assert_finished(svg_text(IMAGES / "plait-run-done.svg"))
    page = (ROOT / "docs" / "how-to" / "cli.md").read_text()
    assert "assets/images/plait-run.svg" in page and "assets/images/plait-run-done.svg" in page
