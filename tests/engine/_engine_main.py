"""An engine process for the process tests: ``python _engine_main.py DB TRIGGERS_JSON``.

Triggers come as a JSON list of ``Trigger.to_dict`` tables; the engine serves until SIGTERM
or SIGINT, then exits 0.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from plait.engine import Engine, serve_until_signalled
from plait.triggers import Trigger
from plait_provenance_sqlite import SqliteProvenance
from plait_provenance_sqlite.triggers import SqliteTriggerStore


def main() -> None:
    db, spec = sys.argv[1], json.loads(sys.argv[2])
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {os.getpid()} %(message)s")
    engine = Engine(
        [Trigger.from_dict(table) for table in spec],
        store=SqliteTriggerStore(db),
        provenance=SqliteProvenance(db),
        grace_period=float(os.environ.get("PLAIT_TEST_GRACE", "5")),
        poll_interval=0.2,
    )
    anyio.run(
        serve_until_signalled, engine, backend=os.environ.get("PLAIT_TEST_BACKEND", "asyncio")
    )


if __name__ == "__main__":
    main()
