"""Cached callables (SPEC 7): TTLs, keys, values, single flight, operations, DAG nodes.

Runs against the real ``sqlite`` backend (installed plugin) on a file per test.
"""

from __future__ import annotations

import inspect
import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

import plait
from plait import Dag, DagContext, Namespace, cached, register_cached_callable
from plait.cache import DAY, callable_id, clear, close_backends, prune, stats
from plait.errors import (
    CacheKeyError,
    ConversionError,
    NsrefError,
    PlaitError,
    PlaitWarning,
    TtlError,
)
from plait.records import CacheStats

pytest.importorskip("plait_cache_sqlite")


@pytest.fixture(autouse=True)
def _close_shared_backends() -> Iterator[None]:
    yield
    close_backends()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite3"


class Clock:
    """An injectable clock (epoch seconds) that only moves when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, days: float) -> None:
        self.now += days * DAY


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


class Counter:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        with self.lock:
            self.calls.append(args)

    def __len__(self) -> int:
        return len(self.calls)


def square(x: int) -> int:
    """A module-level function for gref registration."""
    return x * x


# ---------------------------------------------------------------------- TTL semantics
def test_ttl_boundaries_with_an_injected_clock(db: Path) -> None:
    clock, seen = Clock(), Counter()
    rng = FixedRandom(0.5)  # refresh exactly when the refresh probability exceeds 0.5

    @cached(min_ttl=1, max_ttl=3, db_path=db, clock=clock, rng=rng)
    def f(x: int) -> int:
        seen(x)
        return x * 10

    assert f(1) == 10 and len(seen) == 1  # miss
    clock.advance(1 - 1e-6)
    assert f(1) == 10 and len(seen) == 1  # just under min_ttl: hit
    clock.advance(1e-6)
    assert f(1) == 10 and len(seen) == 1  # at min_ttl: probability 0, hit
    clock.advance(0.99)  # age 1.99 days: probability 0.495 < 0.5, hit
    assert f(1) == 10 and len(seen) == 1
    clock.advance(0.02)  # age 2.01 days: probability 0.505, refresh
    assert f(1) == 10 and len(seen) == 2
    clock.advance(3 - 1e-6)  # refreshed entry is almost max_ttl old: p ~ 1
    assert f(1) == 10 and len(seen) == 3
    clock.advance(3)  # at/after max_ttl: always recomputed, whatever the draw
    f.__plait_cache__._random = FixedRandom(0.0).random  # type: ignore[attr-defined]
    assert f(1) == 10 and len(seen) == 4
    info = f.cache_info()
    assert (info.hits, info.misses, info.refreshes) == (3, 2, 2)
    assert info.entries == 1 and info.calls == 7


def test_refresh_probability_rises_linearly(db: Path) -> None:
    """With a seeded random source the refresh decisions are exactly reproducible."""
    clock, n = Clock(), 400

    for fraction in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9):
        rng = random.Random(1234)

        @cached(2, 4, db_path=db, clock=clock, rng=rng, version=f"{fraction}")
        def f(x: int) -> int:
            return x

        for i in range(n):
            f(i)  # stored now
        clock.advance(2 + 2 * fraction)
        for i in range(n):
            f(i)  # one refresh decision each
        clock.advance(-(2 + 2 * fraction))

        replay = random.Random(1234)
        expected = sum(replay.random() < fraction for _ in range(n))
        refreshes = f.cache_info().refreshes
        assert refreshes == expected
        assert abs(refreshes / n - fraction) < 0.07
        f.cache_clear()


def test_min_equal_max_and_zero_ttls(db: Path) -> None:
    clock, seen = Clock(), Counter()

    @cached(0, 0, db_path=db, clock=clock)
    def never(x: int) -> int:
        seen(x)
        return x

    never(1)
    never(1)
    assert len(seen) == 2  # a zero max_ttl never serves from the cache

    @cached(timedelta(hours=1), timedelta(hours=1), db_path=db, clock=clock)
    def hourly(x: int) -> int:
        seen(x)
        return x

    hourly(1)
    clock.now += 3599
    hourly(1)
    assert len(seen) == 3
    clock.now += 1
    hourly(1)
    assert len(seen) == 4


@pytest.mark.parametrize(
    ("min_ttl", "max_ttl", "match"),
    [
        (2, 1, "must not exceed"),
        (-1, 1, "non-negative"),
        (0, float("nan"), "non-negative"),
        ("1", 2, "number of days or a timedelta"),
        (True, 2, "number of days or a timedelta"),
        (timedelta(days=-1), 1, "non-negative"),
        (timedelta(days=3), 2, "must not exceed"),
    ],
)
def test_bad_ttls_are_refused(min_ttl: Any, max_ttl: Any, match: str) -> None:
    with pytest.raises(TtlError, match=match) as info:
        cached(min_ttl, max_ttl)
    assert isinstance(info.value, PlaitError | ValueError)


def test_bare_decorator_is_explained() -> None:
    with pytest.raises(TtlError, match=r"not bare @cached"):
        cached(square)  # type: ignore[arg-type]
    with pytest.raises(TtlError, match=r"not bare @cached"):
        cached(square, 2)  # type: ignore[arg-type]


def test_infinite_max_ttl_is_allowed(db: Path) -> None:
    clock, seen = Clock(), Counter()

    @cached(math.inf, math.inf, db_path=db, clock=clock)
    def f() -> int:
        seen()
        return 1

    f()
    clock.advance(10_000)
    f()
    assert len(seen) == 1
    assert prune(db_path=db, now=clock.now + 1e12) == 0


@pytest.mark.parametrize("value", [math.inf, 2.5, "text", [1, "a"], {"k": [1.5]}, None])
def test_an_object_annotated_function_is_served_from_the_cache(db: Path, value: object) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def f(x: int) -> object:
        seen()
        return value

    assert [f(1), f(1), f(1)] == [value] * 3
    assert len(seen) == 1  # `object` (like Any) says nothing: the stored data comes back


# ---------------------------------------------------------------------- keys
def test_keyword_and_positional_calls_share_an_entry(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def f(a: int, b: int = 2, *, c: str = "x") -> str:
        seen(a, b, c)
        return f"{a}{b}{c}"

    assert {f(1), f(1, 2), f(a=1), f(b=2, a=1), f(1, c="x"), f(1, 2, c="x")} == {"12x"}
    assert len(seen) == 1  # defaults applied: all the same call
    assert f(1, 3) == "13x" and f(1, c="y") == "12y"
    assert len(seen) == 3
    with pytest.raises(TypeError, match="multiple values"):
        f(1, a=1)  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword"):
        f(1, d=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing a required argument"):
        f(b=1)  # type: ignore[call-arg]


def test_varargs_and_kwargs_are_keyed(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def f(*args: int, **kwargs: int) -> int:
        seen(args, kwargs)
        return sum(args) + sum(kwargs.values())

    assert f(1, 2, x=3, y=4) == f(1, 2, y=4, x=3) == 10
    assert len(seen) == 1
    assert f(1, 2, 3) == 6 and len(seen) == 2


def test_positional_only_parameters(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def f(a: int, /, b: int = 0) -> int:
        seen(a, b)
        return a + b

    assert f(1) == f(1, 0) == f(1, b=0) == 1
    assert len(seen) == 1


def test_versions_and_callables_do_not_share_entries(db: Path) -> None:
    seen = Counter()

    def make(version: str | None) -> Any:
        @cached(1, 2, db_path=db, version=version)
        def f(x: int) -> int:
            seen(version)
            return x

        return f

    make(None)(1)
    make(None)(1)
    make("2")(1)
    assert len(seen) == 2

    @cached(1, 2, db_path=db)
    def g(x: int) -> int:
        seen("g")
        return x

    g(1)
    assert len(seen) == 3
    assert (
        callable_id(g) == f"{__name__}:test_versions_and_callables_do_not_share_entries.<locals>.g"
    )


def test_types_that_distinguish_keys(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def f(x: Any) -> str:
        seen(x)
        return repr(x)

    values = [
        1,
        1.0,
        True,
        "1",
        None,
        [1],
        (1,),
        {"a": 1},
        "",
        0,
        False,
        float("nan"),
        float("inf"),
        -0.0,
        0.0,
        datetime(2024, 1, 1),
        "2024-01-01T00:00:00",
    ]
    for v in values:
        f(v)
    assert len(seen) == len(values) - 1  # (1,) and [1] are the same JSON argument
    f(float("nan"))
    f(datetime(2024, 1, 1))
    assert len(seen) == len(values) - 1


@attrs.frozen
class Point:
    x: int
    y: int


@dataclass(frozen=True)
class Window:
    start: date
    end: date


def test_simple_and_structured_arguments(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def f(
        when: datetime,
        day: date,
        path: Path,
        point: Point,
        window: Window,
        tags: frozenset[str],
        weights: dict[int, float],
    ) -> int:
        seen(when)
        return 1

    args: dict[str, Any] = {
        "when": datetime(2024, 1, 2, 3, 4, tzinfo=UTC),
        "day": date(2024, 1, 2),
        "path": Path("/data/x.csv"),
        "point": Point(1, 2),
        "window": Window(date(2024, 1, 1), date(2024, 2, 1)),
        "tags": frozenset({"b", "a", "c"}),
        "weights": {2: 0.5, 1: 0.25},
    }
    f(**args)
    f(**{**args, "tags": frozenset({"c", "a", "b"}), "weights": {1: 0.25, 2: 0.5}})
    assert len(seen) == 1
    f(**{**args, "point": Point(1, 3)})
    f(**{**args, "path": PurePosixPath("/data/y.csv")})
    f(**{**args, "day": "2024-01-02"})  # a string is not a date
    assert len(seen) == 4


def test_unkeyable_argument_names_the_parameter(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def f(x: int, handle: Any = None) -> int:
        seen(x)
        return x

    with pytest.raises(CacheKeyError, match=r"argument 'handle' \(_?thread.*lock\)"):
        f(1, handle=threading.Lock())
    with pytest.raises(TypeError, match="'handle'"):  # CacheKeyError is a TypeError
        f(1, [object()])
    with pytest.raises(CacheKeyError, match=r"'handle'\[0\]"):
        f(1, [object()])
    with pytest.raises(CacheKeyError, match="'handle'"):
        f(1, {"a": object()})
    assert len(seen) == 0


def test_long_arguments_are_hashed(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def f(text: str, items: list[int]) -> int:
        seen(text)
        return len(text) + len(items)

    assert f("x" * 10_000, list(range(1000))) == 11_000
    assert f("x" * 10_000, list(range(1000))) == 11_000
    assert f("x" * 9_999 + "y", list(range(1000))) == 11_000
    assert len(seen) == 2


def test_dag_context_is_not_part_of_the_key(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def f(x: int, ctx: DagContext) -> int:
        seen(x)
        return x

    f(1, DagContext(dag_nsref="d", node_label="a", run_id="r1"))
    f(1, DagContext(dag_nsref="d", node_label="a", run_id="r2"))
    assert len(seen) == 1


def test_a_callable_without_identity_is_refused() -> None:
    import functools

    with pytest.raises(CacheKeyError, match="no __module__/__qualname__"):
        cached(1, 2)(functools.partial(square, 2))


# ---------------------------------------------------------------------- values
@attrs.frozen
class Report:
    name: str
    made: datetime
    where: Path
    sizes: tuple[int, ...]
    parts: dict[str, Point]


def test_values_come_back_as_the_annotated_type(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def build(name: str) -> Report:
        seen(name)
        return Report(
            name=name,
            made=datetime(2024, 5, 6, tzinfo=UTC),
            where=Path("/tmp/r"),
            sizes=(1, 2),
            parts={"p": Point(1, 2)},
        )

    first = build("r")
    close_backends()  # nothing held in memory: the second value comes from the file
    second = build("r")
    assert len(seen) == 1
    assert second == first and second is not first
    assert isinstance(second.where, Path) and isinstance(second.sizes, tuple)

    @cached(1, 2, db_path=db)
    def pair() -> tuple[int, float]:
        seen()
        return (1, 2.0)

    assert pair() == pair() == (1, 2.0)
    assert isinstance(pair(), tuple)

    @cached(1, 2, db_path=db)
    def untyped():  # type: ignore[no-untyped-def]
        return {"a": [1, 2]}

    assert untyped() == untyped() == {"a": [1, 2]}


def test_json_shaped_returns_skip_the_converter_and_keep_their_values(db: Path) -> None:
    # dict[str, Any] and list[Any] come back as parsed; a datetime inside one is stored
    # as the converter writes it (an ISO string), before and after the shortcut alike
    seen = Counter()

    @cached(1, 2, db_path=db)
    def row(day: int) -> dict[str, Any]:
        seen(day)
        return {"day": day, "px": day * 1.5, "tags": ("a", "b"), "at": datetime(2024, 5, 6)}

    @cached(1, 2, db_path=db)
    def items() -> list[Any]:
        seen()
        return [1, {"a": None}, [2.5]]

    stored = {"day": 2, "px": 3.0, "tags": ["a", "b"], "at": "2024-05-06T00:00:00"}
    assert row(2)["at"] == datetime(2024, 5, 6)  # the computed value itself
    close_backends()
    assert row(2) == row(2) == stored
    assert items() == items() == [1, {"a": None}, [2.5]]
    assert len(seen) == 2

    @cached(1, 2, db_path=db)
    def counts() -> dict[str, int]:  # not JSON-shaped: still structured (and checked)
        seen()
        return {"a": 1}

    counts()
    backend = counts.__plait_cache__.backend  # type: ignore[attr-defined]
    key = counts.__plait_cache__._keys.key((), {})  # type: ignore[attr-defined]
    backend.store(key, counts.callable_id, '{"a": "x"}', time.time(), time.time() + DAY)
    assert counts() == {"a": 1}  # the stale entry did not convert: recomputed
    assert len(seen) == 4


def test_unconvertible_return_value_is_an_error(db: Path) -> None:
    @cached(1, 2, db_path=db)
    def f() -> Any:
        return object()

    with pytest.raises(ConversionError, match="return value of"):
        f()
    assert f.cache_info().entries == 0


def test_stale_entry_that_no_longer_converts_is_recomputed(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def f() -> int:
        seen()
        return 3

    f()
    backend = f.__plait_cache__.backend  # type: ignore[attr-defined]
    key = f.__plait_cache__._keys.key((), {})  # type: ignore[attr-defined]
    backend.store(key, f.callable_id, '"not an int"', time.time(), time.time() + DAY)
    assert f() == 3
    assert len(seen) == 2


def test_exceptions_are_never_cached(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def flaky(x: int) -> int:
        seen(x)
        if len(seen) == 1:
            raise RuntimeError("boom")
        return x

    with pytest.raises(RuntimeError, match="boom"):
        flaky(1)
    assert flaky.cache_info().entries == 0
    assert flaky(1) == 1
    assert flaky(1) == 1
    assert len(seen) == 2


# ---------------------------------------------------------------------- wrappers
def test_wrapper_keeps_the_original_signature(db: Path) -> None:
    def original(a: int, b: str = "x") -> float:
        return 1.0

    async def aoriginal(a: int) -> float:
        return 1.0

    wrapped = cached(1, 2, db_path=db)(original)
    awrapped = cached(1, 2, db_path=db)(aoriginal)
    assert wrapped.__wrapped__ is original
    assert inspect.unwrap(awrapped) is aoriginal
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert wrapped.__name__ == "original"
    assert not inspect.iscoroutinefunction(wrapped)
    assert inspect.iscoroutinefunction(awrapped)
    assert wrapped.callable_id == f"{__name__}:{original.__qualname__}"


def test_decorating_opens_nothing(tmp_path: Path) -> None:
    db = tmp_path / "never" / "cache.sqlite3"

    @cached(1, 2, db_path=db)
    def f() -> int:
        return 1

    assert not db.parent.exists()
    f()
    assert db.exists()


def test_default_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    @cached(1, 2)
    def f() -> int:
        return 1

    f()
    default = Path(__import__("platformdirs").user_cache_dir("plait")) / "cache.sqlite3"
    assert default.exists()
    monkeypatch.setenv("PLAIT_CACHE", "nope")

    @cached(1, 2)
    def g() -> int:
        return 1

    with pytest.raises(plait.errors.BackendNotFoundError, match="nope"):
        g()


# ---------------------------------------------------------------------- async
@pytest.mark.anyio
async def test_async_callable_is_cached(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    async def fetch(url: str, retries: int = 3) -> dict[str, int]:
        seen(url)
        await anyio.lowlevel.checkpoint()
        return {"len": len(url)}

    assert await fetch("abc") == {"len": 3}
    assert await fetch(url="abc", retries=3) == {"len": 3}
    assert len(seen) == 1
    assert fetch.cache_info() == CacheStats(
        callable_id=fetch.callable_id, hits=1, misses=1, refreshes=0, entries=1
    )


@pytest.mark.anyio
async def test_async_single_flight_twenty_callers(db: Path) -> None:
    seen, gate = Counter(), anyio.Event()

    @cached(1, 2, db_path=db)
    async def slow(x: int) -> list[int]:
        seen(x)
        await gate.wait()
        return [x, x]

    slow.cache_info()  # open the backend first: the first call opens it in a worker thread
    results: list[list[int]] = []

    async def caller() -> None:
        results.append(await slow(7))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert len(seen) == 1
    assert results == [[7, 7]] * 20
    assert len({id(r) for r in results}) == 20  # every caller gets its own copy
    info = slow.cache_info()
    assert (info.misses, info.hits) == (1, 19)


@pytest.mark.anyio
async def test_async_single_flight_shares_the_exception(db: Path) -> None:
    seen, gate = Counter(), anyio.Event()

    @cached(1, 2, db_path=db)
    async def bad(x: int) -> int:
        seen(x)
        await gate.wait()
        raise ValueError(f"bad {x}")

    bad.cache_info()  # open the backend first: the first call opens it in a worker thread
    errors: list[BaseException] = []

    async def caller() -> None:
        try:
            await bad(1)
        except ValueError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert len(seen) == 1 and len(errors) == 5
    assert bad.cache_info().entries == 0


@pytest.mark.anyio
async def test_cancelled_leader_hands_over(db: Path) -> None:
    seen, gate = Counter(), anyio.Event()

    @cached(1, 2, db_path=db)
    async def slow(x: int) -> int:
        seen(x)
        if len(seen) == 1:
            await anyio.sleep_forever()
        await gate.wait()
        return x

    slow.cache_info()  # open the backend first: the first call opens it in a worker thread
    result: list[int] = []

    async def follower() -> None:
        result.append(await slow(3))

    scopes: list[anyio.CancelScope] = []

    async def leader() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await slow(3)

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(follower)
        await anyio.wait_all_tasks_blocked()
        assert len(seen) == 1 and result == []  # the follower waits for the leader
        scopes[0].cancel()
        await anyio.wait_all_tasks_blocked()
        assert len(seen) == 2  # ... and computes once the leader is gone
        gate.set()
    assert result == [3]


# ---------------------------------------------------------------------- threads
def test_thread_single_flight_twenty_callers(db: Path) -> None:
    seen, gate = Counter(), threading.Event()
    start = threading.Barrier(20)

    @cached(1, 2, db_path=db)
    def slow(x: int) -> list[int]:
        seen(x)
        gate.wait(10)
        return [x]

    results: list[list[int]] = []
    errors: list[BaseException] = []

    def caller() -> None:
        start.wait()
        try:
            results.append(slow(5))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.2)  # let the callers pile up behind the leader (correct without it too)
    gate.set()
    for t in threads:
        t.join()
    assert errors == []
    assert len(seen) == 1
    assert results == [[5]] * 20
    info = slow.cache_info()
    assert (info.misses, info.hits) == (1, 19)


def test_thread_single_flight_shares_the_exception(db: Path) -> None:
    seen, gate = Counter(), threading.Event()

    @cached(1, 2, db_path=db)
    def bad() -> int:
        seen()
        gate.wait(10)
        raise KeyError("gone")

    errors: list[BaseException] = []

    def caller() -> None:
        try:
            bad()
        except KeyError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join()
    assert len(errors) == 6
    assert 1 <= len(seen) <= 6  # late callers after the failure try again themselves
    assert bad.cache_info().entries == 0


# ---------------------------------------------------------------------- operations
def test_stats_clear_prune(db: Path) -> None:
    clock = Clock()

    @cached(1, 2, db_path=db, clock=clock)
    def a(x: int) -> int:
        return x

    @cached(1, 5, db_path=db, clock=clock)
    def b(x: int) -> int:
        return x

    for i in range(3):
        a(i)
        a(i)
    b(1)
    all_stats = stats(db_path=db)
    assert all_stats[a.callable_id] == CacheStats(
        callable_id=a.callable_id, hits=3, misses=3, refreshes=0, entries=3
    )
    assert all_stats[b.callable_id].entries == 1
    assert prune(db_path=db, now=clock.now + 1.5 * DAY) == 0
    assert prune(db_path=db, now=clock.now + 2 * DAY) == 3  # a's max_ttl passed
    assert stats(db_path=db)[a.callable_id].entries == 0
    assert clear(b) == 1
    assert b.callable_id not in stats(db_path=db)
    a(1)
    assert clear(a.callable_id, db_path=db) == 1
    a(1)
    b(1)
    assert clear(db_path=db) == 2
    assert stats(db_path=db) == {}
    assert a.cache_clear() == 0


def test_clear_by_original_function(db: Path) -> None:
    def plain(x: int) -> int:
        return x

    wrapped = cached(1, 2, db_path=db)(plain)
    wrapped(1)
    assert clear(plain, db_path=db) == 1


# ---------------------------------------------------------------------- backend instances
class DictCache:
    """A minimal in-memory CacheBackend: any object with these methods will do."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, str, float, float]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.opened = 0

    def open(self) -> None:
        self.opened += 1

    def lookup(self, key: str) -> Any:
        hit = self.entries.get(key)
        if hit is None:
            return None

        @attrs.frozen
        class Entry:
            value_json: str
            stored_at: float

        return Entry(hit[1], hit[2])

    def store(
        self, key: str, callable_id: str, value_json: str, stored_at: float, expires_at: float
    ) -> None:
        self.entries[key] = (callable_id, value_json, stored_at, expires_at)

    def push_back(self, prefix: str, until: float) -> None:
        self.pushed = {**getattr(self, "pushed", {}), prefix: until}

    def pushbacks(self, now: float) -> dict[str, float]:
        return {p: u for p, u in getattr(self, "pushed", {}).items() if u > now}

    def record_stats(
        self, callable_id: str, *, hits: int = 0, misses: int = 0, refreshes: int = 0
    ) -> None:
        c = self.counts.setdefault(callable_id, {"hits": 0, "misses": 0, "refreshes": 0})
        c["hits"] += hits
        c["misses"] += misses
        c["refreshes"] += refreshes

    def stats(self) -> dict[str, dict[str, int]]:
        out = {cid: {**c, "entries": 0} for cid, c in self.counts.items()}
        for cid, *_ in self.entries.values():
            out.setdefault(cid, {"hits": 0, "misses": 0, "refreshes": 0, "entries": 0})
            out[cid]["entries"] += 1
        return out

    def clear(self, callable_id: str | None = None) -> int:
        doomed = [k for k, v in self.entries.items() if callable_id in (None, v[0])]
        for k in doomed:
            del self.entries[k]
        return len(doomed)

    def prune(self, now: float) -> int:
        doomed = [k for k, v in self.entries.items() if v[3] <= now]
        for k in doomed:
            del self.entries[k]
        return len(doomed)

    def close(self) -> None:
        pass


