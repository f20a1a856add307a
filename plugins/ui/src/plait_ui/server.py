"""Serving the app with Hypercorn, on asyncio or trio (the loops plait runs on)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
from starlette.applications import Starlette

__all__ = ["free_port", "serve", "serve_async"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for tests and ``--port 0``)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def serve_async(
    app: Starlette,
    *,
    host: str,
    port: int,
    loop: str = "asyncio",
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve ``app`` until ``shutdown_trigger`` returns (or, without one, SIGINT/SIGTERM).

    ``loop`` names the event loop this coroutine runs on (``asyncio`` or ``trio``).
    """
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 1.0
    if loop == "trio":
        from hypercorn.trio import serve as trio_serve

        await trio_serve(app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]
    else:
        from hypercorn.asyncio import serve as asyncio_serve

        await asyncio_serve(app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]


def serve(app: Starlette, *, host: str, port: int, loop: str = "asyncio") -> None:
    """Serve ``app`` on ``host:port`` in the foreground until interrupted (Ctrl-C stops it:
    a normal end, also when trio delivers the KeyboardInterrupt inside a request's task)."""
    try:
        anyio.run(partial(serve_async, app, host=host, port=port, loop=loop), backend=loop)
    except KeyboardInterrupt:
        return
    except BaseExceptionGroup as group:
        _, rest = group.split(KeyboardInterrupt)
        if rest is not None:
            raise
