"""Retention on PostgreSQL: plans computed in SQL, removal through ``retention_delete``.

A plan needs, per group, the cut (older than ``max_age``: one probe of the
``(recorded_at, position)`` index; beyond ``max_count``: a backward walk of the
primary key) and a summary of what goes (one scan up to the highest cut). The
group of a row is a ``CASE`` over the rules, first match wins — the same
decision :meth:`Policy.group_of` makes.

Removal calls the schema's ``retention_delete`` function in bounded batches,
newest runs first, one transaction each. The function checks every range against
the runs the receipt names, so not even a buggy caller can remove more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from psycopg import sql

from ...model import RecordedEvent
from ...retention import RECEIPT_TYPE, Policy
from ...retention.plan import GroupPlan
from ...retention.receipts import Run
from .columns import ROW_BYTES

__all__ = ["BATCH", "group_expression", "plan_groups", "removal_batches"]

#: Events one ``retention_delete`` call removes at most (one transaction).
BATCH = 5000

#: Bytes a row frees, near enough (derived from the columns: see :mod:`.columns`).
_ROW_BYTES = ROW_BYTES

Query = Callable[[str, Any, Sequence[Any]], list[tuple[Any, ...]]]


def group_expression(policy: Policy) -> sql.Composed:
    """``CASE … END``: a row's group id (NULL: kept forever), first rule first."""
    whens: list[sql.Composable] = [
        sql.SQL("WHEN type = {} THEN NULL").format(sql.Literal(RECEIPT_TYPE))
    ]
    for i, rule in enumerate(policy.rules):
        conds: list[sql.Composable] = []
        if rule.types:
            exact = [t for t in rule.types if not t.endswith("*")]
            alts: list[sql.Composable] = []
            if exact:
                alts.append(sql.SQL("type = ANY({})").format(sql.Literal(exact)))
            alts += [
                sql.SQL("starts_with(type, {})").format(sql.Literal(t[:-1]))
                for t in rule.types
                if t.endswith("*")
            ]
            conds.append(sql.SQL("({})").format(sql.SQL(" OR ").join(alts)))
        if rule.streams:
            conds.append(sql.SQL("stream = ANY({})").format(sql.Literal(list(rule.streams))))
        result = sql.Literal(i) if rule.window is not None else sql.SQL("NULL")
        whens.append(sql.SQL("WHEN {} THEN {}").format(sql.SQL(" AND ").join(conds), result))
    default = sql.Literal(len(policy.rules)) if policy.default is not None else sql.SQL("NULL")
    return sql.SQL("(CASE {} ELSE {} END)").format(sql.SQL(" ").join(whens), default)


def plan_groups(
    schema: sql.Identifier, query: Query, policy: Policy, now: datetime, limit: int
) -> list[GroupPlan]:
    gid = group_expression(policy)
    cuts: dict[int, int] = {}
    for g, _name, window in policy.groups:
        cut = 0
        if window.max_age is not None:
            rows = query(
                "planning retention",
                sql.SQL("SELECT max(position) FROM {}.events WHERE recorded_at < %s").format(
                    schema
                ),
                (now - window.max_age,),
            )
            cut = rows[0][0] or 0
        if window.max_count is not None:
            rows = query(
                "planning retention",
                sql.SQL(
                    "SELECT position FROM {}.events WHERE {} = %s "
                    "ORDER BY position DESC OFFSET %s LIMIT 1"
                ).format(schema, gid),
                (g, window.max_count),
            )
            if rows:
                cut = max(cut, rows[0][0])
        cut = min(cut, limit)
        if cut:
            cuts[g] = cut
    found: dict[int, tuple[Any, ...]] = {}
    if cuts:
        per_group = sql.SQL("CASE g {} END").format(
            sql.SQL(" ").join(
                sql.SQL("WHEN {} THEN {}").format(sql.Literal(g), sql.Literal(c))
                for g, c in cuts.items()
            )
        )
        rows = query(
            "planning retention",
            sql.SQL(
                "SELECT g, count(*), min(position), max(position), min(recorded_at), "
                "max(recorded_at), sum(size) FROM (SELECT position, recorded_at, "
                f"{_ROW_BYTES} AS size, {{gid}} AS g FROM {{s}}.events e "
                "WHERE position <= %s) x WHERE position <= {per_group} GROUP BY g"
            ).format(gid=gid, s=schema, per_group=per_group),
            (max(cuts.values()),),
        )
        found = {row[0]: row for row in rows}
    out = []
    for g, name, _window in policy.groups:
        describe = policy.describe_group(g)
        row = found.get(g)
        if row is None:
            out.append(GroupPlan(rule=name, description=describe, cut=None, count=0, bytes=0))
            continue
        out.append(
            GroupPlan(
                rule=name,
                description=describe,
                cut=cuts[g],
                count=row[1],
                first_position=row[2],
                last_position=row[3],
                oldest=row[4],
                newest=row[5],
                bytes=int(row[6]),
            )
        )
    return out


def removal_batches(
    runs: Sequence[Run], receipts: Sequence[RecordedEvent], batch: int = BATCH
) -> list[tuple[int, list[tuple[int, int, int, int]]]]:
    """``(receipt position, [(run first, run last, lo, hi), …])`` per call, newest
    first; each call removes at most ``batch`` positions."""
    owner: dict[tuple[int, int], int] = {}
    for receipt in receipts:
        for run in receipt.data.get("runs", []):
            owner[(run[0], run[1])] = receipt.position
    batches: list[tuple[int, list[tuple[int, int, int, int]]]] = []
    current: list[tuple[int, int, int, int]] = []
    current_owner = -1
    room = batch
    for run in sorted(runs, key=lambda r: r.first, reverse=True):
        who = owner[(run.first, run.last)]
        hi = run.last
        while hi >= run.first:
            if who != current_owner or room == 0:
                if current:
                    batches.append((current_owner, current))
                current, current_owner, room = [], who, batch
            # Positions are never reused, so [lo, hi] holds at most hi - lo + 1 events.
            lo = max(run.first, hi - room + 1)
            current.append((run.first, run.last, lo, hi))
            room -= hi - lo + 1
            hi = lo - 1
    if current:
        batches.append((current_owner, current))
    return batches