def test_backend_instance_is_used_directly() -> None:
    from plait.protocols import CacheBackend

    backend = DictCache()
    assert isinstance(backend, CacheBackend)
    seen = Counter()

    @cached(1, 2, backend=backend)
    def f(x: int) -> int:
        seen(x)
        return x + 1

    assert f(1) == f(1) == 2
    assert len(seen) == 1 and backend.opened == 1
    assert f.cache_info().hits == 1
    assert stats(backend)[f.callable_id].entries == 1
    close_backends()  # instances are the caller's: not closed, not forgotten
    assert f(1) == 2 and len(seen) == 1


# ---------------------------------------------------------------------- namespaces and DAGs
def test_register_cached_callable_by_gref(db: Path) -> None:
    ns = Namespace()
    node = register_cached_callable(
        ns, f"{__name__}:square", min_ttl=1, max_ttl=2, db_path=db, nsref="math:square"
    )
    assert ns.get("math:square") is node
    assert node(4) == 16 and ns.math.square(4) == 16
    assert node.fn is square
    assert node.info.return_type is int
    assert stats(db_path=db)[callable_id(square)] == CacheStats(
        callable_id=callable_id(square), hits=1, misses=1, entries=1
    )
    default = register_cached_callable(ns, square, 1, 2, db_path=db)
    assert default.nsref == "square"


