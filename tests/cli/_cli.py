"""What the CLI tests share by import (a module name no other test directory uses: the
``conftest`` module of whichever directory pytest imported first would shadow this one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: the event loop the console script runs on ($PLAIT_LOOP), the session's backend
BACKEND = os.environ.get("PLAIT_TEST_BACKEND", "asyncio")

#: the console script of the venv the tests run in
PLAIT = Path(sys.executable).with_name("plait")


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"<exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}>"
