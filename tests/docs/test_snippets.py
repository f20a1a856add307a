"""Every ```python block of the documentation runs, file by file, blocks in order.

The blocks of one page share a namespace (a real module, so ``get_type_hints`` and cattrs
resolve annotations) and run in a temporary working directory under the suite's temporary
HOME. A block may use top-level ``await``: it then runs in an event loop of the suite's
anyio backend. ``--8<-- "path"`` lines (mkdocs snippet includes) are replaced by the file
they name. A block preceded by ``<!-- snippet: skip -->`` is not run (only when running it
is truly impossible; say why in the comment).
"""

from __future__ import annotations

import ast
import os
import re
import sys
import types
from pathlib import Path
from typing import Any

import anyio
import pytest

BACKEND = os.environ.get("PLAIT_TEST_BACKEND", "asyncio")
ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- snippet: skip[^>]*-->\s*)?^```python\n(.*?)^```", re.DOTALL | re.M)
INCLUDE = re.compile(r'^--8<-- "([^"]+)"\s*$', re.M)
CO_COROUTINE = 0x0080

#: Pages whose code a dedicated test runs (it needs worker processes or a cluster).
COVERED_ELSEWHERE = {
    "how-to/scaling-out.md": "tests/plugins/executors/test_scaling_out_doc.py",
    "how-to/configuration.md": "tests/docs/test_configuration_doc.py",
}

PAGES = sorted(
    p
    for p in DOCS.rglob("*.md")
    if "examples" not in p.relative_to(DOCS).parts
    and p.relative_to(DOCS).as_posix() not in COVERED_ELSEWHERE
)


def blocks(page: Path) -> list[tuple[int, str]]:
    text = page.read_text()
    out = []
    for match in BLOCK.finditer(text):
        if match.group(1):
            continue
        code = INCLUDE.sub(lambda m: (ROOT / m.group(1)).read_text(), match.group(2))
        out.append((text.count("\n", 0, match.start(2)) + 1, code))
    return out


def run_block(code: str, filename: str, namespace: dict[str, Any]) -> None:
    compiled = compile(code, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if compiled.co_flags & CO_COROUTINE:

        async def main() -> None:
            await eval(compiled, namespace)

        anyio.run(main, backend=BACKEND)
    else:
        exec(compiled, namespace)


def test_pages_are_found() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"index.md", "tutorial.md", "plugins/writing.md", "how-to/cli.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_snippets_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    name = "docs_" + re.sub(r"\W", "_", page.relative_to(DOCS).with_suffix("").as_posix())
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        for line, code in blocks(page):
            run_block(code, f"{page.relative_to(ROOT)}:{line}", module.__dict__)
    finally:
        del sys.modules[name]
        from plait import cache

        cache.close_backends()
