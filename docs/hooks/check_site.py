"""mkdocs hook: after the build, check that the reference holds what a user looks up.

`mkdocs build --strict` (the `docs` nox session, run by CI) fails when:

- a field of a record or an attrs class of the reference, or a member of a status enum,
  has no entry (an anchor with its full dotted name) on its reference page;
- a public class of a first-party plugin package is missing from the plugin reference;
- a page still shows a Sphinx role (``:class:``), a docstring section left as text, or a
  signature cut off with an ellipsis;
- the command-line reference misses a `plait` command;
- the site does not ship its own copy of mermaid (diagrams must render offline), or a page
  with a diagram lacks the `mermaid` block mermaid renders.
"""

from __future__ import annotations

import enum
import importlib
import re
from pathlib import Path
from typing import Any

import attrs
from mkdocs.exceptions import PluginError

#: page (relative to the site) -> the classes whose every field or member it must show
FIELDS = {
    "reference/records/index.html": [
        "plait.records.RunRecord",
        "plait.records.NodeRecord",
        "plait.records.EdgeRecord",
        "plait.records.RunStatus",
        "plait.records.NodeStatus",
        "plait.records.StatusChange",
        "plait.records.MapProgress",
        "plait.records.BackendInfo",
        "plait.records.PluginInfo",
        "plait.records.CacheStats",
    ],
    "reference/api/index.html": ["plait.DagRunResult"],
}
PLUGIN_CLASSES = {
    "reference/plugins/index.html": [
        "plait_provenance_sqlite.SqliteProvenance",
        "plait_provenance_sqlite.NodeOutput",
        "plait_cache_sqlite.SqliteCache",
        "plait_executors.InlineExecutor",
        "plait_executors.ThreadExecutor",
        "plait_executors.ProcessExecutor",
        "plait_dask.DaskExecutor",
    ],
}
QUERIES = ["lineage", "status_history", "list_runs", "get_node_executions", "purge"]
ROLE = re.compile(r":(class|func|meth|mod|attr|exc|data):`")
CUT_SIGNATURE = re.compile(r'class="doc-signature[^"]*"[^>]*>(?:(?!</div>).)*?\.\.\.\s*\)', re.S)


def members(path: str) -> list[str]:
    module, _, name = path.rpartition(".")
    cls: Any = getattr(importlib.import_module(module), name)
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        return [m.name for m in cls]
    return [f.name for f in attrs.fields(cls)]


def anchors(html: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html))


def problems(site: Path) -> list[str]:
    found = []
    for page, classes in FIELDS.items():
        ids = anchors((site / page).read_text())
        for path in classes:
            found += [
                f"{page}: no entry for {path}.{m}"
                for m in members(path)
                if f"{path}.{m}" not in ids
            ]
    for page, classes in PLUGIN_CLASSES.items():
        ids = anchors((site / page).read_text())
        found += [f"{page}: no entry for {path}" for path in classes if path not in ids]
        store = "plait_provenance_sqlite.SqliteProvenance"
        found += [f"{page}: no entry for {store}.{q}" for q in QUERIES if f"{store}.{q}" not in ids]
    for html in sorted(site.rglob("*.html")):
        text = html.read_text()
        name = html.relative_to(site)
        if ROLE.search(re.sub(r"<(pre|code)\b.*?</\1>", "", text, flags=re.S)):
            found.append(f"{name}: a Sphinx role is shown literally")
        if "<p>Args:" in text:
            found.append(f"{name}: a docstring section is shown as text, not parsed")
        if CUT_SIGNATURE.search(text):
            found.append(f"{name}: a signature is cut off with '...'")
        if "```mermaid" in text or ('class="language-mermaid"' in text):
            found.append(f"{name}: a mermaid block is shown as code, not drawn")
    return found


def cli_problems(site: Path) -> list[str]:
    from plait.cli import cli

    text = (site / "reference/cli/index.html").read_text()
    return [
        f"reference/cli: no section for `plait {name}`"
        for name in cli.commands
        if f"plait {name}" not in text
    ]


def on_post_build(config: Any, **kwargs: Any) -> None:
    site = Path(config["site_dir"])
    found = problems(site) + cli_problems(site)
    if not (site / "assets/javascripts/mermaid.min.js").is_file():
        found.append("assets/javascripts/mermaid.min.js is not in the site")
    if found:
        raise PluginError("the reference misses what a user looks up:\n  " + "\n  ".join(found))
