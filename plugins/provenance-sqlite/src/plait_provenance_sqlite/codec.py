"""The row codec: every column of the store named once, with the record field it holds.

(Internal to this plugin: it is a public module so that its tests can check it.)

A :class:`Table` declares its columns in on-disk order; everything positional is derived
from that one declaration when this module is imported: the SQL (column lists, parameter
numbers, the update and upsert clauses), the functions that turn a record into its row and
a row back into its record (compiled once, so a row costs one call and no per-field loop),
and the named positions other modules use (``NODES.at["status"]``). No other module of the
store subscripts a row by number.

Each column says how a later write of the same row treats it (:class:`Update`): a key, a
value replaced, a value kept when the later record has none, the value of the first
record, or a comma-separated JSON list the later write appends to (``history``, ``edges``).

Times are integer microseconds since the Unix epoch (UTC), see ``_schema``.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs

from plait.converter import dumps, loads
from plait.errors import ArgumentError, ArgumentTypeError
from plait.records import EdgeRecord, LogRecord, NodeRecord, NodeStatus, RunRecord, RunStatus
from plait_provenance_sqlite import _schema

__all__ = [
    "EDGES",
    "LOGS",
    "NOT_STORED",
    "NODES",
    "RUNS",
    "RUN_DATA",
    "RUN_MASK",
    "Column",
    "Kind",
    "Table",
    "Update",
    "dt",
    "edge_entry",
    "edge_row",
    "history_entry",
    "parse_list",
    "query_us",
    "us",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: ``row_no & RUN_MASK`` is an execution's place in its run's range of row numbers.
RUN_MASK: Final = (1 << _schema.RUN_SHIFT) - 1


# --------------------------------------------------------------------------- time
def us(moment: datetime) -> int:
    """Exact integer microseconds since the epoch of an aware datetime."""
    td = moment - _EPOCH
    return (td.days * 86_400 + td.seconds) * 1_000_000 + td.microseconds


def dt(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _dt_or_none(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def _loads_or_none(text: str | None) -> Any:
    return None if text is None else loads(text)


def query_us(value: datetime, name: str) -> int:
    """A query bound in microseconds; ``name`` is the parameter a naive datetime came in."""
    if not isinstance(value, datetime):
        raise ArgumentTypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ArgumentError(f"{name} must be a timezone-aware datetime, got naive {value!r}")
    return us(value)


# --------------------------------------------------------------------------- lists
#: the JSON string of every status a history entry holds
_STATUS_JSON: Final = {s.value: dumps(s.value) for s in (*NodeStatus, *RunStatus)}


def history_entry(status: str, at: int, attempt: int | None = None) -> str:
    """One entry of a ``history`` list: ``[status, at]`` for a node execution (its attempt
    is the row's), ``[status, at, attempt]`` for a run (one row holds all its attempts)."""
    # the JSON of the list, its items encoded one by one (``:d``: integers only)
    text = _STATUS_JSON.get(status)
    if text is None:
        text = dumps(status)
    if attempt is None:
        return f"[{text},{at:d}]"
    return f"[{text},{at:d},{attempt:d}]"


def edge_row(run_id: str, entry: Sequence[Any]) -> tuple[Any, ...]:
    return (run_id, *entry)


def parse_list(text: str) -> list[Any]:
    """The entries of a comma-separated JSON list column."""
    return loads(f"[{text}]") if text else []


# --------------------------------------------------------------------------- declaration
class Kind(enum.Enum):
    """How a column's value is stored; each kind has one encoding and one decoding."""

    PLAIN = "plain"  # as is (text, integer, real, NULL)
    ENUM = "enum"  # an enum's value
    FLAG = "flag"  # a bool as 0 or 1
    TIME = "time"  # a datetime as microseconds
    TIME_OR_NONE = "time?"
    JSON = "json"  # JSON-safe data as JSON text
    JSON_OR_NONE = "json?"
    LIST = "list"  # comma-separated JSON entries, not a record field


class Update(enum.Enum):
    """What a later write of the same row does to the column."""

    KEY = "key"  # identifies the row: never changes
    SET = "set"  # takes the later value
    KEEP_IF_NONE = "keep if none"  # takes the later value unless it is NULL
    FIRST = "first"  # keeps the value of the first write
    APPEND = "append"  # appends the later entries to a LIST column


@attrs.frozen
class Column:
    """One column: its name, the record field it holds (``None``: no field; ``field``
    defaults to the name), how it is stored and how a later write treats it.

    ``read=False`` marks a column written from a field but not read back into it (the
    field has its own column).
    """

    name: str
    kind: Kind = Kind.PLAIN
    update: Update = Update.SET
    field: str | None = attrs.field(default=attrs.Factory(lambda self: self.name, takes_self=True))
    read: bool = True


def _append(column: str, new: str) -> str:
    """The SQL value of a LIST column with the entries ``new`` appended."""
    return (
        f"{column} = CASE WHEN {new} = '' THEN {column} WHEN {column} = '' THEN {new} "
        f"ELSE {column} || ',' || {new} END"
    )


def _encoder(column: Column, moment: str | None) -> str:
    """The expression for the column's value in the generated row builder (record ``r``)."""
    attr = f"r.{column.field}"
    local = f"v_{column.name}"
    kind = column.kind
    if kind is Kind.ENUM:
        return f"{attr}.value"
    if kind is Kind.FLAG:
        return f"(1 if {attr} else 0)"
    if kind is Kind.TIME:
        return f"u_{column.field}"
    if kind is Kind.TIME_OR_NONE:
        # usually the same moment as the record's ``moment`` field: converted once
        same = f"u_{moment} if {local} is t_{moment} else " if moment else ""
        return f"(None if ({local} := {attr}) is None else {same}us({local}))"
    if kind is Kind.JSON:
        return f"dumps({attr})"
    if kind is Kind.JSON_OR_NONE:
        return f"(None if ({local} := {attr}) is None else dumps({local}))"
    return attr


_DECODERS: Final = {
    Kind.PLAIN: "{v}",
    Kind.FLAG: "bool({v})",
    Kind.TIME: "dt({v})",
    Kind.TIME_OR_NONE: "dt_or_none({v})",
    Kind.JSON: "loads({v})",
    Kind.JSON_OR_NONE: "loads_or_none({v})",
}


class Table:
    """A table's columns and everything derived from them (built once, at import).

    Rows as this store writes them hold the non-LIST columns in declared order, then the
    LIST columns; rows it reads hold the non-LIST columns (:attr:`select`).
    """

    def __init__(
        self,
        name: str,
        columns: Sequence[Column],
        *,
        record: type | None = None,
        enums: dict[str, type[enum.Enum]] | None = None,
        moment: str | None = None,
    ) -> None:
        self.name = name
        self.record = record
        values = [c for c in columns if c.kind is not Kind.LIST]
        lists = [c for c in columns if c.kind is Kind.LIST]
        self.columns: tuple[Column, ...] = (*values, *lists)
        self.lists: tuple[Column, ...] = tuple(lists)
        #: position of each column in a row
        self.at: dict[str, int] = {c.name: i for i, c in enumerate(self.columns)}
        self.names: str = ", ".join(c.name for c in self.columns)
        #: the columns a query selects to rebuild a record (a row of them: :meth:`decode`)
        self.select: str = ", ".join(c.name for c in values)
        self.keys: tuple[str, ...] = tuple(c.name for c in self.columns if c.update is Update.KEY)
        #: positions a later record leaves as they were: the first write's, and the ones
        #: it has nothing (NULL) for
        self.keep_first = tuple(self.at[c.name] for c in values if c.update is Update.FIRST)
        self.keep_if_none = tuple(
            self.at[c.name] for c in values if c.update is Update.KEEP_IF_NONE
        )
        self.stored_fields: frozenset[str] = frozenset(
            c.field for c in self.columns if c.field is not None
        )
        if record is not None:
            known = {f.name for f in attrs.fields(record)}
            unknown = sorted(self.stored_fields - known)
            if unknown:
                raise ValueError(
                    f"{name}: columns name fields {record.__name__} does not have: {unknown}"
                )
            self.encode: Callable[[Any], list[Any]] = self._compile_encoder(moment)
            self.decode: Callable[[Sequence[Any]], Any] = self._compile_decoder(enums or {})

    # ------------------------------------------------------------------ SQL
    def insert(self, verb: str = "INSERT") -> str:
        """``INSERT`` of a whole row, ``?`` parameters in row order."""
        marks = ", ".join("?" * len(self.columns))
        return f"{verb} INTO {self.name} ({self.names}) VALUES ({marks})"

    def upsert(self) -> str:
        """Insert a whole row; on a key conflict update it as each column's rule says."""
        sets = []
        for c in self.columns:
            new = f"excluded.{c.name}"
            if c.update is Update.SET:
                sets.append(f"{c.name} = {new}")
            elif c.update is Update.KEEP_IF_NONE:
                sets.append(f"{c.name} = ifnull({new}, {c.name})")
            elif c.update is Update.APPEND:
                sets.append(_append(c.name, new))
        return (
            f"{self.insert()} ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET {', '.join(sets)}"
        )

    def update_by_number(self, number: str) -> str:
        """``UPDATE`` of the row ``number = ?{n+1}`` from a whole row in ``?1..?n`` (the key
        columns are checked, not set)."""
        sets = []
        for i, c in enumerate(self.columns, 1):
            if c.update is Update.SET:
                sets.append(f"{c.name} = ?{i}")
            elif c.update is Update.KEEP_IF_NONE:
                sets.append(f"{c.name} = ifnull(?{i}, {c.name})")
            elif c.update is Update.APPEND:
                sets.append(_append(c.name, f"?{i}"))
        where = " AND ".join(f"?{self.at[k] + 1} = {k}" for k in self.keys)
        n = len(self.columns) + 1
        return f"UPDATE {self.name} SET {', '.join(sets)} WHERE {number} = ?{n} AND {where}"

    def insert_numbered(self, number: str) -> str:
        """``INSERT`` of a whole row in ``?1..?n`` as the next ``number`` of the range
        ``?{n+1}..?{n+2}`` (chosen inside the statement: two writers cannot collide)."""
        n = len(self.columns)
        low, high = f"?{n + 1}", f"?{n + 2}"
        marks = ", ".join(f"?{i}" for i in range(1, n + 1))
        return (
            f"INSERT INTO {self.name} ({number}, {self.names}) VALUES (ifnull((SELECT {number} "
            f"FROM {self.name} WHERE {number} BETWEEN {low} AND {high} "
            f"ORDER BY {number} DESC LIMIT 1) + 1, {low}), {marks})"
        )

    def getter(self, *names: str) -> Callable[[Sequence[Any]], Any]:
        """An ``itemgetter`` of the named columns of a row."""
        return operator.itemgetter(*(self.at[n] for n in names))

    # ------------------------------------------------------------------ codecs
    def entry_encoder(self, without: str) -> Callable[[Any], str]:
        """A function from a record to the JSON list of its row without the column
        ``without`` (the first one): an entry of another table's LIST column."""
        if self.at.get(without) != 0:
            raise ValueError(f"{self.name}: {without!r} is not the first column")
        encode: Callable[[Any], str] = self._compile_encoder(None, skip=without, wrap="dumps")
        return encode

    def _compile_encoder(
        self, moment: str | None, skip: str | None = None, wrap: str = ""
    ) -> Callable[[Any], Any]:
        values = [c for c in self.columns if c.kind is not Kind.LIST and c.name != skip]
        times = dict.fromkeys(c.field for c in values if c.kind is Kind.TIME)
        if moment is not None and moment not in times:
            raise ValueError(f"{self.name}: moment {moment!r} is not a TIME column's field")
        lines = ["def encode(r):"]
        for field in times:
            lines += [f"    t_{field} = r.{field}", f"    u_{field} = us(t_{field})"]
        items = ", ".join(_encoder(c, moment) for c in values)
        lines.append(f"    return {wrap}([{items}])")
        return self._compile("\n".join(lines), "encode")

    def _compile_decoder(self, enums: dict[str, type[enum.Enum]]) -> Callable[..., Any]:
        assert self.record is not None
        names: dict[str, Any] = {}
        args = []
        for i, c in enumerate(self.columns):
            if c.kind is Kind.LIST or c.field is None or not c.read:
                continue
            if c.kind is Kind.ENUM:
                names[f"E_{c.name}"] = enums[c.name]
                args.append(f"{c.field}=E_{c.name}(row[{i}])")
            else:
                args.append(f"{c.field}={_DECODERS[c.kind].format(v=f'row[{i}]')}")
        source = f"def decode(row):\n    return Record({', '.join(args)})"
        return self._compile(source, "decode", Record=self.record, **names)

    def _compile(self, source: str, name: str, **names: Any) -> Callable[..., Any]:
        namespace: dict[str, Any] = {
            "us": us,
            "dt": dt,
            "dt_or_none": _dt_or_none,
            "dumps": dumps,
            "loads": loads,
            "loads_or_none": _loads_or_none,
            **names,
        }
        exec(compile(source, f"<{self.name} {name}>", "exec"), namespace)
        function: Callable[..., Any] = namespace[name]
        function.__doc__ = f"Generated from the column declaration of {self.name!r}:\n{source}"
        return function


# --------------------------------------------------------------------------- the tables
RUNS: Final = Table(
    "runs",
    (
        Column("run_id", update=Update.KEY),
        Column("dag_nsref"),
        Column("status", Kind.ENUM),
        Column("started_at", Kind.TIME),
        Column("updated_at", Kind.TIME),
        Column("finished_at", Kind.TIME_OR_NONE),
        Column("source_inputs", Kind.JSON),
        Column("parent_run_id"),
        Column("replay_of"),
        Column("correlation_id"),
        Column("attempt"),
        Column("owner_pid"),
        Column("owner_host"),
        Column("owner_started"),  # schema version 4
        Column("failed_node"),
        Column("error_type"),
        Column("error_message"),
        Column("traceback"),
        Column("dag_ref"),  # schema version 5, with the next two
        Column("resumed_at", Kind.TIME_OR_NONE),
        Column("earlier_ms"),
        # [status, at, attempt] per status change (see history_entry)
        Column("history", Kind.LIST, Update.APPEND, field=None),
    ),
    record=RunRecord,
    enums={"status": RunStatus},
)

NODES: Final = Table(
    "node_executions",
    (
        Column("run_id", update=Update.KEY),
        Column("label", update=Update.KEY),
        Column("attempt", update=Update.KEY),
        Column("status", Kind.ENUM),
        Column("node_type"),
        # when the execution was first recorded
        Column("recorded_at", Kind.TIME, Update.FIRST, field="updated_at", read=False),
        Column("updated_at", Kind.TIME),
        # a later record of the same execution keeps what an earlier one knew (inputs,
        # start, placement)
        Column("inputs", Kind.JSON_OR_NONE, Update.KEEP_IF_NONE),
        Column("output", Kind.JSON_OR_NONE),
        Column("restorable", Kind.FLAG),
        Column("started_at", Kind.TIME_OR_NONE, Update.KEEP_IF_NONE),
        Column("finished_at", Kind.TIME_OR_NONE),
        Column("duration_ms"),
        Column("executor", update=Update.KEEP_IF_NONE),
        Column("host", update=Update.KEEP_IF_NONE),
        Column("pid", update=Update.KEEP_IF_NONE),
        Column("worker", update=Update.KEEP_IF_NONE),
        Column("error_type"),
        Column("error_message"),
        Column("traceback"),
        # [status, at] per status change (see history_entry)
        Column("history", Kind.LIST, Update.APPEND, field=None),
        # the edge traversals recorded with this execution: EDGE_ENTRY rows
        Column("edges", Kind.LIST, Update.APPEND, field=None),
    ),
    record=NodeRecord,
    enums={"status": NodeStatus},
    # a finished_at (or started_at) that is the record's updated_at is converted once
    moment="updated_at",
)

EDGES: Final = Table(
    "edge_traversals",
    (
        Column("run_id"),
        Column("upstream"),
        Column("upstream_attempt"),
        Column("downstream"),
        Column("downstream_attempt"),
        Column("parameter"),
        Column("traversed_at", Kind.TIME),
    ),
    record=EdgeRecord,
)

LOGS: Final = Table(
    "node_logs",
    (
        Column("run_id", update=Update.KEY),
        Column("label", update=Update.KEY),
        Column("seq", update=Update.KEY),
        Column("attempt"),
        Column("at", Kind.TIME),
        Column("level"),
        Column("logger"),
        Column("message"),
        Column("exc_text"),
    ),
    record=LogRecord,
)

RUN_DATA: Final = Table(
    "run_data",
    (
        Column("run_id", update=Update.KEY, field=None),
        Column("key", update=Update.KEY, field=None),
        Column("value", field=None),
        Column("updated_at", field=None),
    ),
)

#: An edge traversal kept in its execution's ``edges`` list: the JSON of its row without the
#: run id (the execution's); :func:`edge_row` makes the row again.
edge_entry: Final = EDGES.entry_encoder("run_id")

#: Record fields with no column of their own, and why (none today). A test checks that
#: every field of RunRecord, NodeRecord, EdgeRecord and LogRecord has a column or is listed
#: here.
NOT_STORED: Final[dict[type, dict[str, str]]] = {
    RunRecord: {},
    NodeRecord: {},
    EdgeRecord: {},
    LogRecord: {},
}
