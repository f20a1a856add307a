"""The tutorial's pictures are the real thing.

Each ```mermaid block preceded by ``<!-- dag: NAME -->`` must be exactly what
``NAME.to_mermaid()`` prints for the DAG the tutorial's code builds under that name, so a
change of the DAGs or of the renderer cannot leave a stale picture behind.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import types
from pathlib import Path

import pytest
from test_snippets import DOCS, ROOT, blocks, run_block

from plait import Dag, cache

PICTURE = re.compile(r"^<!-- dag: (\w+) -->\n```mermaid\n(.*?)^```", re.DOTALL | re.M)
PAGES = ["tutorial.md"]


@pytest.mark.parametrize("page_name", PAGES)
def test_pictures_match_the_dags(
    page_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = DOCS / page_name
    pictures = PICTURE.findall(page.read_text())
    assert pictures, f"{page_name} has no <!-- dag: NAME --> picture"
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("docs_pictures")
    sys.modules[module.__name__] = module
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for line, code in blocks(page):
                run_block(code, f"{page.relative_to(ROOT)}:{line}", module.__dict__)
    finally:
        del sys.modules[module.__name__]
        cache.close_backends()
    for name, shown in pictures:
        dag = module.__dict__.get(name)
        assert isinstance(dag, Dag), f"{page_name}: no Dag named {name!r} in the page's code"
        drawn = dag.to_mermaid()
        assert shown.strip() == drawn.strip(), (
            f"{page_name}: the picture of {name!r} is stale; the DAG draws:\n{drawn}"
        )
