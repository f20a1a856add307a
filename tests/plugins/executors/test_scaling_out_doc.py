"""docs/how-to/scaling-out.md: the pipeline script runs as written; every snippet compiles."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).parents[3] / "docs" / "how-to" / "scaling-out.md"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process")]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_every_snippet_compiles() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 4
    for i, block in enumerate(blocks):
        compile(block, f"{DOC.name} block {i}", "exec")


def test_pipeline_script_runs_in_worker_processes(tmp_path: Path) -> None:
    script = tmp_path / "pipeline.py"
    script.write_text(python_blocks()[0])
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = [sum(i * i % 7 for i in range(n)) for n in (100_000, 150_000, 200_000, 250_000)]
    assert done.stdout.strip() == f"crunched: {expected}"
