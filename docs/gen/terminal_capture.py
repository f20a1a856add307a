"""A terminal capture of a real ``plait run``: what a person sees at the end of a run.

Runs ``plait run MODULE:DAG ...`` under a pseudo-terminal (so the live progress display is
on), feeds every byte it writes into a terminal emulator (pyte), and saves the final screen
as text and as SVG (drawn by rich, colours as the terminal showed them)::

    python docs/gen/terminal_capture.py     # rewrites docs/how-to/logging-run.{txt,svg}

``tests/docs/test_logging_capture.py`` runs it and checks the committed capture.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import pyte
from rich.console import Console
from rich.style import Style
from rich.text import Text

DOCS = Path(__file__).resolve().parents[1]
PIPELINE = DOCS / "how-to" / "weather_logs.py"
COLS, ROWS = 88, 40


def run_in_terminal(
    argv: list[str],
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    cols: int = COLS,
    rows: int = ROWS,
    timeout: float = 60,
) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal of ``cols`` x ``rows`` as its stdin, stdout and
    stderr, in ``env`` (default: this process's environment); return its exit code and
    every byte it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    full_env = {**(os.environ if env is None else env), "TERM": "xterm-256color"}
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "CI"):
        full_env.pop(name, None)
    proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, b"".join(chunks)


def screen_of(output: bytes, *, cols: int = COLS, rows: int = ROWS) -> pyte.Screen:
    """The screen of a terminal that received ``output``."""
    screen = pyte.Screen(cols, rows)
    pyte.ByteStream(screen).feed(output)
    return screen


def screen_lines(screen: pyte.Screen) -> list[str]:
    """The screen's lines, right-stripped, without the blank lines below the last one."""
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _colour(name: str) -> str | None:
    """A rich colour for a pyte one (pyte calls ANSI yellow "brown")."""
    if name == "default":
        return None
    if len(name) == 6 and all(c in "0123456789abcdef" for c in name.lower()):
        return f"#{name}"
    bright = name.startswith("bright")
    base = name.removeprefix("bright").replace("brown", "yellow")
    return f"bright_{base}" if bright else base


def screen_text(screen: pyte.Screen) -> Text:
    """The screen as rich text, with the colours and weights the terminal showed."""
    text = Text()
    for y in range(len(screen_lines(screen))):
        row = screen.buffer[y]
        line = "".join(row[x].data for x in range(screen.columns)).rstrip()
        for x, char in enumerate(line):
            cell = row[x]
            style = Style(color=_colour(cell.fg), bold=cell.bold or None)
            text.append(char, style=style)
        text.append("\n")
    return text


def capture(out_dir: Path, *, plait: str | None = None) -> list[str]:
    """Run the how-to's pipeline in a fresh directory and save ``logging-run.txt`` and
    ``logging-run.svg`` in ``out_dir``; return the screen's lines."""
    command = plait or shutil.which("plait") or str(Path(sys.executable).with_name("plait"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(PIPELINE, work / PIPELINE.name)
        argv = [command, "run", "weather_logs:dag", "-i", "region=north", "--store", "runs.db"]
        code, output = run_in_terminal(argv, work)
    screen = screen_of(output)
    lines = screen_lines(screen)
    if code != 0:
        raise RuntimeError(f"plait run exited {code}:\n" + "\n".join(lines))
    shown = ["$ " + " ".join(["plait", *argv[1:]]), *lines]
    (out_dir / "logging-run.txt").write_text("\n".join(shown) + "\n")
    console = Console(record=True, width=COLS, file=open(os.devnull, "w"), force_terminal=True)  # noqa: SIM115
    console.print(Text(shown[0], style="bold"))
    console.print(screen_text(screen), end="")
    (out_dir / "logging-run.svg").write_text(console.export_svg(title="plait run"))
    console.file.close()
    return shown


if __name__ == "__main__":
    for line in capture(DOCS / "how-to"):
        print(line)
