"""What every command shares: the invocation state, exit codes, the console, one-line
errors, formatting of times and statuses, and the options several commands take."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import rich_click as click

from plait.errors import ConversionError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from plait.plugins import PluginHost
    from plait.records import RunRecord, RunStatus

# `plait --version` and `plait --help` load this module: the engine, the converter, anyio,
# rich and the plugin host are imported by the functions that use them.

if TYPE_CHECKING:
    from plait.config import Config

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PAUSED",
    "EXIT_USAGE",
    "STATUS_STYLE",
    "State",
    "echo_error",
    "echo_json",
    "exit_code",
    "first_line",
    "format_ms",
    "format_when",
    "json_option",
    "make_console",
    "output_json",
    "parse_since",
    "pass_state",
    "provenance_options",
    "recorded_provenance_options",
    "run_header",
    "run_ms",
    "status_text",
    "to_json",
]

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PAUSED = 3
EXIT_INTERRUPTED = 130

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "running": "yellow",
    "paused": "magenta",
    "cancelled": "bright_black",
    "skipped": "blue",
    "pending": "bright_black",
}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class State:
    """Per-invocation state, handed to every command as the click context object."""

    def __init__(self) -> None:
        self.debug = False
        self.loop = "asyncio"
        self._host: PluginHost | None = None
        self.cache_backend: str | None = None
        self.cache_path: Path | None = None
        #: ``--config FILE``, loaded on first use by :meth:`config`
        self.config_path: Path | None = None
        self._config: Config | None = None

    def config(self) -> Config | None:
        """The ``--config`` file, loaded once (its log level applied); ``None`` without one.
        An invalid file raises :class:`plait.errors.ConfigError` listing every problem."""
        if self.config_path is None:
            return None
        if self._config is None:
            from plait.config import load

            self._config = load(self.config_path, host=self.host)
            self._config.configure_logging()
        return self._config

    def close(self) -> None:
        """Release what the invocation opened (the configured cache)."""
        if self._config is not None:
            self._config.close()
            self._config = None

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            from plait.plugins import PluginHost

            self._host = PluginHost()
        return self._host

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        import anyio

        async def call() -> T:
            return await fn()

        return anyio.run(call, backend=self.loop)


pass_state = click.make_pass_decorator(State)


# ---------------------------------------------------------------------- output
def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def echo_error(message: str) -> None:
    """One line, ``error: ...``. Details are joined onto it; only a list of problems (as
    validation errors give, one ``- problem`` per line) stays below it, one per line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()] or [""]
    head = lines[0]
    bullets = [line for line in lines[1:] if line.startswith("- ")]
    details = [line for line in lines[1:] if not line.startswith("- ")]
    if details:
        head = f"{head.rstrip(':')}: {'; '.join(details)}"
    click.echo(f"error: {head}", err=True)
    for line in bullets:
        click.echo(f"  {line}", err=True)


def make_console() -> Console:
    """A rich console; without a terminal: no colour, ``$COLUMNS`` wide (else 160)."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        width = int(os.environ.get("COLUMNS", "0") or 0) or 160
        console = Console(highlight=False, width=width, no_color=True)
    return console


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def status_text(status: str) -> Text:
    from rich.text import Text

    return Text(str(status), style=STATUS_STYLE.get(str(status), ""))


def run_header(run_id: str, status: str, elapsed: float) -> Text:
    """``run <id> <status> in 1.23 s``."""
    from rich.text import Text

    return Text.assemble("run ", (run_id, "bold"), " ", status_text(status), f" in {elapsed:.2f} s")


def exit_code(status: RunStatus) -> int:
    from plait.records import RunStatus

    if status is RunStatus.COMPLETED:
        return EXIT_OK
    if status is RunStatus.PAUSED:
        return EXIT_PAUSED
    return EXIT_FAILED


def to_json(value: Any) -> Any:
    from plait.converter import get_converter

    return get_converter().unstructure(value)


def output_json(value: Any, label: str) -> Any:
    from plait.converter import to_json_safe

    try:
        return to_json_safe(value, where=f"output {label}")
    except ConversionError:
        return repr(value)


# ---------------------------------------------------------------------- times
def format_when(dt: datetime | None) -> str:
    if dt is None:
        return ""
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_ms(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s"


def run_ms(run: RunRecord) -> float | None:
    """The run's work time (a restarted run's idle time between attempts left out)."""
    return run.work_ms()


def parse_since(text: str | None) -> datetime | None:
    """``--since``: a date/time (local unless it has an offset) or a duration back from now."""
    if text is None:
        return None
    match = _RELATIVE.match(text)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a date/time (2024-05-01, 2024-05-01T12:00) nor a "
            "duration (30m, 12h, 7d, 2w)",
            param_hint="--since",
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # naive means local time
    return moment


# ---------------------------------------------------------------------- shared options
def provenance_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--provenance NAME`` (a backend name, never a path) and ``--store PATH`` (the file
    the backend keeps its runs in, handed to it as its ``path`` option), for a command that
    records runs (the file is created when missing)."""
    return _provenance_options(fn, existing=False)


def recorded_provenance_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`provenance_options` for a command that reads what was recorded: a ``--store``
    file that does not exist is a usage error (a mistyped path creates nothing)."""
    return _provenance_options(fn, existing=True)


def _provenance_options(fn: Callable[..., Any], *, existing: bool) -> Callable[..., Any]:
    fn = click.option(
        "--store",
        "store",
        type=click.Path(exists=existing, dir_okay=False, path_type=Path),
        default=None,
        help="The provenance backend's file (its 'path' option; default: the backend's "
        "own, for 'sqlite' the user's data directory).",
    )(fn)
    return click.option(
        "--provenance",
        "provenance",
        metavar="NAME",
        default=None,
        help="Provenance backend by name (default: $PLAIT_PROVENANCE, else 'sqlite').",
    )(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)
