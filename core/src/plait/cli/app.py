"""The ``plait`` group, its commands, and :func:`main`, the console script that turns every
error into one line and every outcome into an exit code."""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import rich_click as click

from plait.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    State,
    echo_error,
    first_line,
)
from plait.errors import PlaitError

__all__ = ["COMMANDS", "CoreCommand", "PlaitGroup", "cli", "main"]

# The core's commands: name -> (module, attribute, the short help `plait --help` shows).
# A command's module (and the engine behind it) is imported only when that command runs,
# so `plait --version` and `plait --help` stay fast. tests/cli checks the help against
# each command's docstring.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "cache": ("plait.cli.cache", "cache", "Inspect and clean the cache of @cached callables."),
    "config": ("plait.cli.config", "config", "Check configuration files."),
    "demo": (
        "plait.cli.demo",
        "demo",
        "Run the built-in demo pipeline (no network; a few seconds).",
    ),
    "engine": (
        "plait.cli.triggers",
        "engine",
        "Run the triggers in the foreground until SIGTERM or Ctrl-C.",
    ),
    "fire": (
        "plait.cli.triggers",
        "fire",
        "Fire trigger NAME: the running engine starts its run within a second.",
    ),
    "graph": (
        "plait.cli.graph",
        "graph",
        "Print the DAG MODULE:DAG (or NSREF of the --config file) as a Mermaid flowchart or "
        "a Graphviz digraph.",
    ),
    "lineage": (
        "plait.cli.lineage",
        "lineage",
        "The upstream executions whose outputs fed node LABEL in run RUN_ID, transitively, "
        "nearest first (the attempts that actually fed it, after restarts).",
    ),
    "logs": (
        "plait.cli.logs",
        "logs",
        "Print the log lines of run RUN_ID's nodes (INFO and above by default), oldest first.",
    ),
    "plugins": (
        "plait.cli.plugins",
        "plugins",
        "List every plugin: its distribution, version, what it provides, or why it failed.",
    ),
    "replay": (
        "plait.cli.running",
        "replay",
        "A new run that re-executes the --rerun nodes and their descendants, copying the rest.",
    ),
    "restart": (
        "plait.cli.running",
        "restart",
        "Resume a paused, failed or cancelled run in place (completed nodes are kept).",
    ),
    "run": (
        "plait.cli.running",
        "run",
        "Run the DAG MODULE:DAG (or NSREF, a DAG of the --config file) once and record it.",
    ),
    "runs": ("plait.cli.runs", "runs", "List recorded runs, newest first."),
    "show": (
        "plait.cli.runs",
        "show",
        "Show one run: its status, every node's status, executor, duration and error, the "
        "outputs of its last nodes, and for a failed node its traceback and last log lines.",
    ),
    "triggers": (
        "plait.cli.triggers",
        "triggers",
        "List the triggers of the store with their next fire times.",
    ),
}


class PlaitGroup(click.Group):
    """The ``plait`` group: the core's commands, then those plugins add.

    Plugins add theirs through the ``plait_add_commands`` hook the first time the group
    looks up a name it does not have or lists its commands (``--help``), so ``plait run``
    never waits on, or breaks with, a plugin's commands.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugins_added = False

    def add_plugin_commands(self, ctx: click.Context) -> None:
        if self.plugins_added:
            return
        self.plugins_added = True
        state = ctx.find_object(State)
        (state.host if state is not None else State().host).add_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = self.load_command(cmd_name)
        if found is None and not self.plugins_added:
            self.add_plugin_commands(ctx)
            found = super().get_command(ctx, cmd_name)
        return found

    def load_command(self, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``; a core command's module is imported the first time."""
        found = self.commands.get(cmd_name)
        if isinstance(found, CoreCommand):
            found = getattr(importlib.import_module(found.module), found.attribute)
            self.commands[cmd_name] = found
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.add_plugin_commands(ctx)
        return sorted(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands section of ``--help``, without importing the core's commands."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)
        rows = [
            (name, command.get_short_help_str(limit))
            for name, command in ((name, self.commands[name]) for name in names)
            if not command.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class CoreCommand(click.Command):
    """Stands in for a core command until it runs: holds its name, module and short help,
    so ``--help`` lists it and plugins cannot take its name."""

    def __init__(self, name: str, module: str, attribute: str, short_help: str) -> None:
        super().__init__(name, short_help=short_help)
        self.module = module
        self.attribute = attribute


@click.group(
    cls=PlaitGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
)
@click.version_option(package_name="plait", prog_name="plait")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="PLAIT_CONFIG",
    help="A configuration file ($PLAIT_CONFIG): its namespace's DAGs can be run by nsref, "
    "its [storage] is the default provenance store and cache.",
)
@click.option(
    "--loop",
    type=click.Choice(["asyncio", "trio"]),
    default="asyncio",
    envvar="PLAIT_LOOP",
    show_default=True,
    help="Event loop to run on ($PLAIT_LOOP).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, config_path: Path | None, loop: str) -> None:
    """plait: compose plain callables into DAGs, run them, remember every run."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(EXIT_OK)
    if loop == "trio":
        try:
            importlib.import_module("trio")
        except ImportError:
            raise click.BadParameter(
                "the trio event loop needs trio, which is not installed (pip install trio)",
                param_hint="--loop",
            ) from None
    state = ctx.ensure_object(State)
    state.debug = debug
    state.loop = loop
    state.config_path = config_path


for _name, (_module, _attribute, _help) in COMMANDS.items():
    cli.add_command(CoreCommand(_name, _module, _attribute, _help))


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script: run :data:`cli` and turn every error into one line.

    Exit codes: ``0`` success (a run that completed; ``plait`` alone prints its help),
    ``1`` a run that failed or was cancelled (or an unexpected internal error), ``2`` a
    usage error or any other user error, ``3`` a run that paused, ``130`` interrupted.
    """
    state = State()
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="plait",
            standalone_mode=False,
            obj=state,
        )
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "plait"
        echo_error(f"{exc.format_message()} (see '{where} --help')")
        code = EXIT_USAGE
    except click.ClickException as exc:
        echo_error(exc.format_message())
        code = exc.exit_code
    except click.Abort:
        echo_error("interrupted")
        code = EXIT_INTERRUPTED
    except PlaitError as exc:
        if state.debug:
            traceback.print_exc()
        echo_error(str(exc))
        code = EXIT_USAGE
    except Exception as exc:
        if state.debug:
            traceback.print_exc()
        echo_error(
            f"unexpected {type(exc).__name__}: {first_line(str(exc))} "
            "(run with --debug for the traceback)"
        )
        code = EXIT_FAILED
    finally:
        state.close()
    sys.exit(code if isinstance(code, int) else EXIT_OK)
