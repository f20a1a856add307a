"""A store filled by real runs, and an ASGI client on the UI app over it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import _ui_support as support
import anyio
import httpx
import pytest

from plait_provenance_sqlite import SqliteProvenance
from plait_ui import UiConfig


@pytest.fixture(scope="session")
def filled(tmp_path_factory: pytest.TempPathFactory) -> support.Filled:
    """One store for read-only tests: a completed run, a failed map run, a ``<script>``."""
    path = tmp_path_factory.mktemp("ui") / "runs.sqlite3"
    ids = anyio.run(support.fill, path, backend=support.BACKEND)
    return support.Filled(path=path, ids=ids)


@pytest.fixture
async def client(filled: support.Filled) -> AsyncIterator[httpx.AsyncClient]:
    async with support.app_client(UiConfig(provenance=SqliteProvenance(filled.path))) as http:
        yield http
