"""A computed value the cache cannot store is returned with a warning (issue 13, item 8).

Real conditions on a real SQLite file: a full database (``PRAGMA max_page_count`` on the
cache's own connection), a read-only connection (``PRAGMA query_only``: tests may run as
root, where ``chmod`` stops nothing), a write lock another connection holds past the busy
timeout, and non-finite floats, which JSON cannot hold.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

import plait_cache_sqlite.backend as sqlite_backend
from plait import cached
from plait.cache import close_backends
from plait.errors import PlaitWarning
from plait_cache_sqlite import SqliteCache

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _close_shared_backends() -> Iterator[None]:
    yield
    close_backends()


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[SqliteCache]:
    with SqliteCache(tmp_path / "cache.sqlite3") as backend:
        yield backend


def writer_of(cache: SqliteCache) -> sqlite3.Connection:
    """The cache's write connection (page limits and query_only are per connection)."""
    conn = cache._writer
    assert conn is not None
    return conn


def fill_up(cache: SqliteCache) -> None:
    """Make the database full: no page can be added any more."""
    conn = writer_of(cache)
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")


def read_only(cache: SqliteCache) -> None:
    writer_of(cache).execute("PRAGMA query_only = 1")


def counted(cache: SqliteCache) -> tuple[list[int], Callable[[int], str]]:
    calls: list[int] = []

    @cached(min_ttl=1, max_ttl=2, backend=cache)
    def big(n: int) -> str:
        calls.append(n)
        return "x" * 200_000 + str(n)

    return calls, big


@pytest.mark.parametrize("break_it", [fill_up, read_only], ids=["disk-full", "read-only"])
def test_a_value_that_cannot_be_stored_is_returned_with_a_warning(
    cache: SqliteCache, break_it: Callable[[SqliteCache], None]
) -> None:
    calls, big = counted(cache)
    assert big(1).endswith("1")  # stored while it could be
    break_it(cache)
    with pytest.warns(PlaitWarning, match=r"big.*not cached.*cache database") as seen:
        assert big(2).endswith("2")
    assert "test_cache_sqlite_unstorable" in str(seen[0].message)  # names the callable
    assert big(1).endswith("1")  # a hit still works
    assert calls == [1, 2]
    writer_of(cache).execute("PRAGMA query_only = 0")
    writer_of(cache).execute("PRAGMA max_page_count = 1073741823")
    assert big(2).endswith("2") and calls == [1, 2, 2]  # computed again: it was not stored


def test_a_lock_held_past_the_busy_timeout_does_not_fail_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "BUSY_TIMEOUT", 0.2)
    path = tmp_path / "cache.sqlite3"
    with SqliteCache(path) as cache:
        calls, big = counted(cache)
        big(0)
        locked, release = threading.Event(), threading.Event()

        def hold_the_lock() -> None:
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(10)
            other.execute("ROLLBACK")
            other.close()

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        try:
            assert locked.wait(5)
            with pytest.warns(PlaitWarning, match=r"big.*not cached.*locked"):
                assert big(3).endswith("3")
            assert big(0).endswith("0")  # a hit reads through the lock
        finally:
            release.set()
            holder.join()
        assert calls == [0, 3]


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinities_are_cached_and_come_back(cache: SqliteCache, value: float) -> None:
    calls: list[int] = []

    @cached(min_ttl=1, max_ttl=2, backend=cache)
    def measure() -> float:
        calls.append(1)
        return value

    assert repr(measure()) == repr(value)
    assert repr(measure()) == repr(value)  # a hit: stored as 1e999, read back as inf
    assert calls == [1]


@pytest.mark.parametrize("value", [math.nan, [1.0, math.nan]])
def test_nan_is_returned_not_cached(cache: SqliteCache, value: object) -> None:
    calls: list[int] = []

    @cached(min_ttl=1, max_ttl=2, backend=cache)
    def measure() -> object:
        calls.append(1)
        return value

    for expected_calls in (1, 2):
        with pytest.warns(PlaitWarning, match="measure.*not cached.*non-finite"):
            got = measure()
        assert repr(got) == repr(value)
        assert len(calls) == expected_calls


async def test_an_async_callable_gets_its_value_when_the_store_is_full(
    cache: SqliteCache,
) -> None:
    calls: list[int] = []

    @cached(min_ttl=1, max_ttl=2, backend=cache)
    async def fetch(n: int) -> str:
        calls.append(n)
        await anyio.sleep(0.05)
        return "y" * 200_000

    fill_up(cache)
    results: list[str] = []

    async def three_calls() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(3):  # concurrent identical calls share the one computation

                async def call() -> None:
                    results.append(await fetch(7))

                tg.start_soon(call)

    with pytest.warns(PlaitWarning, match="fetch.*not cached"):
        await three_calls()
    assert calls == [7] and len(results) == 3 and len(results[0]) == 200_000
