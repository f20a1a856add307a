"""The ``plait`` command line.

Every command talks to backends through the plugin host, by name: the core never imports a
plugin. Exit codes: ``0`` success (a run that completed), ``1`` a run that failed or was
cancelled (or an unexpected internal error), ``2`` a usage error or any other user error
(unknown run, bad input, invalid DAG, missing plugin), ``3`` a run that paused,
``130`` interrupted. Errors are printed as ``error: ...`` on stderr, without a traceback
unless ``--debug`` is given.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import click
from rich.console import Console
from rich.pretty import pretty_repr
from rich.table import Table
from rich.text import Text

from plait.converter import get_converter, structure, to_json_safe
from plait.dag import _STATUS_COLOURS, Dag, Plan
from plait.errors import ConversionError, InputError, NsrefError, PlaitError, RunNotFoundError
from plait.introspect import EMPTY
from plait.plugins import PluginHost
from plait.progress import RunProgress
from plait.protocols import ProvenanceBackend
from plait.records import BackendKind, EdgeRecord, NodeRecord, RunRecord, RunStatus
from plait.runner import DagRunner, DagRunResult

__all__ = ["cli", "load_dag", "main", "parse_inputs"]

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PAUSED = 3
EXIT_INTERRUPTED = 130

_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "running": "yellow",
    "paused": "magenta",
    "cancelled": "bright_black",
    "skipped": "blue",
    "pending": "bright_black",
}
_PATH_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class _State:
    """Per-invocation state, handed to every command as the click context object."""

    def __init__(self) -> None:
        self.debug = False
        self.loop = "asyncio"
        self._host: PluginHost | None = None
        self.cache_backend: str | None = None
        self.cache_path: Path | None = None

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            self._host = PluginHost()
        return self._host

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        async def call() -> T:
            return await fn()

        return anyio.run(call, backend=self.loop)


pass_state = click.make_pass_decorator(_State)


# ---------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script: run :data:`cli` and turn every error into one line."""
    state = _State()
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="plait",
            standalone_mode=False,
            obj=state,
        )
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "plait"
        _error(f"{exc.format_message()} (see '{where} --help')")
        code = EXIT_USAGE
    except click.ClickException as exc:
        _error(exc.format_message())
        code = exc.exit_code
    except click.Abort:
        _error("interrupted")
        code = EXIT_INTERRUPTED
    except PlaitError as exc:
        if state.debug:
            traceback.print_exc()
        _error(str(exc))
        code = EXIT_USAGE
    except Exception as exc:
        if state.debug:
            traceback.print_exc()
        _error(
            f"unexpected {type(exc).__name__}: {_first_line(str(exc))} "
            "(run with --debug for the traceback)"
        )
        code = EXIT_FAILED
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _error(message: str) -> None:
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


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        width = int(os.environ.get("COLUMNS", "0") or 0) or 160
        console = Console(highlight=False, width=width, no_color=True)
    return console


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def _status_text(status: str) -> Text:
    return Text(str(status), style=_STATUS_STYLE.get(str(status), ""))


def _exit_code(status: RunStatus) -> int:
    if status is RunStatus.COMPLETED:
        return EXIT_OK
    if status is RunStatus.PAUSED:
        return EXIT_PAUSED
    return EXIT_FAILED


