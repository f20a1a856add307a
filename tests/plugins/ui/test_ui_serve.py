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

from plait_ui.server import free_port

PLAIT = Path(sys.executable).with_name("plait")


def test_ui_serves_the_store_until_interrupted(tmp_path: Path) -> None:
    store = tmp_path / "runs.sqlite3"
    ids = anyio.run(support.fill, store, backend=support.BACKEND)
    port = free_port()
    argv = [str(PLAIT), "--loop", support.BACKEND, "ui"]
    argv += ["--store", str(store), "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    page = answer.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
        assert ids["shop_failed"] in page
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"at http://127.0.0.1:{port}/ (read-only; Ctrl-C stops)" in out
