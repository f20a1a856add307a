"""The suite itself runs against the built wheels, not against the source tree.

`nox -s tests` builds a wheel of every package, installs those wheels and names their
folder in PLAIT_WHEELS_DIR. Each installed plait distribution must then be exactly the
wheel's content (same files, same hashes) and import from site-packages.
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import os
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
WHEELS = os.environ.get("PLAIT_WHEELS_DIR")

pytestmark = pytest.mark.skipif(not WHEELS, reason="PLAIT_WHEELS_DIR is set by `nox -s tests`")


def wheel_hashes(wheel: Path) -> tuple[str, dict[str, str]]:
    with zipfile.ZipFile(wheel) as archive:
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        rows = csv.reader(io.StringIO(archive.read(record).decode()))
        name = record.split("-")[0]
        return name, {
            path: digest for path, digest, _ in rows if digest and ".dist-info/" not in path
        }


def test_every_first_party_wheel_is_what_is_installed() -> None:
    wheels = sorted(Path(str(WHEELS)).glob("*.whl"))
    names = {wheel_hashes(w)[0] for w in wheels}
    assert {"plait", "plait_executors", "plait_provenance_sqlite", "plait_cache_sqlite"} <= names
    for wheel in wheels:
        name, expected = wheel_hashes(wheel)
        dist = importlib.metadata.distribution(name)
        assert "editable" not in (dist.read_text("direct_url.json") or ""), name
        installed = {str(f): f.hash.value for f in dist.files or () if f.hash}
        for path, digest in expected.items():
            assert installed.get(path) == digest.removeprefix("sha256="), f"{name}: {path}"


def test_plait_imports_from_the_installed_wheel() -> None:
    import plait

    origin = Path(plait.__file__).resolve()
    assert "site-packages" in origin.parts
    assert not origin.is_relative_to(ROOT / "core")
