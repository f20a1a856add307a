"""plait-cache-sqlite: discovery, the file it keeps, and the files it refuses."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait.cache import close_backends
from plait.errors import BackendError, PlaitError, StoreError
from plait.plugins import PluginHost, get_cache
from plait.protocols import CacheBackend
from plait_cache_sqlite import APPLICATION_ID, SCHEMA_VERSION, SqliteCache


@pytest.fixture(autouse=True)
def _close_shared_backends() -> Iterator[None]:
    yield
    close_backends()


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[SqliteCache]:
    with SqliteCache(tmp_path / "cache.sqlite3") as backend:
        yield backend


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------- discovery
def test_plugin_is_installed() -> None:
    """The backend is found through the installed entry point, not by importing it."""
    host = PluginHost()
    info = host.backends("cache")["sqlite"]
    assert info.factory is SqliteCache
    assert info.distribution == "plait-cache-sqlite"
    names = {p.name: p for p in host.plugins()}
    assert "cache:sqlite" in names["cache-sqlite"].provides
    assert names["cache-sqlite"].error is None


def test_get_cache_builds_it_by_name(tmp_path: Path, host: PluginHost) -> None:
    backend = get_cache("sqlite", host=host, path=tmp_path / "c.db")
    assert isinstance(backend, SqliteCache)
    assert isinstance(backend, CacheBackend)
    backend.close()


def test_unknown_option_is_a_clear_error(host: PluginHost) -> None:
    with pytest.raises(BackendError, match="rejected options"):
        get_cache("sqlite", host=host, nonsense=1)


# ---------------------------------------------------------------------- the file
def test_default_path_is_resolved_when_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = SqliteCache()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "later"))
    assert not (tmp_path / "later").exists()
    with backend:
        assert backend.path == tmp_path / "later" / "plait" / "cache.sqlite3"
        assert backend.path.is_file()


def test_new_file_is_private_and_tagged(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "cache.sqlite3"
    with SqliteCache(str(path)) as backend:
        backend.store("k", "m:f", "1", 10.0, 20.0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_store_lookup_replace(cache: SqliteCache) -> None:
    assert cache.lookup("k") is None
    cache.store("k", "m:f", '{"a":1}', 100.0, 200.0)
    entry = cache.lookup("k")
    assert entry is not None
    assert (entry.value_json, entry.stored_at) == ('{"a":1}', 100.0)
    cache.store("k", "m:f", "2", 150.0, 250.0)
    entry = cache.lookup("k")
    assert entry is not None and entry.value_json == "2" and entry.stored_at == 150.0


def test_reopens_after_close(tmp_path: Path) -> None:
    backend = SqliteCache(tmp_path / "c.db")
    backend.store("k", "m:f", "1", 1.0, 2.0)
    backend.close()
    backend.close()  # idempotent
    entry = backend.lookup("k")
    assert entry is not None and entry.value_json == "1"
    backend.close()


def test_counters_are_buffered_then_persisted(cache: SqliteCache) -> None:
    cache.record_stats("m:f", hits=2)
    cache.record_stats("m:f", misses=1, refreshes=3)
    other = SqliteCache(cache.path)
    try:
        assert other.stats() == {}  # nothing written per hit
        cache.flush()
        assert other.stats() == {"m:f": {"hits": 2, "misses": 1, "refreshes": 3, "entries": 0}}
        other.record_stats("m:f", hits=5)  # counters add up across processes
        other.close()
        assert cache.stats()["m:f"]["hits"] == 7
    finally:
        other.close()


def test_close_persists_counters(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SqliteCache(path) as backend:
        backend.record_stats("m:f", hits=4)
    with SqliteCache(path) as backend:
        assert backend.stats()["m:f"]["hits"] == 4


def test_clear_and_prune(cache: SqliteCache) -> None:
    cache.store("a1", "m:a", "1", 0.0, 100.0)
    cache.store("a2", "m:a", "1", 0.0, 300.0)
    cache.store("b1", "m:b", "1", 0.0, 200.0)
    cache.record_stats("m:a", hits=1)
    cache.record_stats("m:b", hits=1)
    assert cache.prune(99.0) == 0
    assert cache.prune(200.0) == 2
    assert cache.lookup("a2") is not None
    assert cache.stats()["m:b"] == {"hits": 1, "misses": 0, "refreshes": 0, "entries": 0}
    assert cache.clear("m:b") == 0
    assert "m:b" not in cache.stats()
    cache.store("b1", "m:b", "1", 0.0, 200.0)
    assert cache.clear() == 2
    assert cache.stats() == {}


def test_threads_share_one_backend(cache: SqliteCache) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                cache.store(f"k{n}-{i}", "m:f", str(i), float(i), 1e9)
                entry = cache.lookup(f"k{n}-{i}")
                assert entry is not None and entry.value_json == str(i)
                cache.record_stats("m:f", hits=1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.stats()["m:f"] == {"hits": 400, "misses": 0, "refreshes": 0, "entries": 400}


def test_flushes_counters_periodically(cache: SqliteCache, monkeypatch: pytest.MonkeyPatch) -> None:
    import plait_cache_sqlite.backend as backend_module

    monkeypatch.setattr(backend_module, "FLUSH_INTERVAL", 0.0)
    cache.lookup("x")
    time.sleep(0.001)
    cache.record_stats("m:f", hits=1)
    with SqliteCache(cache.path) as other:
        assert other.stats()["m:f"]["hits"] == 1


# ---------------------------------------------------------------------- bad input
def refused(path: Path, match: str) -> StoreError:
    with pytest.raises(StoreError, match=match) as info:
        SqliteCache(path).open()
    assert str(path) in str(info.value)
    assert isinstance(info.value, PlaitError | OSError)
    return info.value


def test_directory_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, "is a directory")
    assert list(tmp_path.iterdir()) == []


def test_non_sqlite_file_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my precious notes\n" * 20)
    before = sha256(path)
    refused(path, "not a SQLite database")
    assert sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_short_garbage_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"SQLite format 3\x00truncated")
    before = sha256(path)
    refused(path, "not a SQLite database")
    assert sha256(path) == before


def test_foreign_sqlite_database_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO entries VALUES ('a', 'b')")
    conn.commit()
    conn.close()
    before = sha256(path)
    refused(path, "another application")
    assert sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_empty_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 3")  # a SQLite file with no tables of ours
    conn.close()
    before = sha256(path)
    refused(path, "another application")
    assert sha256(path) == before


def test_newer_schema_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    SqliteCache(path).close()
    SqliteCache(path).open()  # ours: accepted
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = sha256(path)
    refused(path, f"schema version {SCHEMA_VERSION + 1}, newer")
    assert sha256(path) == before


def test_corrupt_database_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SqliteCache(path) as backend:
        backend.store("k", "m:f", "1", 1.0, 2.0)
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    data[page_size:] = b"\xff" * (len(data) - page_size)  # header intact, pages garbage
    path.write_bytes(bytes(data))
    before = sha256(path)
    backend = SqliteCache(path)
    try:
        with pytest.raises(StoreError, match=re.escape(str(path))):
            backend.lookup("k")
    finally:
        backend.close()
    assert sha256(path) == before


def test_unwritable_location_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot be created") as info:
        SqliteCache(blocker / "sub" / "c.db").open()
    assert str(blocker / "sub" / "c.db") in str(info.value)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_symlink_to_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "d")
    refused(tmp_path / "link", "is a directory")


# ---------------------------------------------------------------------- schema 2: pushbacks
V1_SCHEMA = (
    """CREATE TABLE entries (key TEXT PRIMARY KEY, callable_id TEXT NOT NULL,
        value_json TEXT NOT NULL, stored_at REAL NOT NULL, expires_at REAL NOT NULL)""",
    "CREATE INDEX entries_by_callable ON entries (callable_id)",
    "CREATE INDEX entries_by_expiry ON entries (expires_at)",
    """CREATE TABLE counters (callable_id TEXT PRIMARY KEY, hits INTEGER NOT NULL DEFAULT 0,
        misses INTEGER NOT NULL DEFAULT 0, refreshes INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID""",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)


def make_v1_file(path: Path) -> None:
    """A cache file as plait-cache-sqlite 0.1 (schema version 1) wrote it, with data."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in V1_SCHEMA:
        conn.execute(statement)
    conn.execute("INSERT INTO entries VALUES ('k', 'm:f', '41', 10.0, 9e9)")
    conn.execute("INSERT INTO counters VALUES ('m:f', 3, 1, 0)")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.close()


def test_version_1_file_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    make_v1_file(path)
    with SqliteCache(path) as cache:
        entry = cache.lookup("k")
        assert entry is not None and entry.value_json == "41"
        assert cache.stats()["m:f"] == {"hits": 3, "misses": 1, "refreshes": 0, "entries": 1}
        cache.push_back("market", 200.0)
        assert cache.pushbacks(100.0) == {"market": 200.0}
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert indexes(conn) == ["entries_by_expiry"]
    conn.close()
    with SqliteCache(path) as again:  # opening a migrated file migrates nothing
        assert again.pushbacks(100.0) == {"market": 200.0}


def indexes(conn: sqlite3.Connection) -> list[str]:
    """The indexes plait made in the cache file (not SQLite's own)."""
    return [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"
        )
    ]


