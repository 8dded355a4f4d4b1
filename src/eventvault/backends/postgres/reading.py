"""The PostgreSQL read path: queries shaped for the indexes, get, head, stats."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import sql

from ...errors import CorruptionError
from ...model import Query, RecordedEvent, StoreStats
from . import columns as _columns
from .connection import Connected

__all__ = ["ReadPath"]

_MAX_POSITION = 2**63 - 1
#: A stored event from its row (table order): generated from :mod:`.columns`.
_record = _columns.from_row


def _like_prefix(pattern: str) -> str:
    """``task.*`` -> ``task.%`` with LIKE's own wildcards escaped."""
    body = pattern[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return body + "%"


class ReadPath(Connected):
    """Reads of :class:`~.store.PostgresBackend`."""

    def read(self, query: Query, limit: int) -> list[RecordedEvent]:
        """One SELECT, shaped so the planner can walk an index in position order.

        ``ORDER BY position LIMIT n`` with ``col = ANY(array)`` tempts PostgreSQL to
        scan the primary key and filter — fine when matches are spread out, a
        half-table scan when they cluster (a run's events do). So a filter with one
        value is written ``col = %s`` (the ``(col, position)`` index then yields rows in
        order), and with several values the query is split into one ordered, limited
        branch per value, merged by ``UNION ALL`` (values of one column are disjoint).
        """
        common: list[tuple[sql.Composable, list[Any]]] = []
        if query.after is not None:
            common.append((sql.SQL("position > %s"), [query.after]))
        if query.before is not None:
            common.append((sql.SQL("position < %s"), [query.before]))
        # recorded_at never decreases with position, so a time bound is a position
        # bound: one index probe (an InitPlan), then position-ordered index scans.
        for bound, value in ((">=", query.since), ("<", query.until)):
            if value is not None:
                probe = self._q(
                    f"position {bound} coalesce((SELECT position FROM {{s}}.events WHERE "
                    f"recorded_at >= %s ORDER BY recorded_at, position LIMIT 1), {_MAX_POSITION})"
                )
                common.append((probe, [value]))
        exact: dict[str, list[str]] = {}
        if query.types and "*" not in query.types:
            patterns = [t for t in query.types if t.endswith("*")]
            if patterns:  # patterns may overlap exact names: an OR, never a branch
                ors = [(sql.SQL("type LIKE %s"), _like_prefix(p)) for p in patterns]
                ors += [(sql.SQL("type = %s"), t) for t in query.types if not t.endswith("*")]
                common.append(
                    (
                        sql.SQL("(") + sql.SQL(" OR ").join(c for c, _ in ors) + sql.SQL(")"),
                        [v for _, v in ors],
                    )
                )
            else:
                exact["type"] = list(query.types)
        for column, values in (
            ("correlation_id", query.correlation_ids),
            ("causation_id", query.causation_ids),
            ("stream", query.streams),
            ("actor", query.actors),
        ):
            if values:
                exact[column] = list(values)
        # Branch on the multi-valued column with the fewest values; others use ANY.
        multi = sorted((len(v), c) for c, v in exact.items() if len(v) > 1)
        split = multi[0][1] if multi else None
        for column, values in exact.items():
            if column == split:
                continue
            ident = sql.Identifier(column)
            if len(values) == 1:
                common.append((sql.SQL("{} = %s").format(ident), [values[0]]))
            else:
                common.append((sql.SQL("{} = ANY(%s)").format(ident), [values]))
        order = sql.SQL("DESC" if query.reverse else "ASC")
        select = self._q("SELECT {columns} FROM {s}.events")

        def branch(extra: list[tuple[sql.Composable, list[Any]]]) -> tuple[sql.Composed, list[Any]]:
            conds = common + extra
            text = select
            if conds:
                text = text + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(c for c, _ in conds)
            text = text + sql.SQL(" ORDER BY position {} LIMIT %s").format(order)
            return text, [p for _, ps in conds for p in ps] + [limit]

        if split is None:
            statement, params = branch([])
        else:
            parts = [
                branch([(sql.SQL("{} = %s").format(sql.Identifier(split)), [value])])
                for value in exact[split]
            ]
            statement = (
                sql.SQL("SELECT * FROM (")
                + sql.SQL(" UNION ALL ").join(sql.SQL("(") + t + sql.SQL(")") for t, _ in parts)
                + sql.SQL(") AS branches ORDER BY position {} LIMIT %s").format(order)
            )
            params = [p for _, ps in parts for p in ps] + [limit]
        return list(map(_record, self._query("reading", statement, params)))

    def get(self, event_id: UUID) -> RecordedEvent | None:
        rows = self._query("reading", self._sql["by_id"], (event_id,))
        return _record(rows[0]) if rows else None

    def head(self) -> int:
        rows = self._query("reading the head", self._sql["head"])
        return int(rows[0][0]) if rows else 0

    def head_state(self) -> tuple[int, str | None] | None:
        rows = self._query("reading the head", self._q("SELECT position, hash FROM {s}.head"))
        if not rows:
            raise CorruptionError(f"schema {self.schema!r} has no head row (was it deleted?)")
        position, digest = rows[0]
        return (int(position), digest)

    def stats(self) -> StoreStats:
        (row,) = self._query(
            "reading stats",
            self._q(
                "SELECT (SELECT position FROM {s}.head), count(*), min(position), "
                "count(DISTINCT stream), min(recorded_at), max(recorded_at), "
                "pg_total_relation_size(to_regclass(quote_ident(%s) || '.events')) "
                "FROM {s}.events"
            ),
            (self.schema,),
        )
        return StoreStats(
            backend=self.name,
            events=row[1],
            head_position=row[0],
            first_position=row[2],
            streams=row[3],
            oldest_recorded_at=row[4],
            newest_recorded_at=row[5],
            size_bytes=row[6],
            details={"schema": self.schema, "dsn": self._safe_dsn()},
        )
