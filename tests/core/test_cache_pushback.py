"""Cache pushback (refreshes under a namespace prefix suppressed for a while, in the store)
and require_cache (a function reached only through its cache)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from plait import Namespace, cached, register_cached_callable
from plait.cache import (
    DAY,
    close_backends,
    in_scope,
    push_back,
    pushbacks,
    require_cache,
    stats,
)
from plait.errors import CacheBypassError, CachePushback, TtlError

pytest.importorskip("plait_cache_sqlite")


@pytest.fixture(autouse=True)
def _close_shared_backends() -> Iterator[None]:
    yield
    close_backends()


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, days: float) -> None:
        self.now += days * DAY


class AlwaysRefresh:
    """Every call inside the min..max window is a refresh (``random() < chance``)."""

    def random(self) -> float:
        return 0.0


@pytest.mark.parametrize(
    ("prefix", "scope", "covered"),
    [
        ("market", "market:fetch", True),
        ("market", "market.eu:fetch", True),
        ("market", "marketing:fetch", False),
        ("market:fetch", "market:fetch", True),
        ("market:fetch", "market:fetch_all", False),
        ("market.", "market.eu:fetch", True),
        ("mod:f", "mod:f.<locals>.g", True),
    ],
)
def test_prefixes_cover_whole_names(prefix: str, scope: str, covered: bool) -> None:
    assert in_scope(prefix, scope) is covered


def square(x: int) -> int:
    square.calls += 1  # type: ignore[attr-defined]
    return x * x


square.calls = 0  # type: ignore[attr-defined]


def test_a_pushback_suppresses_refreshes_under_its_prefix(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    clock = Clock()
    ns = Namespace()
    node = register_cached_callable(
        ns, square, 1, 3, db_path=db, nsref="market.eu:square", clock=clock, rng=AlwaysRefresh()
    )
    before = square.calls  # type: ignore[attr-defined]
    assert node(3) == 9
    clock.advance(2)  # in the refresh window: refreshed every call
    assert node(3) == 9
    assert square.calls == before + 2  # type: ignore[attr-defined]

    until = push_back("market", timedelta(days=1), db_path=db, now=clock.now)
    assert pushbacks(db_path=db, now=clock.now) == {"market": until}
    assert node(3) == 9 and node(3) == 9
    assert square.calls == before + 2  # served from the cache  # type: ignore[attr-defined]
    assert stats(db_path=db)[node.fn.__module__ + ":square"].hits == 2

    clock.advance(1.1)  # the pushback ended; the value refreshed at day 2 is in its window
    assert node(3) == 9
    assert square.calls == before + 3  # type: ignore[attr-defined]


def test_a_pushback_elsewhere_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    clock = Clock()
    calls = []

    @cached(1, 3, db_path=db, clock=clock, rng=AlwaysRefresh(), scope="weather:f")
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    clock.advance(2)
    push_back("market", 5, db_path=db, now=clock.now)
    f(1)
    assert calls == [1, 1]


def test_expired_values_and_misses_are_still_computed(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    clock = Clock()
    calls = []

    @cached(1, 3, db_path=db, clock=clock, rng=AlwaysRefresh(), scope="market:f")
    def f(x: int) -> int:
        calls.append(x)
        return x

    push_back("market", 30, db_path=db, now=clock.now)
    f(1)  # a miss
    clock.advance(4)  # past max_ttl
    f(1)
    assert calls == [1, 1]


def test_raising_cache_pushback_records_it_and_serves_the_stored_value(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    clock = Clock()
    answers: list[object] = [10, CachePushback(2, prefix="api"), 20]

    @cached(1, 3, db_path=db, clock=clock, rng=AlwaysRefresh(), scope="api.v1:quote")
    def quote(x: int) -> int:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    assert quote(1) == 10
    clock.advance(2)
    assert quote(1) == 10  # the refresh raised CachePushback: the stored value is served
    assert pushbacks(db_path=db, now=clock.now) == {"api": clock.now + 2 * DAY}
    assert quote(1) == 10  # no refresh attempted while pushed back
    assert answers == [20]


def test_cache_pushback_without_a_stored_value_reaches_the_caller(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"

    @cached(1, 3, db_path=db, scope="api:quote")
    def quote(x: int) -> int:
        raise CachePushback(timedelta(hours=1))  # default prefix: its own scope

    with pytest.raises(CachePushback):
        quote(1)
    assert list(pushbacks(db_path=db)) == ["api:quote"]


@pytest.mark.anyio
async def test_async_callables_push_back_too(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    clock = Clock()
    answers: list[object] = [10, CachePushback(1)]

    @cached(1, 3, db_path=db, clock=clock, rng=AlwaysRefresh(), scope="api:aquote")
    async def aquote(x: int) -> int:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    assert await aquote(1) == 10
    clock.advance(2)
    assert await aquote(1) == 10
    assert await aquote(1) == 10
    assert list(pushbacks(db_path=db, now=clock.now)) == ["api:aquote"]


def test_bad_pushbacks_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    with pytest.raises(TtlError, match="prefix"):
        push_back("", 1, db_path=db)
    with pytest.raises(TtlError, match="duration"):
        push_back("market", -1, db_path=db)


def test_a_zero_duration_lifts_a_pushback(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    push_back("market", 1, db_path=db, now=100.0)
    push_back("market", 0, db_path=db, now=100.0)
    assert pushbacks(db_path=db, now=100.0) == {}


# ---------------------------------------------------------------------- require_cache
def quote_api(ticker: str) -> float:
    require_cache()
    return 1.5


async def aquote_api(ticker: str) -> float:
    require_cache()
    return 2.5


def calls_the_api_directly(ticker: str) -> float:
    return quote_api(ticker)  # bypasses quote_api's cache, from inside another cached call


def test_require_cache_refuses_direct_calls(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    quote = cached(1, 2, db_path=db)(quote_api)
    assert quote("ACME") == 1.5 and quote("ACME") == 1.5  # computed once through the cache
    with pytest.raises(CacheBypassError, match=f"{__name__}:quote_api must be called through"):
        quote_api("ACME")
    wrapper = cached(1, 2, db_path=db)(calls_the_api_directly)
    with pytest.raises(CacheBypassError, match="quote_api"):
        wrapper("ACME")
    assert issubclass(CacheBypassError, RuntimeError)


@pytest.mark.anyio
async def test_require_cache_in_async_callables_and_namespaces(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite3"
    ns = Namespace()
    register_cached_callable(ns, aquote_api, 1, 2, db_path=db, nsref="api:quote")
    assert await ns.api.quote("ACME") == 2.5
    with pytest.raises(CacheBypassError):
        await aquote_api("ACME")
