"""What every run of one runner shares, sub-runs included: passed by reference, never copied.

The plugin host, the provenance backend, the executors (built by name once, closed by
whoever built them), the concurrency limiter, fail-fast and the pause flag.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from plait.null import NullProvenance
from plait.plugins import PluginHost
from plait.protocols import Executor, ProvenanceBackend
from plait.records import BackendKind

if TYPE_CHECKING:
    from plait._engine.run import RunState
    from plait._plan import PlanNode

#: How the scheduler runs a composite node (map, call): set by the runner, which knows
#: the composite module (it sits above the scheduler).
CompositeRunner = Callable[["Environment", "RunState", "PlanNode", dict[str, Any]], Awaitable[Any]]


class Environment:
    """Shared by every run (and sub-run) of a :class:`~plait.runner.DagRunner`."""

    def __init__(
        self,
        *,
        host: PluginHost,
        provenance: ProvenanceBackend | str | None,
        provenance_options: dict[str, Any],
        executor: Executor | str,
        max_concurrency: int | None,
        fail_fast: bool,
        run_composite: CompositeRunner,
        log_level: int | None = None,
        log_limit: int = 1000,
    ) -> None:
        self.host = host
        self.provenance_spec = provenance
        self.provenance_options = provenance_options
        self.backend: ProvenanceBackend | None = None
        self.executor_spec = executor
        self.executors: dict[str, Executor] = {}
        self.owned_executors: list[Executor] = []
        self.max_concurrency = max_concurrency
        self.fail_fast = fail_fast
        self.run_composite = run_composite
        #: the nodes' log lines kept: this level and above, at most this many per attempt
        self.log_level = log_level
        self.log_limit = log_limit
        self.limiter: anyio.CapacityLimiter | None = None
        self.pause_requested = False
        self.active: list[RunState] = []
        #: whether ``async with`` holds the backends open across runs
        self.held = False

    @property
    def provenance(self) -> ProvenanceBackend:
        """The provenance backend (built from its name on first use)."""
        if self.backend is None:
            spec = self.provenance_spec
            if spec is None:
                self.backend = NullProvenance()
            elif isinstance(spec, str):
                self.backend = self.host.create(
                    BackendKind.PROVENANCE, spec, **self.provenance_options
                )
            else:
                self.backend = spec
        return self.backend

    def start_run(self) -> None:
        """A top-level run begins: a fresh limiter (limiters belong to one event loop)."""
        if self.max_concurrency is not None:
            self.limiter = anyio.CapacityLimiter(self.max_concurrency)

    def executor(self, name: str | None) -> Executor:
        """The executor a node asked for by name (or the runner's), built once.

        An executor instance given to the runner also serves nodes that name it
        (``DagRunner(dag, executor=DaskExecutor(address=...))`` with ``executor="dask"``).
        """
        spec = self.executor_spec
        key = name or (spec if isinstance(spec, str) else "")
        ex = self.executors.get(key)
        if ex is None:
            if not isinstance(spec, str) and (name is None or name == spec.name):
                ex = spec
            else:
                ex = self.host.create(BackendKind.EXECUTOR, key)
                self.owned_executors.append(ex)
            self.executors[key] = ex
        return ex

    def executor_label(self, name: str | None) -> str:
        """The name a record gives the executor of a node that asked for ``name``."""
        if name:
            return name
        spec = self.executor_spec
        return spec if isinstance(spec, str) else str(getattr(spec, "name", type(spec).__name__))

    async def close_executors(self) -> None:
        owned, self.owned_executors = self.owned_executors, []
        self.executors.clear()
        for ex in owned:
            await ex.aclose()

    def pause(self) -> None:
        """Stop starting new nodes in every run in flight (and in runs started later)."""
        self.pause_requested = True
        for state in self.active:
            state.paused = True
            state.stopping = True