# ---------------------------------------------------------------------- loading things
def load_dag(ref: str) -> Dag:
    """The Dag named by ``MODULE:ATTR`` (or ``path/to/file.py:ATTR``).

    ``ATTR`` may be a dotted path; it names a :class:`Dag` or a callable taking no argument
    that returns one. The current directory is importable, as with ``python -m``.
    """
    module_name, colon, attr = ref.partition(":")
    if not colon or not module_name or not attr:
        raise NsrefError(f"{ref!r} is not a DAG reference: write MODULE:DAG, e.g. pipeline:dag")
    module = _import(module_name, ref)
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise NsrefError(f"{ref!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(target, Dag) and callable(target):
        target = target()
    if not isinstance(target, Dag):
        raise NsrefError(
            f"{ref!r} is a {type(target).__name__}, not a Dag (or a function returning a Dag)"
        )
    return target


def _import(module_name: str, ref: str) -> Any:
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise NsrefError(f"{ref!r}: no such file {str(path)!r}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise NsrefError(f"{ref!r}: cannot import {str(path)!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        _exec_module(lambda: spec.loader.exec_module(module), ref)  # type: ignore[union-attr]
        return module
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    holder: list[Any] = []
    _exec_module(lambda: holder.append(importlib.import_module(module_name)), ref)
    return holder[0]


def _exec_module(load: Callable[[], None], ref: str) -> None:
    try:
        load()
    except PlaitError:
        raise
    except ModuleNotFoundError as exc:
        raise NsrefError(f"{ref!r}: cannot import {exc.name!r} ({exc})") from exc
    except Exception as exc:
        raise NsrefError(
            f"{ref!r}: importing the module raised {type(exc).__name__}: {_first_line(str(exc))}"
        ) from exc


def _looks_like_path(spec: str) -> bool:
    return (
        "/" in spec
        or os.sep in spec
        or spec.startswith("~")
        or spec.endswith(_PATH_SUFFIXES)
        or Path(spec).exists()
    )


def open_provenance(host: PluginHost, spec: str | None) -> ProvenanceBackend:
    """The provenance backend named ``spec``, or the ``sqlite`` backend on the file ``spec``.

    ``None`` means ``$PLAIT_PROVENANCE``, else ``sqlite`` (the user's default file).
    """
    spec = spec or os.environ.get("PLAIT_PROVENANCE") or "sqlite"
    if spec in host.backends(BackendKind.PROVENANCE) or not _looks_like_path(spec):
        backend: ProvenanceBackend = host.create(BackendKind.PROVENANCE, spec)
    else:
        backend = host.create(BackendKind.PROVENANCE, "sqlite", path=spec)
    return backend


async def _resolve_run(prov: ProvenanceBackend, run_id: str) -> RunRecord:
    """The run ``run_id``, or the only run whose id starts with it."""
    try:
        return await prov.get_run(run_id)
    except RunNotFoundError:
        if len(run_id) < 4:
            raise
        matches = [r for r in await prov.list_runs() if r.run_id.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(r.run_id for r in matches[:5])
            raise RunNotFoundError(
                f"run id prefix {run_id!r} is ambiguous: it matches {len(matches)} runs ({ids})"
            ) from None
        raise


# ---------------------------------------------------------------------- inputs
def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _coerce(raw: str, tp: Any, where: str) -> Any:
    if tp is str:
        return raw
    data = _json_or_text(raw)
    if tp is None or tp is EMPTY or tp is Any:
        return data
    try:
        return structure(data, tp, where=where)
    except ConversionError:
        if data is raw or not isinstance(raw, str):
            raise
        return structure(raw, tp, where=where)


def parse_inputs(plan: Plan, items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``LABEL.PARAM=VALUE`` strings as run inputs, structured to the parameter types.

    A value is parsed as JSON when it is valid JSON, else taken as a string; then the
    converter turns it into the parameter's annotated type (``2024-05-01`` becomes a
    ``date`` for a ``date`` parameter). ``PARAM=VALUE`` without a label feeds every source
    node that has a parameter of that name.
    """
    inputs: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise click.BadParameter(f"{item!r} is not LABEL.PARAM=VALUE", param_hint="--input")
        label, dot, param = key.rpartition(".")
        if dot:
            targets = [label]
        else:
            param = key
            targets = [
                plan.nodes[i].label
                for i in plan.sources
                if any(p.name == param for p in plan.nodes[i].input_params)
            ]
            if not targets:
                names = sorted({p.name for i in plan.sources for p in plan.nodes[i].input_params})
                raise InputError(
                    f"--input {item!r}: no source node takes a parameter {param!r} "
                    f"(source parameters: {', '.join(names) or 'none'})"
                )
        for target in targets:
            node = plan.by_label.get(target)
            tp = node.param_types.get(param) if node is not None else None
            value = _coerce(raw, tp, where=f"--input {target}.{param}")
            inputs.setdefault(target, {})[param] = value
    return inputs


# ---------------------------------------------------------------------- formatting
def _when(dt: datetime | None) -> str:
    if dt is None:
        return ""
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _ms(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s"


def _run_ms(run: RunRecord) -> float | None:
    end = run.finished_at or (datetime.now(UTC) if run.status is RunStatus.RUNNING else None)
    if end is None:
        return None
    return (end - run.started_at).total_seconds() * 1000


def _json(value: Any) -> Any:
    return get_converter().unstructure(value)


def _output_json(value: Any, label: str) -> Any:
    try:
        return to_json_safe(value, where=f"output {label}")
    except ConversionError:
        return repr(value)


def _since(text: str | None) -> datetime | None:
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
def _provenance_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--provenance",
        "provenance",
        metavar="NAME|PATH",
        default=None,
        help="Provenance backend by name, or an SQLite file for the 'sqlite' backend "
        "(default: $PLAIT_PROVENANCE, else 'sqlite' on the user's default file).",
    )(fn)


def _json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


def _run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--progress/--no-progress",
        default=None,
        help="Live progress display (default: when stdout is a terminal).",
    )(fn)
    fn = click.option(
        "--max-concurrency",
        type=click.IntRange(min=1),
        default=None,
        help="At most N nodes running at once.",
    )(fn)
    fn = click.option(
        "--executor",
        metavar="NAME",
        default=None,
        help="Executor for sync nodes (default: $PLAIT_EXECUTOR, else 'thread').",
    )(fn)
    return _json_option(_provenance_option(fn))


# ---------------------------------------------------------------------- the group
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="plait", prog_name="plait")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.option(
    "--loop",
    type=click.Choice(["asyncio", "trio"]),
    default="asyncio",
    envvar="PLAIT_LOOP",
    show_default=True,
    help="Event loop to run on ($PLAIT_LOOP).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, loop: str) -> None:
    """plait: compose plain callables into DAGs, run them, remember every run."""
    state = ctx.ensure_object(_State)
    state.debug = debug
    state.loop = loop


# ---------------------------------------------------------------------- running
async def _run_with_progress(
    runner: DagRunner,
    action: Callable[[DagRunner], Awaitable[DagRunResult]],
    *,
    total: int,
    done: int,
    show: bool | None,
    title: str,
) -> DagRunResult:
    with RunProgress(total=total, done=done, host=runner.host, enabled=show, title=title):
        return await action(runner)


def _finish_run(
    state: _State,
    result: DagRunResult,
    elapsed: float,
    *,
    as_json: bool,
    dag_ref: str,
    show_outputs: bool = True,
) -> int:
    code = _exit_code(result.status)
    if as_json:
        _echo_json(
            {
                "run_id": result.run_id,
                "status": str(result.status),
                "outputs": {k: _output_json(v, k) for k, v in result.outputs.items()},
                "failed_node": result.failed_node,
                "error": result.error,
                "error_type": result.error_type,
                "elapsed_s": round(elapsed, 3),
            }
        )
    else:
        console = _console()
        console.print(
            Text.assemble(
                "run ",
                (result.run_id, "bold"),
                " ",
                _status_text(result.status),
                f" in {elapsed:.2f} s",
            )
        )
        if show_outputs:
            for label, value in result.outputs.items():
                shown = pretty_repr(
                    value,
                    max_width=console.width - len(label) - 3,
                    max_length=10,
                    max_string=200,
                    max_depth=4,
                )
                console.print(Text.assemble((f"{label} = ", "bold"), shown))
        if result.status is RunStatus.PAUSED:
            console.print(f"resume it: plait restart {result.run_id} --dag {dag_ref}")
        console.print(f"details: plait show {result.run_id}")
    if result.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        where = f" at node {result.failed_node!r}" if result.failed_node else ""
        if state.debug and result.exception is not None:
            traceback.print_exception(result.exception, file=sys.stderr)
        _error(f"run {result.run_id} {result.status}{where}: {_first_line(result.error or '')}")
    return code


def _runner(
    state: _State,
    dag: Dag,
    provenance: str | None,
    executor: str | None,
    max_concurrency: int | None,
) -> DagRunner:
    return DagRunner(
        dag,
        provenance=open_provenance(state.host, provenance),
        executor=executor,
        max_concurrency=max_concurrency,
        host=state.host,
    )


@cli.command()
@click.argument("dag_ref", metavar="MODULE:DAG")
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="LABEL.PARAM=VALUE",
    help="A source input; repeat for more. VALUE is JSON when it parses, else a string.",
)
@click.option("--correlation-id", default=None, help="Free-form id stored with the run.")
@_run_options
@pass_state
def run(
    state: _State,
    dag_ref: str,
    inputs: tuple[str, ...],
    correlation_id: str | None,
    provenance: str | None,
    executor: str | None,
    max_concurrency: int | None,
    as_json: bool,
    progress: bool | None,
) -> None:
    """Run the DAG MODULE:DAG once and record it.

    \b
    plait run pipeline:dag --input fetch.day=2024-05-01 --input fetch.limit=10
    """
    dag = load_dag(dag_ref)
    plan = dag.plan()
    source_inputs = parse_inputs(plan, inputs)
    runner = _runner(state, dag, provenance, executor, max_concurrency)
    started = time.monotonic()
    result = state.run(
        lambda: _run_with_progress(
            runner,
            lambda r: r.run(source_inputs, correlation_id=correlation_id),
            total=len(plan.nodes),
            done=0,
            show=False if as_json else progress,
            title="run",
        )
    )
    code = _finish_run(state, result, time.monotonic() - started, as_json=as_json, dag_ref=dag_ref)
    click.get_current_context().exit(code)


async def _prefilled(
    prov: ProvenanceBackend, plan: Plan, run_id: str, rerun: set[int] | None
) -> tuple[str, int]:
    """The full run id and how many nodes a restart (or a replay) will not execute."""
    await prov.open()
    try:
        run = await _resolve_run(prov, run_id)
        records = await prov.get_node_executions(run.run_id)
    finally:
        await prov.aclose()
    done = 0
    for rec in records:
        node = plan.by_label.get(rec.label)
        if node is None or not (rec.status.has_output and rec.restorable):
            continue
        if rerun is None or node.index not in rerun:
            done += 1
    return run.run_id, done


@cli.command()
@click.argument("run_id")
@click.option("--dag", "dag_ref", required=True, metavar="MODULE:DAG", help="The run's DAG.")
@click.option("--force", is_flag=True, help="Take over a run that still looks alive.")
@_run_options
@pass_state
def restart(
    state: _State,
    run_id: str,
    dag_ref: str,
    force: bool,
    provenance: str | None,
    executor: str | None,
    max_concurrency: int | None,
    as_json: bool,
    progress: bool | None,
) -> None:
    """Resume a paused, failed or cancelled run in place (completed nodes are kept)."""
    dag = load_dag(dag_ref)
    plan = dag.plan()
    runner = _runner(state, dag, provenance, executor, max_concurrency)
    full_id, done = state.run(lambda: _prefilled(runner.provenance, plan, run_id, None))
    started = time.monotonic()
    result = state.run(
        lambda: _run_with_progress(
            runner,
            lambda r: r.restart(full_id, force=force),
            total=len(plan.nodes),
            done=done,
            show=False if as_json else progress,
            title="restart",
        )
    )
    code = _finish_run(state, result, time.monotonic() - started, as_json=as_json, dag_ref=dag_ref)
    click.get_current_context().exit(code)


@cli.command()
@click.argument("run_id")
@click.option(
    "--rerun",
    "rerun",
    multiple=True,
    required=True,
    metavar="LABEL",
    help="A node to execute again (with everything downstream of it); repeat for more.",
)
@click.option("--dag", "dag_ref", required=True, metavar="MODULE:DAG", help="The run's DAG.")
@_run_options
@pass_state
def replay(
    state: _State,
    run_id: str,
    rerun: tuple[str, ...],
    dag_ref: str,
    provenance: str | None,
    executor: str | None,
    max_concurrency: int | None,
    as_json: bool,
    progress: bool | None,
) -> None:
    """A new run that re-executes the --rerun nodes and their descendants, copying the rest."""
    dag = load_dag(dag_ref)
    plan = dag.plan()
    unknown = sorted(set(rerun) - set(plan.by_label))
    if unknown:
        raise click.BadParameter(
            f"DAG {dag.nsref!r} has no node {', '.join(map(repr, unknown))} "
            f"(nodes: {', '.join(plan.by_label)})",
            param_hint="--rerun",
        )
    runner = _runner(state, dag, provenance, executor, max_concurrency)
    full_id, done = state.run(
        lambda: _prefilled(runner.provenance, plan, run_id, plan.descendants(rerun))
    )
    started = time.monotonic()
    result = state.run(
        lambda: _run_with_progress(
            runner,
            lambda r: r.replay(full_id, rerun_nodes=set(rerun)),
            total=len(plan.nodes),
            done=done,
            show=False if as_json else progress,
            title="replay",
        )
    )
    code = _finish_run(state, result, time.monotonic() - started, as_json=as_json, dag_ref=dag_ref)
    click.get_current_context().exit(code)


# ---------------------------------------------------------------------- inspecting
async def _list_runs(
    prov: ProvenanceBackend,
    *,
    status: str | None,
    dag_nsref: str | None,
    since: datetime | None,
    limit: int,
    include_sub_runs: bool,
) -> list[RunRecord]:
    """Newest first; sub-runs of map and call nodes only with ``include_sub_runs``."""
    await prov.open()
    try:
        out: list[RunRecord] = []
        before: datetime | None = None
        page = max(limit * 4, 200) if limit else None
        while True:
            batch = await prov.list_runs(
                status=status,
                dag_nsref=dag_nsref,
                started_after=since,
                started_before=before,
                limit=page,
            )
            out.extend(r for r in batch if include_sub_runs or r.parent_run_id is None)
            if limit and len(out) >= limit:
                return out[:limit]
            if page is None or len(batch) < page:
                return out
            before = batch[-1].started_at
    finally:
        await prov.aclose()


@cli.command()
@click.option(
    "--status",
    type=click.Choice([s.value for s in RunStatus]),
    default=None,
    help="Only runs with this status.",
)
@click.option("--dag", "dag_nsref", default=None, metavar="NSREF", help="Only runs of this DAG.")
@click.option(
    "--since",
    default=None,
    metavar="WHEN",
    help="Only runs started since WHEN: a date/time (2024-05-01T12:00) or a duration "
    "back from now (30m, 12h, 7d, 2w).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="At most N runs (0: all).",
)
@click.option("--all", "include_sub_runs", is_flag=True, help="Include sub-runs of map nodes.")
@_provenance_option
@_json_option
@pass_state
def runs(
    state: _State,
    status: str | None,
    dag_nsref: str | None,
    since: str | None,
    limit: int,
    include_sub_runs: bool,
    provenance: str | None,
    as_json: bool,
) -> None:
    """List recorded runs, newest first."""
    prov = open_provenance(state.host, provenance)
    records = state.run(
        lambda: _list_runs(
            prov,
            status=status,
            dag_nsref=dag_nsref,
            since=_since(since),
            limit=limit,
            include_sub_runs=include_sub_runs,
        )
    )
    if as_json:
        _echo_json([_json(r) for r in records])
        return
    console = _console()
    if not records:
        console.print("no runs recorded yet (try: plait demo)")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("RUN ID", "DAG", "STATUS", "STARTED", "DURATION", "DETAIL"):
        table.add_column(column, no_wrap=column in ("RUN ID", "STARTED", "DURATION"))
    for r in records:
        detail = []
        if r.failed_node:
            detail.append(f"failed at {r.failed_node}")
        if r.replay_of:
            detail.append(f"replay of {r.replay_of[:12]}")
        if r.attempt > 1:
            detail.append(f"attempt {r.attempt}")
        if r.parent_run_id:
            detail.append(f"sub-run of {r.parent_run_id[:12]}")
        table.add_row(
            r.run_id,
            r.dag_nsref,
            _status_text(r.status),
            _when(r.started_at),
            _ms(_run_ms(r)),
            ", ".join(detail),
        )
    console.print(table)


async def _load_run(
    prov: ProvenanceBackend, run_id: str
) -> tuple[RunRecord, list[NodeRecord], list[EdgeRecord], list[RunRecord]]:
    await prov.open()
    try:
        run = await _resolve_run(prov, run_id)
        nodes = await prov.get_node_executions(run.run_id)
        get_edges = getattr(prov, "get_edge_traversals", None)
        edges: list[EdgeRecord] = list(await get_edges(run.run_id)) if get_edges else []
        subs = await prov.list_runs(parent_run_id=run.run_id)
    finally:
        await prov.aclose()
    return run, nodes, edges, subs


def _element_counts(run: RunRecord, subs: list[RunRecord]) -> dict[str, Counter[str]]:
    """Per map/call node label: how many of its sub-runs ended in each status."""
    prefix = f"{run.dag_nsref}/"
    counts: dict[str, Counter[str]] = {}
    for sub in subs:
        if sub.dag_nsref.startswith(prefix):
            label = sub.dag_nsref[len(prefix) :].split("[", 1)[0]
            counts.setdefault(label, Counter())[str(sub.status)] += 1
    return counts


def _records_mermaid(nodes: list[NodeRecord], edges: list[EdgeRecord]) -> str:
    """A Mermaid flowchart of a run from its records (nodes and traversed edges)."""
    ids = {n.label: f"n{i}" for i, n in enumerate(nodes)}
    lines = ["flowchart TD"]
    for n in nodes:
        text = n.label.replace('"', "#quot;")
        shape = f'[["{text}"]]' if n.node_type in ("map", "call") else f'["{text}"]'
        lines.append(f"    {ids[n.label]}{shape}")
    seen: set[tuple[str, str]] = set()
    for e in edges:
        pair = (e.upstream, e.downstream)
        if pair in seen or e.upstream not in ids or e.downstream not in ids:
            continue
        seen.add(pair)
        tag = f"|{e.parameter}|" if e.parameter else ""
        lines.append(f"    {ids[e.upstream]} -->{tag} {ids[e.downstream]}")
    for status, colour in _STATUS_COLOURS.items():
        lines.append(f"    classDef {status} fill:{colour}")
    for n in nodes:
        lines.append(f"    class {ids[n.label]} {n.status}")
    return "\n".join(lines) + "\n"


@cli.command()
@click.argument("run_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "mermaid"]),
    default="table",
    show_default=True,
    help="A node table, or a Mermaid flowchart coloured by node status.",
)
@click.option(
    "--dag",
    "dag_ref",
    default=None,
    metavar="MODULE:DAG",
    help="Draw the whole DAG (with --format mermaid), not only what the run reached.",
)
@_provenance_option
@_json_option
@pass_state
def show(
    state: _State,
    run_id: str,
    fmt: str,
    dag_ref: str | None,
    provenance: str | None,
    as_json: bool,
) -> None:
    """Show one run: its status and every node's status, executor, duration and error.

    RUN_ID may be a unique prefix of the id.
    """
    prov = open_provenance(state.host, provenance)
    run, nodes, edges, subs = state.run(lambda: _load_run(prov, run_id))
    counts = _element_counts(run, subs)
    if as_json:
        _echo_json(
            {
                "run": _json(run),
                "nodes": [_json(n) for n in nodes],
                "sub_runs": {label: dict(c) for label, c in counts.items()},
            }
        )
        return
    if fmt == "mermaid":
        statuses = {n.label: str(n.status) for n in nodes}
        if dag_ref is not None:
            click.echo(load_dag(dag_ref).to_mermaid(statuses=statuses), nl=False)
        else:
            click.echo(_records_mermaid(nodes, edges), nl=False)
        return
    console = _console()
    head = Text.assemble(("run ", "bold"), (run.run_id, "bold"), "  ", _status_text(run.status))
    console.print(head)
    facts = [
        ("dag", run.dag_nsref),
        ("started", _when(run.started_at)),
        ("finished", _when(run.finished_at)),
        ("duration", _ms(_run_ms(run))),
        ("attempt", str(run.attempt)),
        ("owner", f"{run.owner_host} pid {run.owner_pid}" if run.owner_host else ""),
        ("replay of", run.replay_of or ""),
        ("sub-run of", run.parent_run_id or ""),
        ("correlation id", run.correlation_id or ""),
        ("inputs", json.dumps(run.source_inputs) if run.source_inputs else ""),
    ]
    for name, value in facts:
        if value:
            console.print(Text.assemble((f"  {name:<15}", "bright_black"), value))
    if run.error_type:
        msg = _first_line(run.error_message or "")
        where = f" at node {run.failed_node!r}" if run.failed_node else ""
        console.print(Text(f"  error{where}: {run.error_type}: {msg}", style="red"))
    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    columns = ["NODE", "TYPE", "STATUS", "ATTEMPT", "EXECUTOR", "DURATION"]
    if counts:
        columns.append("ELEMENTS")
    columns.append("ERROR")
    for column in columns:
        table.add_column(column, no_wrap=column != "ERROR")
    for n in nodes:
        row: list[str | Text] = [
            n.label,
            n.node_type,
            _status_text(n.status),
            str(n.attempt),
            n.executor or "",
            _ms(n.duration_ms),
        ]
        if counts:
            c = counts.get(n.label)
            row.append(
                ""
                if not c
                else f"{c.get('completed', 0)}/{sum(c.values())} completed"
                + "".join(f", {v} {k}" for k, v in sorted(c.items()) if k != "completed")
            )
        error = ""
        if n.error_type:
            error = f"{n.error_type.rsplit('.', 1)[-1]}: {_first_line(n.error_message or '')}"
        row.append(Text(error, style="red") if error else "")
        table.add_row(*row)
    console.print()
    console.print(table)


@cli.command()
@click.argument("dag_ref", metavar="MODULE:DAG")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
)
def graph(dag_ref: str, fmt: str) -> None:
    """Print the DAG MODULE:DAG as a Mermaid flowchart or a Graphviz digraph."""
    dag = load_dag(dag_ref)
    dag.validate()
    click.echo(dag.to_mermaid() if fmt == "mermaid" else dag.to_dot(), nl=False)


# ---------------------------------------------------------------------- plugins
@cli.command()
@_json_option
@pass_state
def plugins(state: _State, as_json: bool) -> None:
    """List every plugin: its distribution, version, what it provides, or why it failed."""
    host = state.host
    infos = host.plugins()
    pm = host.manager
    rows: list[dict[str, Any]] = []
    for info in infos:
        version = info.version
        if version is None and info.distribution:
            try:
                version = importlib.metadata.version(info.distribution)
            except importlib.metadata.PackageNotFoundError:
                version = None
        plugin = pm.get_plugin(info.name)
        hooks = sorted(
            caller.name
            for caller in (pm.get_hookcallers(plugin) or [] if plugin is not None else [])
            if not caller.name.startswith("plait_register_")
        )
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": version,
                "provides": list(info.provides),
                "hooks": hooks,
                "ok": info.error is None,
                "error": info.error,
            }
        )
    if as_json:
        _echo_json(rows)
        return
    console = _console()
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("PLUGIN", "DISTRIBUTION", "VERSION", "PROVIDES", "STATUS"):
        table.add_column(column, no_wrap=column != "PROVIDES")
    for row in rows:
        provides = ", ".join([*row["provides"], *row["hooks"]])
        status = Text("ok", style="green") if row["ok"] else Text("failed", style="red")
        table.add_row(
            row["name"], row["distribution"] or "", row["version"] or "", provides, status
        )
    console.print(table)
    for row in rows:
        if row["error"]:
            console.print()
            console.print(
                Text(f"plugin {row['name']!r} ({row['distribution']}) failed to load:", "red")
            )
            console.print(Text(row["error"].rstrip()))


# ---------------------------------------------------------------------- cache
@cli.group()
@click.option(
    "--backend",
    default=None,
    metavar="NAME",
    help="Cache backend (default: $PLAIT_CACHE, else 'sqlite').",
)
@click.option(
    "--path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Cache file of the backend (default: the user's cache file).",
)
@pass_state
def cache(state: _State, backend: str | None, path: Path | None) -> None:
    """Inspect and clean the cache of @cached callables."""
    state.cache_backend = backend
    state.cache_path = path


def _cache_call(state: _State, op: Callable[..., T], *args: Any) -> T:
    from plait import cache as cache_mod

    try:
        return op(*args, backend=state.cache_backend, db_path=state.cache_path, host=state.host)
    finally:
        cache_mod.close_backends()


@cache.command("stats")
@_json_option
@pass_state
def cache_stats(state: _State, as_json: bool) -> None:
    """Hits, misses, refreshes and entries of every cached callable."""
    from plait import cache as cache_mod

    stats = _cache_call(state, cache_mod.stats)
    if as_json:
        _echo_json([_json(s) for s in stats.values()])
        return
    console = _console()
    if not stats:
        console.print("the cache is empty")
        return
    table = Table(box=None, header_style="bold", pad_edge=False, show_footer=True)
    totals = [sum(getattr(s, f) for s in stats.values()) for f in ("hits", "misses", "refreshes")]
    entries = sum(s.entries for s in stats.values())
    table.add_column("CALLABLE", footer="total")
    for name, total in zip(("HITS", "MISSES", "REFRESHES"), totals, strict=True):
        table.add_column(name, justify="right", footer=str(total))
    table.add_column("ENTRIES", justify="right", footer=str(entries))
    for cid in sorted(stats):
        s = stats[cid]
        table.add_row(cid, str(s.hits), str(s.misses), str(s.refreshes), str(s.entries))
    console.print(table)


@cache.command("clear")
@click.argument("callable_id", required=False, metavar="[MODULE:CALLABLE]")
@_json_option
@pass_state
def cache_clear(state: _State, callable_id: str | None, as_json: bool) -> None:
    """Drop the entries and counters of one cached callable, or of all of them."""
    from plait import cache as cache_mod

    dropped = _cache_call(state, cache_mod.clear, callable_id)
    if as_json:
        _echo_json({"cleared": dropped, "callable_id": callable_id})
    else:
        what = callable_id or "every callable"
        click.echo(f"cleared {dropped} entries of {what}")


@cache.command("prune")
@_json_option
@pass_state
def cache_prune(state: _State, as_json: bool) -> None:
    """Drop the entries older than their callable's max_ttl."""
    from plait import cache as cache_mod

    dropped = _cache_call(state, cache_mod.prune)
    if as_json:
        _echo_json({"pruned": dropped})
    else:
        click.echo(f"pruned {dropped} expired entries")


# ---------------------------------------------------------------------- demo
@cli.command()
@click.option("--orders", type=click.IntRange(1, 5000), default=40, show_default=True)
@click.option(
    "--day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The day of orders to process (default: 2024-05-01).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Live progress display (default: when stdout is a terminal).",
)
@_provenance_option
@_json_option
@pass_state
def demo(
    state: _State,
    orders: int,
    day: datetime | None,
    progress: bool | None,
    provenance: str | None,
    as_json: bool,
) -> None:
    """Run the built-in demo pipeline (no network; a few seconds).

    It scores a day of generated orders: fetch -> normalise -> a cached enrichment -> a
    map over the orders -> a report, recorded in the default provenance file and cached in
    the default cache file. Run it twice: the second run is served from the cache.
    """
    from plait import demo as demo_mod

    the_day: date = day.date() if day is not None else demo_mod.DEFAULT_DAY
    dag = demo_mod.build_pipeline()
    runner = DagRunner(dag, provenance=open_provenance(state.host, provenance), host=state.host)
    console = _console()
    where = getattr(runner.provenance, "path", None)
    if not as_json:
        console.print(
            Text.assemble(
                ("plait demo", "bold"),
                f": scoring {orders} orders of {the_day.isoformat()}",
                f" (provenance: {where})" if where else "",
            )
        )
    before = demo_mod.cache_counters()
    started = time.monotonic()
    result = state.run(
        lambda: _run_with_progress(
            runner,
            lambda r: r.run(demo_mod.demo_inputs(the_day, orders), correlation_id="plait-demo"),
            total=len(dag),
            done=0,
            show=False if as_json else progress,
            title="demo",
        )
    )
    elapsed = time.monotonic() - started
    after = demo_mod.cache_counters()
    delta = {
        field: sum(getattr(after[k], field) - getattr(before[k], field) for k in after)
        for field in ("hits", "misses", "refreshes")
    }
    report = result.outputs.get("report")
    if as_json:
        _echo_json(
            {
                "run_id": result.run_id,
                "status": str(result.status),
                "elapsed_s": round(elapsed, 3),
                "cache": delta,
                "report": _output_json(report, "report") if report is not None else None,
                "error": result.error,
            }
        )
    else:
        _print_demo(console, result, elapsed, delta, report)
    if result.status is not RunStatus.COMPLETED:
        _error(
            f"run {result.run_id} {result.status} at node {result.failed_node!r}: "
            f"{_first_line(result.error or '')}"
        )
    click.get_current_context().exit(_exit_code(result.status))


def _print_demo(
    console: Console,
    result: DagRunResult,
    elapsed: float,
    delta: dict[str, int],
    report: Any,
) -> None:
    console.print(
        Text.assemble(
            "run ",
            (result.run_id, "bold"),
            " ",
            _status_text(result.status),
            f" in {elapsed:.2f} s",
        )
    )
    if report is not None:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        rev = report.revenue
        table.add_row("orders scored", str(report.orders))
        table.add_row("accepted", str(report.accepted))
        review = ", ".join(report.to_review[:5])
        if len(report.to_review) > 5:
            review += f" and {len(report.to_review) - 5} more"
        table.add_row("to review", f"{len(report.to_review)}: {review}")
        table.add_row("revenue", f"{rev.total_eur:,.2f} EUR")
        table.add_row(
            "by segment",
            ", ".join(f"{k} {v:,.2f}" for k, v in sorted(rev.by_segment.items())),
        )
        table.add_row(
            "top customers", ", ".join(f"{name} ({eur:,.2f})" for name, eur in report.top_customers)
        )
        console.print()
        console.print(table)
    hits, misses, refreshes = delta["hits"], delta["misses"], delta["refreshes"]
    console.print()
    line = f"cache: {hits} hits, {misses} misses, {refreshes} refreshes"
    if hits and not misses:
        console.print(f"{line}: the enrichment was served from the cache")
    else:
        console.print(f"{line}: run `plait demo` again to see cache hits")
    rid = result.run_id
    console.print()
    console.print(Text("inspect it:", style="bold"))
    for command in (
        "plait runs",
        f"plait show {rid}",
        f"plait show {rid} --format mermaid --dag plait.demo:build_pipeline",
        f"plait replay {rid} --rerun enrich --dag plait.demo:build_pipeline",
        "plait graph plait.demo:build_pipeline",
        "plait cache stats",
    ):
        console.print(f"  {command}", soft_wrap=True)