def test_version_2_file_drops_its_index_by_callable_and_keeps_its_data(tmp_path: Path) -> None:
    """Schema version 3: a miss writes no index by callable; clearing one callable still
    drops exactly its entries and counters."""
    path = tmp_path / "v2.sqlite3"
    make_v1_file(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE pushbacks (prefix TEXT PRIMARY KEY, until REAL NOT NULL) WITHOUT ROWID"
    )
    conn.execute("INSERT INTO entries VALUES ('k2', 'm:g', '7', 10.0, 9e9)")
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    with SqliteCache(path) as cache:
        assert cache.stats()["m:g"]["entries"] == 1
        assert cache.clear("m:f") == 1
        assert cache.lookup("k") is None
        entry = cache.lookup("k2")
        assert entry is not None and entry.value_json == "7"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    assert indexes(conn) == ["entries_by_expiry"]
    conn.close()


def test_new_file_has_no_index_by_callable(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    with SqliteCache(path) as cache:
        cache.store("k", "m:f", "1", 1.0, 2.0)
    conn = sqlite3.connect(path)
    assert indexes(conn) == ["entries_by_expiry"]
    conn.close()


def test_two_backends_migrate_one_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    make_v1_file(path)
    caches = [SqliteCache(path) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(caches))

    def open_it(cache: SqliteCache) -> None:
        try:
            start.wait()
            cache.open()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it, args=(c,)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    caches[0].push_back("a", 5.0)
    assert all(c.pushbacks(1.0) == {"a": 5.0} for c in caches)
    for c in caches:
        c.close()


def test_pushbacks_are_shared_and_pruned(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    with SqliteCache(path) as one, SqliteCache(path) as two:
        one.push_back("market", 200.0)
        two.push_back("weather", 300.0)
        assert one.pushbacks(100.0) == two.pushbacks(100.0) == {"market": 200.0, "weather": 300.0}
        assert one.prune(250.0) == 0
        assert two.pushbacks(0.0) == {"weather": 300.0}  # the ended one was dropped


# a plait cache whose last writer (a process that died without closing) bumped the schema:
# the new version is only in the -wal
BUMP_LEAVING_A_WAL = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint = 0")
conn.execute(f"PRAGMA user_version = {int(sys.argv[2])}")
conn.execute("INSERT INTO entries VALUES ('k', 'm:f', '1', 1.0, 2.0)")
os._exit(0)
"""


def test_newer_schema_in_the_wal_is_refused_and_the_wal_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SqliteCache(path):
        pass
    subprocess.run(
        [sys.executable, "-c", BUMP_LEAVING_A_WAL, str(path), str(SCHEMA_VERSION + 1)],
        check=True,
    )
    wal = path.with_name(path.name + "-wal")
    before = (sha256(path), sha256(wal))
    refused(path, f"schema version {SCHEMA_VERSION + 1}, newer")
    assert (sha256(path), sha256(wal)) == before


def test_cut_and_bit_flipped_copies_raise_only_store_errors(tmp_path: Path) -> None:
    sound = tmp_path / "sound.db"
    with SqliteCache(sound) as backend:
        for i in range(200):
            backend.store(f"k{i}", f"m:f{i % 3}", f'{{"v": "{"é" * 50}"}}', 1.0, 2.0)
    source = sound.read_bytes()
    rng = random.Random(1201)
    refused = 0
    for n in range(120):
        data = bytearray(source)
        if n % 3 == 0:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 24)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        copy = tmp_path / f"damaged-{n}.db"
        copy.write_bytes(bytes(data))
        backend = SqliteCache(copy)
        error = None
        try:
            for i in range(0, 200, 7):
                backend.lookup(f"k{i}")
            backend.stats()
            backend.prune(1.5)
        except StoreError as exc:
            error = exc
        finally:
            with contextlib.suppress(StoreError):
                backend.close()
        if error is not None:
            assert str(copy) in str(error)
            refused += 1
    assert refused > 40
