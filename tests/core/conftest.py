from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _recorder import Recorder

from plait.plugins import PluginHost


@pytest.fixture
def recorder(host: PluginHost) -> Recorder:
    rec = Recorder()
    host.register(rec, name="recorder")
    return rec