@pytest.mark.parametrize(
    ("gref", "match"),
    [
        ("no_colon", "must look like"),
        ("plait.nothing_here:x", "cannot import module"),
        ("plait:not_there", "'not_there' not found"),
        ("plait:__version__", "not a callable"),
    ],
)
def test_register_cached_callable_bad_gref(gref: str, match: str) -> None:
    with pytest.raises(NsrefError, match=match):
        register_cached_callable(Namespace(), gref, 1, 2)


def test_register_cached_callable_bad_ttls() -> None:
    with pytest.raises(TtlError):
        register_cached_callable(Namespace(), f"{__name__}:square", 3, 2)


@pytest.mark.anyio
async def test_cached_node_inside_a_dag(db: Path) -> None:
    seen = Counter()

    @cached(1, 2, db_path=db)
    def load(n: int) -> list[int]:
        seen("load", n)
        return list(range(n))

    @cached(1, 2, db_path=db)
    async def total(xs: list[int], ctx: DagContext) -> float:
        seen("total", ctx.run_id)
        return float(sum(xs))

    with Dag("cached") as dag:
        dag.node(load) >> dag.node(total)
    first = await dag(n=4)
    second = await dag(n=4)
    assert first.status == second.status == "completed"
    assert first.outputs == second.outputs == {"total": 6.0}
    assert len(seen) == 2
    third = await dag(n=5)
    assert third.outputs == {"total": 10.0}
    assert len(seen) == 4


