"""The code in docs/how-to/caching.md runs, in order, against a private cache directory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plait.cache import close_backends

DOC = Path(__file__).parents[2] / "docs" / "how-to" / "caching.md"

pytest.importorskip("plait_cache_sqlite")


@pytest.fixture(autouse=True)
def _close_shared_backends() -> Iterator[None]:
    yield
    close_backends()


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


@pytest.mark.anyio
async def test_caching_how_to_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples' relative paths land here
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) == 8
    namespace: dict[str, Any] = {"__name__": "caching_doc"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec", dont_inherit=True), namespace)

    # the claims the prose makes about the examples
    from platformdirs import user_cache_dir

    assert (Path(user_cache_dir("plait")) / "cache.sqlite3").is_file()
    assert await namespace["fetch"]("https://example.org") == {"length": 19}
    assert namespace["fetch"].cache_info().misses == 1
    dag = namespace["dag"]
    first = await dag(n=10)
    second = await dag(n=10)
    assert first.outputs == second.outputs == {"total": 45}
    info = namespace["load"].cache_info()
    assert (info.misses, info.hits) == (1, 1)

    # pushback: raising CachePushback records it under the prefix it names
    from plait import CachePushback
    from plait.cache import pushbacks

    rate = namespace["ns"].fx.ecb.rate
    with pytest.raises(CachePushback):
        rate("XXX")  # nothing stored to serve: the caller sees it
    assert set(pushbacks()) == {"fx"}
    assert namespace["rate_of"].cache_info().hits == 2
    durable = namespace["durable"]
    assert durable.synchronous == "full"
    assert (tmp_path / "durable-cache.sqlite3").is_file()
