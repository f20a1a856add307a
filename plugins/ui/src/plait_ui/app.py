"""The web app: a Starlette application over one provenance backend.

Read-only unless :attr:`UiConfig.allow_actions`. Every page is rendered on the server by
Jinja2 with autoescape on, under a Content-Security-Policy that allows only the app's own
script and stylesheet (no inline script runs, whatever a stored value contains).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import anyio
import attrs
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from plait.engine import engine_alive
from plait.errors import PlaitError, RunNotFoundError, TriggerError, TriggerNotFoundError
from plait.plugins import PluginHost
from plait.protocols import ProvenanceBackend
from plait.records import CacheStats, RunStatus, utcnow
from plait.triggers import TriggerStore
from plait_ui.actions import ActionRefusedError, Actions
from plait_ui.layout import lay_out
from plait_ui.queries import (
    BadQueryError,
    PageNotFoundError,
    RunFilter,
    RunView,
    load_node,
    load_run,
    parse_when,
    runs_page,
)
from plait_ui.render import environment
from plait_ui.svg import dag_svg, timeline_svg
from plait_ui.timeline import timeline
from plait_ui.triggers import load_fire, load_trigger, triggers_page

__all__ = ["LOCAL_HOSTS", "UiConfig", "create_app"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@attrs.frozen(kw_only=True)
class UiConfig:
    """What ``plait ui`` serves.

    ``cache_stats`` returns the counters of the cache store (``None``: no cache page data).
    ``poll_ms`` is how often a running run's page asks whether it changed.
    ``allowed_hosts`` are the ``Host`` headers accepted (guards against DNS rebinding);
    ``("*",)`` accepts any, for a server the user deliberately bound to a public address.
    ``triggers`` is the trigger store of the triggers page (``None``: the provenance backend
    keeps no triggers, and the page says so); ``host`` the plugin host whose trigger kinds
    compute next fire times (default: plait's default host).
    """

    provenance: ProvenanceBackend = attrs.field(eq=False)
    allow_actions: bool = False
    actions: Actions | None = attrs.field(default=None, eq=False)
    cache_stats: Callable[[], Mapping[str, CacheStats]] | None = attrs.field(default=None, eq=False)
    page_size: int = 50
    poll_ms: int = 1000
    allowed_hosts: Sequence[str] = LOCAL_HOSTS
    store_name: str = ""
    triggers: TriggerStore | None = attrs.field(default=None, eq=False)
    host: PluginHost | None = attrs.field(default=None, eq=False)


class _Pages:
    """The route handlers, sharing the config and the template environment."""

    def __init__(self, config: UiConfig) -> None:
        self.config = config
        self.prov = config.provenance
        self.env = environment()
        self.actions = config.actions if config.allow_actions else None

    # ------------------------------------------------------------------ plumbing
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            if self.actions is not None:
                async with self.actions.running():
                    yield
            else:
                yield
        finally:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(PlaitError):
                    await self.prov.aclose()
                if self.config.triggers is not None:
                    with contextlib.suppress(PlaitError):
                        await self.config.triggers.aclose()

    def html(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("store_name", self.config.store_name)
        context.setdefault("poll_ms", self.config.poll_ms)
        context.setdefault("actions", self.actions)
        body = self.env.get_template(template).render(**context)
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    async def plait_error(self, request: Request, exc: Exception) -> Response:
        status = 500
        if isinstance(exc, RunNotFoundError | PageNotFoundError | TriggerNotFoundError):
            status = 404
        elif isinstance(exc, BadQueryError):
            status = 400
        elif isinstance(exc, ActionRefusedError):
            status = 403
        elif isinstance(exc, TriggerError):
            status = 409  # an inactive trigger: the store's state refuses the fire
        return self.html("error.html", status=status, error=str(exc), error_type=type(exc).__name__)

    async def opened(self) -> ProvenanceBackend:
        await self.prov.open()
        return self.prov

    async def opened_triggers(self) -> TriggerStore:
        store = self.config.triggers
        if store is None:
            raise PageNotFoundError(f"{NO_TRIGGER_STORE} ({self.config.store_name})")
        await store.open()
        return store

    def actions_off(self) -> Response:
        return self.html(
            "error.html",
            status=403,
            error="actions are off: start the server with `plait ui --allow-actions`",
            error_type="Forbidden",
        )

    # ------------------------------------------------------------------ pages
    def _filter(self, request: Request) -> RunFilter:
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in RunStatus.__members__.values():
            choices = ", ".join(s.value for s in RunStatus)
            raise BadQueryError(f"status={status!r} is not a run status ({choices})")
        after, before = params.get("after"), params.get("before")
        return RunFilter(
            status=RunStatus(status) if status else None,
            dag=params.get("dag") or None,
            after=parse_when(after, "after") if after else None,
            before=parse_when(before, "before") if before else None,
            sub_runs=params.get("sub_runs") == "1",
        )

    async def runs(self, request: Request) -> Response:
        filt = self._filter(request)
        prov = await self.opened()
        page = await runs_page(
            prov, filt, request.query_params.get("cursor") or None, self.config.page_size
        )

        cursor = request.query_params.get("cursor") or None
        query = {k: v for k, v in request.query_params.items() if k != "cursor" and v}
        return self.html(
            "runs.html",
            page=page,
            filt=filt,
            query=query,
            cursor=cursor,
            statuses=list(RunStatus),
        )

    def _run_context(self, view: RunView) -> dict[str, Any]:
        nodes = {n.label: n for n in view.nodes}
        picture = lay_out(list(nodes), ((e.upstream, e.downstream) for e in view.edges))
        counts = view.element_counts()
        bars = timeline(view.nodes, utcnow())
        run_id = view.run.run_id
        return {
            "view": view,
            "run": view.run,
            "nodes": nodes,
            "edge_count": len(picture.wires),
            "counts": counts,
            "dag_svg": dag_svg(picture, nodes, counts, name=f"DAG of run {run_id}"),
            "timeline": bars,
            "timeline_svg": timeline_svg(bars, name=f"timeline of run {run_id}"),
            "signature": _signature(view),
        }

    async def run(self, request: Request) -> Response:
        view = await load_run(await self.opened(), request.path_params["run_id"])
        parent = None
        if view.run.parent_run_id:
            with contextlib.suppress(RunNotFoundError):
                parent = await self.prov.get_run(view.run.parent_run_id)
        return self.html("run.html", parent=parent, **self._run_context(view))

    async def run_body(self, request: Request) -> Response:
        view = await load_run(await self.opened(), request.path_params["run_id"])
        return self.html("run_body.html", **self._run_context(view))

    async def run_live(self, request: Request) -> Response:
        view = await load_run(await self.opened(), request.path_params["run_id"])
        return JSONResponse(
            {
                "signature": _signature(view),
                "status": str(view.run.status),
                "final": view.run.status.is_final,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def node(self, request: Request) -> Response:
        params = request.path_params
        view = await load_node(await self.opened(), params["run_id"], params["label"])
        nodes = {rec.label: rec for rec in (*(view.lineage or ()), view.node)}
        picture = lay_out(list(nodes)[::-1], view.lineage_edges)
        label = view.node.label
        return self.html(
            "node.html",
            view=view,
            run=view.run,
            node=view.node,
            lineage_svg=dag_svg(picture, nodes, {}, name=f"lineage of {label}", current=label),
        )

    async def cache(self, request: Request) -> Response:
        error = None
        stats: list[CacheStats] = []
        if self.config.cache_stats is not None:
            try:
                found = await anyio.to_thread.run_sync(self.config.cache_stats)
            except PlaitError as exc:
                error = str(exc)
            else:
                stats = sorted(found.values(), key=lambda s: s.callable_id)
        return self.html(
            "cache.html", stats=stats, error=error, has_cache=self.config.cache_stats is not None
        )

    async def action(self, request: Request) -> Response:
        if self.actions is None:
            return self.actions_off()
        return await self.actions.handle(request, self)

    # ------------------------------------------------------------------ triggers
    async def triggers(self, request: Request) -> Response:
        if self.config.triggers is None:
            return self.html("triggers.html", page=None, no_store=NO_TRIGGER_STORE)
        store = await self.opened_triggers()
        now = utcnow()
        after = request.query_params.get("after") or None
        page = await triggers_page(store, self.config.host, now, after, self.config.page_size)
        running = any(engine_alive(e, now) for e in await store.list_engines())
        return self.html("triggers.html", page=page, after=after, engine_running=running)

    async def trigger(self, request: Request) -> Response:
        store = await self.opened_triggers()
        now = utcnow()
        view = await load_trigger(store, self.config.host, request.path_params["name"], now)
        running = any(engine_alive(e, now) for e in await store.list_engines())
        return self.html("trigger.html", view=view, row=view.row, engine_running=running)

    async def fire_page(self, request: Request) -> Response:
        params = request.path_params
        store = await self.opened_triggers()
        view = await load_fire(store, await self.opened(), params["name"], params["fire_id"])
        running = any(engine_alive(e, utcnow()) for e in await store.list_engines())
        return self.html("fire.html", view=view, fire=view.fire, engine_running=running)

    async def fire(self, request: Request) -> Response:
        if self.actions is None:
            return self.actions_off()
        return await self.actions.fire(request, await self.opened_triggers(), await self.opened())


NO_TRIGGER_STORE = (
    "this provenance store keeps no triggers: its backend has no trigger store "
    "(the sqlite backend keeps them in the provenance file)"
)


def _signature(view: RunView) -> str:
    """Changes whenever what the run page shows changes (statuses, attempts, edges)."""
    key = (
        str(view.run.status),
        len(view.edges),
        len(view.sub_runs),
        tuple((n.label, str(n.status), n.attempt) for n in view.nodes),
        tuple(str(s.status) for s in view.sub_runs),
    )
    return format(hash(key) & 0xFFFF_FFFF_FFFF, "x")


def create_app(config: UiConfig) -> Starlette:
    """The ASGI application serving ``config``."""
    pages = _Pages(config)
    routes = [
        Route("/", pages.runs, name="runs"),
        Route("/cache", pages.cache, name="cache"),
        Route("/triggers", pages.triggers, name="triggers"),
        Route("/triggers/{name:path}/fire", pages.fire, methods=["POST"], name="fire"),
        Route("/triggers/{name:path}/fires/{fire_id}", pages.fire_page, name="fire_page"),
        Route("/triggers/{name:path}", pages.trigger, name="trigger"),
        Route("/runs/{run_id}", pages.run, name="run"),
        Route("/runs/{run_id}/body", pages.run_body, name="run_body"),
        Route("/runs/{run_id}/live", pages.run_live, name="run_live"),
        Route("/runs/{run_id}/nodes/{label:path}", pages.node, name="node"),
        Route("/runs/{run_id}/{action:str}", pages.action, methods=["POST"], name="action"),
        Mount("/static", StaticFiles(packages=[("plait_ui", "static")]), name="static"),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={PlaitError: pages.plait_error},
        lifespan=pages.lifespan,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(config.allowed_hosts))],
    )
