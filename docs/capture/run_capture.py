"""Capture `plait run` as a terminal shows it, mid-run, as an SVG for the docs.

Runs the real `plait` command (the one installed beside this Python) on a small weather
pipeline, in a pseudo-terminal so the live progress display is on, feeds everything it
writes into a terminal emulator (pyte), and takes the screen at the moment the map node's
bar is part way, and again when plait has exited. rich writes each screen as an SVG:

    python docs/capture/run_capture.py [OUT_DIR]   # default: docs/assets/images/
    # -> OUT_DIR/plait-run.svg (mid-run), OUT_DIR/plait-run-done.svg (after it)

tests/docs/test_terminal_capture.py runs it, so the picture in the docs is one this script
still makes from a real run.
"""

from __future__ import annotations

import itertools
import os
import pty
import re
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyte
from pyte.screens import Char
from rich.console import Console
from rich.style import Style
from rich.text import Text

COLUMNS, LINES = 92, 16
OUT_DIR = Path(__file__).parents[1] / "assets" / "images"
NAMES = ("plait-run.svg", "plait-run-done.svg")
COMMAND = ["run", "weather:dag", "-i", "region=north", "--max-concurrency", "3"]
PIPELINE = """
import time

from plait import Dag


def stations(region: str) -> list[str]:
    return [f"{region}-{i}" for i in range(1, 13)]


def fetch(station: str) -> list[float]:
    time.sleep(0.4)  # a slow service
    return [10.0 + int(station.rsplit("-", 1)[1]) + d % 3 for d in range(7)]


def station_mean(readings: list[float]) -> float:
    return round(sum(readings) / len(readings), 2)


def count(names: list[str]) -> int:
    return len(names)


def report(means: list[float], count: int) -> str:
    return f"{count} stations, mean {sum(means) / len(means):.1f}"


with Dag("per_station") as per_station:
    per_station.node(fetch) >> per_station.node(station_mean)

with Dag("weather") as dag:
    listed = dag.node(stations)
    final = dag.node(report)
    listed >> dag.map(per_station, label="per_station", max_concurrency=3) >> final
    listed >> dag.node(count) >> final
"""
#: the screen is taken once the map's bar shows this many elements done (of 12)
PART_WAY = re.compile(r"per_station\b.*?\b([4-8])/12\b")


def color(name: str) -> str | None:
    if name == "default":
        return None
    if re.fullmatch(r"[0-9a-fA-F]{6}", name):
        return f"#{name}"
    name = name.replace("brown", "yellow")
    return f"bright_{name[6:]}" if name.startswith("bright") else name


def style(char: Char) -> Style:
    return Style(
        color=color(char.fg),
        bgcolor=color(char.bg),
        bold=char.bold,
        italic=char.italics,
        underline=char.underscore,
        reverse=char.reverse,
    )


def screen_text(rows: list[list[Char]]) -> Text:
    """A screen's characters, colours and weights included, as rich Text."""
    text = Text()
    for row in rows:
        # one span per run of equally styled characters
        for _, run in itertools.groupby(row, key=lambda c: (c.fg, c.bg, c.bold, c.reverse)):
            chars = list(run)
            text.append("".join(c.data for c in chars), style(chars[0]))
        text.append("\n")
    text.rstrip()
    return text


def run_in_terminal(workdir: Path) -> tuple[list[list[Char]], list[list[Char]]]:
    """Run plait in a pseudo-terminal: the screen part way through the map, and at the end."""
    plait = Path(sys.executable).with_name("plait")
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLUMNS": str(COLUMNS),
        "LINES": str(LINES),
        # the default provenance file lands in the temporary directory
        "HOME": str(workdir),
        "XDG_DATA_HOME": str(workdir / "data"),
        "XDG_CACHE_HOME": str(workdir / "cache"),
    }
    for name in ("NO_COLOR", "PLAIT_PROVENANCE", "PLAIT_CACHE", "PLAIT_EXECUTOR"):
        env.pop(name, None)
    leader, follower = pty.openpty()
    os.set_blocking(leader, False)
    proc = subprocess.Popen(
        [str(plait), *COMMAND],
        cwd=workdir,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    taken: list[list[Char]] | None = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed: plait exited
                    break
                stream.feed(chunk)
                if taken is None and PART_WAY.search("\n".join(screen.display)):
                    taken = snapshot(screen)
            elif proc.poll() is not None:
                break
    finally:
        proc.kill() if proc.poll() is None else None
        proc.wait()
        os.close(leader)
    if proc.returncode != 0:
        raise SystemExit(f"plait exited {proc.returncode}:\n" + "\n".join(screen.display))
    if taken is None:
        raise SystemExit("the run ended before its map was part way:\n" + "\n".join(screen.display))
    return taken, snapshot(screen)


def snapshot(screen: pyte.Screen) -> list[list[Char]]:
    """Every character of the screen now (the emulator goes on changing it)."""
    return [[screen.buffer[y][x] for x in range(screen.columns)] for y in range(screen.lines)]


def svg(rows: list[list[Char]]) -> str:
    with open(os.devnull, "w") as devnull:
        console = Console(
            record=True,
            width=COLUMNS,
            file=devnull,
            force_terminal=True,
            color_system="truecolor",
        )
        console.print(screen_text(rows), soft_wrap=True)
    return console.export_svg(title="$ plait " + " ".join(COMMAND))


def capture(out_dir: Path) -> list[Path]:
    """Write the two screens as SVGs into `out_dir`; their paths."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "weather.py").write_text(PIPELINE)
        screens = run_in_terminal(workdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in NAMES]
    for path, rows in zip(paths, screens, strict=True):
        path.write_text(svg(rows))
    return paths


if __name__ == "__main__":
    capture(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR)
