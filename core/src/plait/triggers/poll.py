"""The ``poll`` kind: call a check at an interval; whatever it returns other than ``None``
fires the trigger with that payload.

Ticks are aligned to the interval (every 60 s means at :00 of each minute, in UTC), so engines
sharing a store agree on them: each tick is claimed in the store before the check is called,
and only the engine that claimed it calls the check. A check that raises or times out is
recorded on the trigger and retried after a growing pause; it never stops the engine.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread

from plait.errors import TriggerError
from plait.triggers.kinds import WatchContext
from plait.triggers.model import Trigger
from plait.triggers.options import PollOptions

__all__ = ["PollWatcher", "import_gref"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def import_gref(gref: str, *, what: str) -> Any:
    """The object at ``"package.module:attribute"``; :class:`TriggerError` naming ``what``
    and the gref when it does not import."""
    module_name, colon, attr_path = gref.partition(":")
    if not colon or not module_name or not attr_path:
        raise TriggerError(f"{what}: {gref!r} is not a gref (write 'package.module:callable')")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise TriggerError(
            f"{what}: cannot import module {module_name!r} of {gref!r}: {type(exc).__name__}: {exc}"
        ) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise TriggerError(
                f"{what}: module {module_name!r} has no attribute {attr_path!r} ({gref!r})"
            ) from None
    return target


class PollWatcher:
    """Calls the trigger's check at each tick it claims; a payload fires."""

    def __init__(self, trigger: Trigger) -> None:
        options = trigger.options
        if not isinstance(options, PollOptions):
            raise TriggerError(f"trigger {trigger.name!r}: poll options expected, got {options!r}")
        where = f"trigger {trigger.name!r}"
        if not options.interval > 0:
            raise TriggerError(
                f"{where}: poll interval must be > 0 seconds, got {options.interval}"
            )
        if options.timeout is not None and not options.timeout > 0:
            raise TriggerError(f"{where}: poll timeout must be > 0 seconds, got {options.timeout}")
        check = options.check
        self.check_name = check if isinstance(check, str) else _describe(check)
        if isinstance(check, str):
            check = import_gref(check, what=f"{where}: poll check")
        if not callable(check):
            raise TriggerError(f"{where}: poll check {self.check_name!r} is not callable")
        self.trigger = trigger
        self.check: Callable[[], Any] = check
        self.interval = float(options.interval)
        self.timeout = options.timeout
        self.max_backoff = float(options.max_backoff)
        self._is_async = _is_async(check)

    def next_fire(self, after: datetime) -> datetime | None:
        """The first tick strictly after ``after``."""
        elapsed = (after - _EPOCH).total_seconds()
        ticks = math.floor(elapsed / self.interval) + 1
        return _EPOCH + timedelta(seconds=ticks * self.interval)

    async def call(self) -> Any:
        """One call of the check, within its timeout, on a worker thread if it is sync."""
        with anyio.fail_after(self.timeout):
            if self._is_async:
                return await self.check()
            return await anyio.to_thread.run_sync(self.check, abandon_on_cancel=True)

    async def watch(self, ctx: WatchContext) -> None:
        failures = 0
        while True:
            now = ctx.clock.now()
            wait = 0.0 if failures == 0 else min(self.interval * 2**failures, self.max_backoff)
            tick = self.next_fire(now + timedelta(seconds=wait))
            assert tick is not None
            await ctx.set_next_fire(tick)
            await ctx.sleep_until(tick)
            if not await ctx.claim_tick(tick):
                continue  # another engine polls this tick
            try:
                payload = await self.call()
                if payload is not None and not isinstance(payload, Mapping):
                    raise TypeError(
                        f"returned {type(payload).__name__}; expected a dict of run inputs or None"
                    )
            except Exception as exc:
                failures += 1
                reason = "timed out" if isinstance(exc, TimeoutError) else "raised"
                await ctx.record_error(
                    f"poll check {self.check_name!r} {reason}: {type(exc).__name__}: {exc}"
                )
                continue
            failures = 0
            if payload is not None:
                await ctx.fire(payload, scheduled_for=tick)


def _describe(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}:{name}"


def _is_async(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects
    return call is not None and inspect.iscoroutinefunction(call)
