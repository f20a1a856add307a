"""Suite-wide fixtures. The anyio backend comes from PLAIT_TEST_BACKEND (nox runs both)."""

from __future__ import annotations

import os
from typing import Any

import pytest

BACKEND = os.environ.get("PLAIT_TEST_BACKEND", "asyncio")


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    if BACKEND == "asyncio":
        return ("asyncio", {"debug": True})
    return (BACKEND, {})


@pytest.fixture
def host():  # type: ignore[no-untyped-def]
    """A fresh plugin host per test (entry points from installed metadata)."""
    from plait.plugins import PluginHost

    return PluginHost()


@pytest.fixture(autouse=True)
def _isolated_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep default provenance/cache files out of the real home directory."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("PLAIT_STRICT_PLUGINS", "1")