def test_a_failed_refresh_serves_the_still_valid_value(db: Path) -> None:
    clock, calls = Clock(), Counter()
    fail = [False]

    @cached(min_ttl=1, max_ttl=3, db_path=db, clock=clock, rng=FixedRandom(0.0))
    def quote(x: int) -> int:
        calls(x)
        if fail[0]:
            raise ConnectionError("upstream down")
        return x * 10

    assert quote(1) == 10
    fail[0] = True
    clock.advance(2)  # inside [min_ttl, max_ttl): refresh drawn (rng 0.0 < p)
    with pytest.warns(PlaitWarning, match=r"refreshing .*quote failed \(ConnectionError"):
        assert quote(1) == 10
    assert len(calls) == 2  # the refresh was attempted
    clock.advance(1)  # now at max_ttl: a miss, and a miss has nothing to fall back on
    with pytest.raises(ConnectionError, match="upstream down"):
        quote(1)


@pytest.mark.anyio
async def test_a_failed_async_refresh_serves_the_still_valid_value(db: Path) -> None:
    clock = Clock()
    fail = [False]

    @cached(min_ttl=1, max_ttl=3, db_path=db, clock=clock, rng=FixedRandom(0.0))
    async def quote(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        if fail[0]:
            raise ConnectionError("upstream down")
        return x * 10

    assert await quote(2) == 20
    fail[0] = True
    clock.advance(2)
    with pytest.warns(PlaitWarning, match="serving the cached value"):
        assert await quote(2) == 20
