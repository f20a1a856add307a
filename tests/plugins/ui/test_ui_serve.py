"""`plait ui` as a real process: Hypercorn serves the store until SIGINT, then exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import _ui_support as support
import anyio

from plait.triggers import Trigger
from plait_ui.server import free_port

PLAIT = Path(sys.executable).with_name("plait")


def get(proc: subprocess.Popen[str], url: str) -> str:
    """The page at ``url`` once the server ``proc`` answers."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return str(answer.read().decode())
        except OSError:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.1)


def serve(*args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    argv = [str(PLAIT), "--loop", support.BACKEND, "ui", *args, "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, port


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return out


def test_ui_serves_the_store_until_interrupted(tmp_path: Path) -> None:
    store = tmp_path / "runs.sqlite3"
    ids = anyio.run(support.fill, store, backend=support.BACKEND)
    proc, port = serve("--store", str(store))
    try:
        page = get(proc, f"http://127.0.0.1:{port}/")
        assert ids["shop_failed"] in page
    finally:
        out = stop(proc)
    assert f"at http://127.0.0.1:{port}/ (read-only; Ctrl-C stops)" in out


def test_ui_takes_its_stores_from_the_config_file(tmp_path: Path) -> None:
    store = tmp_path / "data" / "runs.sqlite3"
    store.parent.mkdir()
    ids = anyio.run(support.fill, store, backend=support.BACKEND)
    nightly = Trigger.schedule("nightly", "shop", "0 6 * * *")
    anyio.run(support.define, store, support.definition(nightly), backend=support.BACKEND)
    config = tmp_path / "plait.toml"
    config.write_text('[storage.provenance]\nbackend = "sqlite"\npath = "data/runs.sqlite3"\n')
    proc, port = serve("--config", str(config))
    try:
        runs = get(proc, f"http://127.0.0.1:{port}/")
        triggers = get(proc, f"http://127.0.0.1:{port}/triggers")
    finally:
        out = stop(proc)
    assert ids["shop_failed"] in runs
    assert 'data-trigger="nightly"' in triggers and "06:00:00" in triggers
    assert str(store) in out
