"""docs/how-to/configuration.md runs in a copy of docs/examples/config (its state files are
written beside the copy, never into the repository)."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest
from test_snippets import COVERED_ELSEWHERE, DOCS, ROOT, blocks, run_block

PAGE = DOCS / "how-to" / "configuration.md"
EXAMPLE = DOCS / "examples" / "config"


def test_the_page_is_run_here() -> None:
    assert COVERED_ELSEWHERE["how-to/configuration.md"] == "tests/docs/test_configuration_doc.py"


def test_the_page_runs_in_the_example_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", list(sys.path))
    module = types.ModuleType("docs_how_to_configuration")
    sys.modules[module.__name__] = module
    try:
        for line, code in blocks(PAGE):
            run_block(code, f"{PAGE.relative_to(ROOT)}:{line}", module.__dict__)
    finally:
        del sys.modules[module.__name__]
        sys.modules.pop("weather", None)
        from plait import cache

        cache.close_backends()
    out = capsys.readouterr().out
    # the text block of the page shows these lines; keep them true
    shown = PAGE.read_text().split("```text\n", 1)[1].split("```", 1)[0]
    for expected in shown.splitlines():
        head = expected.split("...", 1)[0]
        assert any(line.startswith(head) for line in out.splitlines()), (expected, out)
    assert "completed low 37.4°F, high 41.9°F" in out
    assert (project / "state" / "runs.sqlite3").exists()
    assert (project / "state" / "cache.sqlite3").exists()
