"""Fixed costs measured in fresh interpreters: ``import plait``, ``plait --version``, and the
peak memory of building and running a long chain. Each is the median of ``reps`` runs of a
new process (``python bench/startup_memory.py`` prints them as JSON)."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent

#: Python source defining ``peak_rss_kb()`` in a measuring child process: its own peak RSS
#: in kB, VmHWM. Not ru_maxrss: Linux keeps the largest RSS the process had before exec too,
#: so a child of a big parent (run.py after its cases) would report the parent's size.
PEAK_RSS_SOURCE = """
def peak_rss_kb():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):  # no /proc: the best the platform tells
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

_CHAIN_PEAK = """
import sys
sys.path.insert(0, {bench!r})
import anyio
import plait_cases as pc
from plait import DagRunner
{peak_rss}
n = {n}
dag = pc.build_chain(n)
dag.plan()

async def main():
    result = await DagRunner(dag).run(source_inputs={{"n0": {{"x": 0}}}})
    assert result.outputs[f"n{{n - 1}}"] == n - 1, result.outputs

anyio.run(main)
print(peak_rss_kb())
"""


def import_ms(reps: int = 9) -> float:
    """``python -X importtime -c "import plait"``: the cumulative time it reports for plait."""
    times = []
    for _ in range(reps):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import plait"],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        line = next(ln for ln in out.splitlines() if re.search(r"\|\s*plait\s*$", ln))
        times.append(int(line.split("|")[1]) / 1000)
    return statistics.median(times)


def version_wall_s(reps: int = 9) -> float:
    """Wall time of the ``plait --version`` console script (it must print the version)."""
    script = shutil.which("plait", path=str(Path(sys.executable).parent)) or "plait"
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t0)
        assert "plait, version" in out.stdout, out
    return statistics.median(times)


def chain_peak_rss_mb(n: int = 100_000, reps: int = 3) -> float:
    """Peak RSS (MB) of a process that builds an ``n``-node chain and runs it once."""
    code = _CHAIN_PEAK.format(bench=str(BENCH_DIR), n=n, peak_rss=PEAK_RSS_SOURCE)
    peaks = [
        int(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        / 1024
        for _ in range(reps)
    ]
    return statistics.median(peaks)


def measure(quick: bool = False) -> dict[str, Any]:
    reps = 3 if quick else 9
    n = 10_000 if quick else 100_000
    return {
        "import_ms": import_ms(reps),
        "version_wall_s": version_wall_s(reps),
        "chain_peak_n": n,
        "chain_peak_rss_mb": chain_peak_rss_mb(n, 1 if quick else 3),
    }


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv), indent=2))
