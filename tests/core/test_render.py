"""Drawing DAGs (plait.render) and the module boundaries around it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from plait import Dag, NodeStatus, render


def make_int() -> int:
    return 1


def use_two(a: int, b: int) -> int:
    return a + b


def square(v: int) -> int:
    return v * v


def make_list() -> list[int]:
    return [1, 2]


def drawn() -> Dag:
    sub = Dag("sq")
    sub.node(square)
    dag = Dag('say "hi"')
    a = dag.node(make_int)
    b = dag.node(make_int, label="other")
    both = dag.node(use_two).bind(a=a, b=b)
    both.after(a)
    dag.node(make_list) >> dag.map(sub, label="each")
    return dag


def test_dag_methods_draw_what_render_draws() -> None:
    dag = drawn()
    statuses = {"make_int": "completed", "use_two": "failed"}
    assert dag.to_mermaid() == render.to_mermaid(dag)
    assert dag.to_mermaid(statuses) == render.to_mermaid(dag, statuses)
    assert dag.to_dot(statuses) == render.to_dot(dag, statuses)


def test_mermaid_shapes_edges_and_statuses() -> None:
    text = render.to_mermaid(drawn(), {"use_two": NodeStatus.FAILED, "ghost": "completed"})
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    n0["make_int"]' in lines and '    n4[["each"]]' in lines  # a map: subroutine
    assert "    n0 -->|a| n2" in lines and "    n1 -->|b| n2" in lines  # bound: labelled
    assert "    n0 -.-> n2" in lines  # ordering only: dotted
    assert "    n3 --> n4" in lines
    assert f"    classDef failed fill:{render.STATUS_COLOURS['failed']}" in lines
    assert "    class n2 failed" in lines
    assert not any("ghost" in line for line in lines)  # a status for no node is left out


def test_dot_quotes_labels_and_fills_by_status() -> None:
    text = render.to_dot(drawn(), {"make_int": "completed", "other": "no-such-status"})
    assert text.startswith('digraph "say \\"hi\\"" {\n    rankdir=TB;\n')
    colour = render.STATUS_COLOURS["completed"]
    assert f'    "make_int" [shape=box, style=filled, fillcolor="{colour}"];' in text
    assert '    "other" [shape=box, style=filled, fillcolor="#ffffff"];' in text
    assert '    "each" [shape=box3d];' in text
    assert '    "make_int" -> "use_two" [label="a"];' in text
    assert '    "make_int" -> "use_two" [style=dashed];' in text
    assert text.endswith("}\n")


def test_every_node_status_has_a_colour_and_the_table_is_read_only() -> None:
    assert set(render.STATUS_COLOURS) == {s.value for s in NodeStatus}
    assert all(c.startswith("#") and len(c) == 7 for c in render.STATUS_COLOURS.values())
    with pytest.raises(TypeError):
        render.STATUS_COLOURS["completed"] = "#000000"  # type: ignore[index]


def _sources(module: str) -> list[Path]:
    origin = Path(importlib.import_module(module).__file__ or "")
    return sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]


@pytest.mark.parametrize(
    "module", ["plait.cli", "plait.dag", "plait._plan", "plait._wiring", "plait.render"]
)
def test_module_imports_no_private_name_of_another_plait_module(module: str) -> None:
    crossing = [
        f"{path.name}:{node.lineno}: from {node.module} import {alias.name}"
        for path in _sources(module)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("plait")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert crossing == []
