"""The ``events`` table's columns, defined once.

Everything the backend spells column by column is derived from :data:`EVENT_COLUMNS`:
the table's DDL (migration 1), the column list of every ``INSERT``, ``COPY`` and
``SELECT``, the ``unnest(%s::type[], …)`` casts of the array inserts, the bytes a row
frees (retention's estimate) and the two converters between a row and a
:class:`~eventvault.model.RecordedEvent`. Table order is the one order: the DDL, the
statements and the converters all use it, so a row read back is in the order it
was written.

Adding a column: append it with ``since=N`` and add migration N (``ALTER TABLE …
ADD COLUMN``, rendered with :func:`column_ddl`). Migration 1 renders only the
``since=1`` columns, so its text — which schemas created long ago have already
applied — never changes (a test pins its digest).

The converters are generated once, at import, from the column names (as
:mod:`dataclasses` and :func:`collections.namedtuple` generate theirs): a generic
loop over the columns costs three to five times as much per row, and these run
once per event appended or read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, LiteralString, NamedTuple

import msgspec
from psycopg import sql

from ...model import RecordedEvent

__all__ = [
    "EVENT_COLUMNS",
    "NAMES",
    "ROW_BYTES",
    "Column",
    "column_ddl",
    "column_list",
    "frozen",
    "from_row",
    "table_ddl",
    "to_row",
    "unnest_casts",
]


class Column(NamedTuple):
    """One column of ``events``, named as the :class:`RecordedEvent` field it stores."""

    name: LiteralString
    #: The type as written in DDL and in ``%s::type[]`` casts.
    sql_type: LiteralString
    nullable: bool = False
    #: ``COLLATE "C"``: byte order equals code-point order (what the other backends
    #: use) and ``LIKE 'prefix%'`` can use the btree indexes.
    collate_c: bool = False
    #: ``PRIMARY KEY``, ``UNIQUE`` or nothing (multi-column constraints are in the DDL).
    key: LiteralString = ""
    #: The migration that created the column (see the module docstring).
    since: int = 1


#: The events table, in table order. (Changing a ``since=1`` entry changes the
#: schema of new stores only — old ones keep theirs: add a migration instead.)
EVENT_COLUMNS: tuple[Column, ...] = (
    Column("position", "bigint", key="PRIMARY KEY"),
    Column("id", "uuid", key="UNIQUE"),
    Column("stream", "text", collate_c=True),
    Column("stream_revision", "bigint"),
    Column("type", "text", collate_c=True),
    Column("actor", "text", nullable=True, collate_c=True),
    Column("correlation_id", "text", nullable=True, collate_c=True),
    Column("causation_id", "text", nullable=True),
    Column("source", "text", nullable=True),
    Column("occurred_at", "timestamptz"),
    Column("recorded_at", "timestamptz"),
    Column("data", "jsonb"),
    Column("metadata", "jsonb"),
    Column("hash", "text"),
)

NAMES: tuple[str, ...] = tuple(c.name for c in EVENT_COLUMNS)
_BY_NAME = {c.name: c for c in EVENT_COLUMNS}

# The names reach SQL as text in the DDL and Python source in the converters below:
# only plain lower-case identifiers, checked here once.
for _c in EVENT_COLUMNS:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", _c.name) or not re.fullmatch(r"[a-z]+", _c.sql_type):
        raise AssertionError(f"bad column definition {_c!r}")


def column_ddl(column: Column) -> LiteralString:
    """``name type [COLLATE "C"] [NOT NULL] [key]``, aligned as migration 1 writes it."""
    parts: list[LiteralString] = []
    if column.collate_c:
        parts.append('COLLATE "C"')
    if not column.nullable and column.key != "PRIMARY KEY":  # (a primary key is NOT NULL)
        parts.append("NOT NULL")
    if column.key:
        parts.append(column.key)
    return f"{column.name:<16}{column.sql_type:<12}{' '.join(parts)}".rstrip()


def table_ddl(version: int) -> LiteralString:
    """The column lines of ``CREATE TABLE events`` as migration ``version`` wrote
    them: four spaces in, a comma after each."""
    return "".join(f"    {column_ddl(c)},\n" for c in EVENT_COLUMNS if c.since == version)


def column_list(names: Iterable[str] = NAMES) -> sql.Composed:
    """``"position", "id", …``: for INSERT, COPY and SELECT (every column by default)."""
    chosen = list(names)
    unknown = [n for n in chosen if n not in _BY_NAME]
    if unknown:
        raise ValueError(f"not columns of events: {unknown}")
    return sql.SQL(", ").join(map(sql.Identifier, chosen))


def frozen(statement: sql.Composable) -> sql.SQL:
    """``statement`` rendered to text once. Composing it into each statement again
    would quote every identifier again (a libpq call each: a third of the cost of
    building a read's SELECT); the quoting of these plain ASCII names (checked
    above) is the same on every connection."""
    return sql.SQL(statement.as_string(None))


def unnest_casts() -> sql.Composed:
    """``unnest(%s::bigint[], %s::uuid[], …)``: one array parameter per column, in
    the order :func:`to_row` gives the values (rows transposed into columns)."""
    casts = [sql.SQL(f"%s::{c.sql_type}[]") for c in EVENT_COLUMNS]
    return sql.SQL("unnest({})").format(sql.SQL(", ").join(casts))


_FIXED_BYTES = {"bigint": 8, "uuid": 16, "timestamptz": 8}
#: PostgreSQL's heap tuple header, padded.
_TUPLE_HEADER = 24


def _row_bytes() -> LiteralString:
    variable: list[LiteralString] = []
    fixed = _TUPLE_HEADER
    for c in EVENT_COLUMNS:
        if c.sql_type in _FIXED_BYTES:
            fixed += _FIXED_BYTES[c.sql_type]
        elif c.nullable:
            variable.append(f"coalesce(pg_column_size({c.name}), 0)")
        else:
            variable.append(f"pg_column_size({c.name})")
    return f"({' + '.join(variable)} + {fixed})"


#: Bytes a row frees, near enough: its variable-size columns as stored, plus the
#: fixed-size ones and the tuple header. (``pg_column_size(e.*)`` is within 3% but
#: costs twice as much: it builds the whole row.)
ROW_BYTES: LiteralString = _row_bytes()

_encode = msgspec.json.Encoder().encode


def _generate() -> tuple[
    Callable[[RecordedEvent], tuple[Any, ...]], Callable[[Sequence[Any]], RecordedEvent]
]:
    values = ", ".join(
        f"_encode(r.{c.name}).decode()" if c.sql_type == "jsonb" else f"r.{c.name}"
        for c in EVENT_COLUMNS
    )
    fields = ", ".join(f"{c.name}=row[{i}]" for i, c in enumerate(EVENT_COLUMNS))
    source = (
        f"def to_row(r):\n    return ({values},)\n"
        f"def from_row(row):\n    return RecordedEvent({fields})\n"
    )
    namespace: dict[str, Any] = {"_encode": _encode, "RecordedEvent": RecordedEvent}
    exec(compile(source, f"<{__name__} converters>", "exec"), namespace)
    to, back = namespace["to_row"], namespace["from_row"]
    to.__module__ = back.__module__ = __name__
    return to, back


#: A stored event as the values of :data:`EVENT_COLUMNS`, in table order (JSON
#: columns as text): an ``INSERT``'s or ``COPY``'s row.
to_row: Callable[[RecordedEvent], tuple[Any, ...]]
#: The event in a row selected with :func:`column_list` (every column, table order).
from_row: Callable[[Sequence[Any]], RecordedEvent]
to_row, from_row = _generate()
