"""Bad input that used to corrupt a run's history or surface as a foreign error (issue 13):
wrongly typed source inputs, return types that changed before a restart, outputs that were
never stored, non-ASCII labels. Real SQLite files throughout."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait import Dag, DagPause, DagRunner, PlaitError, inline
from plait.errors import InputError, OutputNotStoredError, PlaitWarning, RestartError
from plait_provenance_sqlite import SqliteProvenance

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------------------- item 7
@inline
def square(x: int) -> int:
    return x * x


@inline
def stem(p: Path) -> str:
    return p.stem


@inline
def half(x: float) -> float:
    return x / 2


@pytest.mark.parametrize("bad", ["abc", "1", 1.5, [1]])
async def test_a_wrongly_typed_source_input_is_refused_before_anything_is_recorded(
    tmp_path: Path, bad: object
) -> None:
    dag = Dag("squares")
    dag.node(square)
    prov = SqliteProvenance(tmp_path / "prov.sqlite3")
    with pytest.raises(InputError) as info:
        await DagRunner(dag, provenance=prov).run({"square": {"x": bad}})
    message = str(info.value)
    assert "'square'" in message and "'x'" in message and "int" in message
    async with SqliteProvenance(tmp_path / "prov.sqlite3") as prov:
        assert await prov.list_runs() == []


async def test_an_input_that_converts_unchanged_is_passed_as_a_restart_would_pass_it(
    tmp_path: Path,
) -> None:
    seen: list[object] = []

    @inline
    def record(p: Path, x: float) -> str:
        seen.append((p, x))
        if len(seen) == 1:
            raise DagPause("first attempt")
        return p.stem

    dag = Dag("typed")
    dag.node(record)
    runner = DagRunner(dag, provenance=SqliteProvenance(tmp_path / "prov.sqlite3"))
    first = await runner.run({"record": {"p": "data/in.csv", "x": 2}})
    assert first.status == "paused"
    again = await runner.restart(first.run_id)
    assert again.outputs == {"record": "in"}
    assert seen == [(Path("data/in.csv"), 2.0), (Path("data/in.csv"), 2.0)]
    assert all(type(p) is type(Path()) and type(x) is float for p, x in seen)  # type: ignore[misc]


# ---------------------------------------------------------------------------- item 13
_USES: list[int] = []


def dag_returning(kind: type) -> Dag:
    """``make -> use``: ``make`` returns 1 annotated as ``kind``; ``use`` pauses on its
    first call (of the test) and returns ``repr`` of its argument afterwards."""
    calls = _USES

    def make() -> int:
        return 1

    make.__annotations__["return"] = kind

    def use(v: kind) -> str:  # type: ignore[valid-type]
        calls.append(1)
        if len(calls) == 1:
            raise DagPause("look first")
        return repr(v)

    dag = Dag("typed_chain")
    dag.node(inline(make)) >> dag.node(inline(use))
    return dag


@pytest.fixture(autouse=True)
def _fresh_uses() -> None:
    _USES.clear()


async def test_restart_refuses_a_stored_output_whose_return_type_changed(tmp_path: Path) -> None:
    path = tmp_path / "prov.sqlite3"
    paused = await DagRunner(dag_returning(int), provenance=SqliteProvenance(path)).run()
    assert paused.status == "paused"
    changed = DagRunner(dag_returning(str), provenance=SqliteProvenance(path))
    with pytest.raises(RestartError) as info:
        await changed.restart(paused.run_id)
    message = str(info.value)
    assert "'make'" in message and paused.run_id in message and "str" in message
    async with SqliteProvenance(path) as prov:  # untouched: the run can still be resumed
        assert (await prov.get_run(paused.run_id)).status == "paused"
    same = await DagRunner(dag_returning(int), provenance=SqliteProvenance(path)).restart(
        paused.run_id
    )
    assert same.outputs == {"use": "1"}


async def test_restart_accepts_a_widened_return_type(tmp_path: Path) -> None:
    path = tmp_path / "prov.sqlite3"
    paused = await DagRunner(dag_returning(int), provenance=SqliteProvenance(path)).run()
    widened = DagRunner(dag_returning(float), provenance=SqliteProvenance(path))
    assert (await widened.restart(paused.run_id)).outputs == {"use": "1.0"}


# ---------------------------------------------------------------------------- item 14
class Opaque:
    """No JSON form: its outputs are recorded as not restorable."""


async def test_get_node_output_as_type_of_an_output_not_stored_says_so(tmp_path: Path) -> None:
    @inline
    def opaque() -> Opaque:
        return Opaque()

    dag = Dag("opaque")
    dag.node(opaque)
    path = tmp_path / "prov.sqlite3"
    with pytest.warns(PlaitWarning):
        result = await DagRunner(dag, provenance=SqliteProvenance(path)).run()
    async with SqliteProvenance(path) as prov:
        plain = await prov.get_node_output(result.run_id, "opaque")
        assert (plain.output, plain.restorable) == (None, False)
        with pytest.raises(OutputNotStoredError) as info:
            await prov.get_node_output(result.run_id, "opaque", as_type=Opaque)
    assert isinstance(info.value, PlaitError | LookupError)
    assert result.run_id in str(info.value) and "'opaque'" in str(info.value)


# ---------------------------------------------------------------------------- item 12
async def test_non_ascii_labels_run_record_and_restart(tmp_path: Path) -> None:
    calls: list[str] = []

    @inline
    def café() -> int:
        return 3

    @inline
    def 节点(v: int) -> int:
        calls.append("节点")
        if len(calls) == 1:
            raise DagPause("once")
        return v + 1

    dag = Dag("données")
    dag.node(café) >> dag.node(节点)
    dag.node(节点, label="节点二")
    path = tmp_path / "prov.sqlite3"
    runner = DagRunner(dag, provenance=SqliteProvenance(path))
    first = await runner.run({"节点二": {"v": 1}})
    assert first.status == "paused"
    done = await runner.restart(first.run_id)
    assert done.outputs == {"节点": 4, "节点二": 2}
    async with SqliteProvenance(path) as prov:
        assert (await prov.get_node_output(done.run_id, "café", as_type=int)).output == 3
