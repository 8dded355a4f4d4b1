"""The PostgreSQL index of runs: one row per correlation id, kept by triggers.

``runs`` holds, per correlation id, what a run summary needs (count, first/last
position, time and type, actors and streams in order of first appearance). The
database keeps it, not the client, so every way events arrive or leave keeps it
exact and in the same transaction:

* an ``AFTER INSERT`` statement trigger (transition table ``NEW TABLE``) folds each
  statement's new rows into their runs — the one-round-trip append, the locking
  ``INSERT … unnest``, ``COPY`` (imports, copies) alike;
* an ``AFTER DELETE`` statement trigger recomputes the runs that lost events (only
  ``retention_delete`` can delete) from the events that remain, and drops runs left
  with none. It locks those rows first, so an append to the same run either commits
  before the recompute reads (and is counted) or waits and adds on top of it.

Security: both trigger functions are ``SECURITY DEFINER`` (owned by the schema
owner, ``search_path`` pinned), so an application role needs no write privilege on
``runs`` at all — only ``SELECT`` to list runs (``GRANT SELECT ON <schema>.runs``;
the migration grants it to every role that may already read ``events``). Nobody
but the owner can write a row that contradicts the events. A role without
``SELECT`` still lists runs: :class:`RunIndexPath` notices and scans.

Migration 5 creates the table and triggers *before* filling it from the events: the
``CREATE TRIGGER`` lock waits for running appends and holds new ones until the
migration commits, so no event is missed or counted twice. It is one transaction:
interrupted, it leaves nothing behind and the next open runs it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, LiteralString

from psycopg import sql

from ...model import Query, RecordedEvent
from ...runs.listing import RunKey, unfiltered
from ...runs.model import RunSummary
from ...runs.outcomes import Outcomes, outcome_of
from ...runs.tree import summarise
from ...timeutil import to_us
from . import columns as _columns
from .connection import Connected

__all__ = ["V5_RUNS", "RunIndexPath"]

# Per correlation id of {src}: count, first/last position, time and type, actors and
# streams in order of first appearance. ({src} is a relation: events or a transition
# table; {schema} is substituted by the migration.)
_AGG: LiteralString = """
    SELECT g.cid, g.fp, g.lp, f.recorded_at AS fra, l.recorded_at AS lra, g.n,
           f.type AS ft, l.type AS lt,
           coalesce(a.actors, '{{}}'::text[]) AS actors, s.streams
    FROM (SELECT correlation_id AS cid, count(*) AS n, min(position) AS fp,
                 max(position) AS lp
          FROM {src} WHERE correlation_id IS NOT NULL GROUP BY correlation_id) g
    JOIN {src} f ON f.position = g.fp
    JOIN {src} l ON l.position = g.lp
    LEFT JOIN (SELECT cid, array_agg(actor ORDER BY p) AS actors FROM (
                 SELECT correlation_id AS cid, actor, min(position) AS p FROM {src}
                 WHERE correlation_id IS NOT NULL AND actor IS NOT NULL
                 GROUP BY correlation_id, actor) x GROUP BY cid) a ON a.cid = g.cid
    JOIN (SELECT cid, array_agg(stream ORDER BY p) AS streams FROM (
            SELECT correlation_id AS cid, stream, min(position) AS p FROM {src}
            WHERE correlation_id IS NOT NULL GROUP BY correlation_id, stream) x
          GROUP BY cid) s ON s.cid = g.cid
"""

_COLS: LiteralString = (
    "correlation_id, first_position, last_position, first_recorded_at, "
    "last_recorded_at, events, first_type, last_type, actors, streams"
)


def _agg(src: LiteralString) -> LiteralString:
    # (plain concatenation keeps the text a LiteralString; {src} is ours, never input)
    parts = _AGG.split("{src}")
    out: LiteralString = parts[0]
    for part in parts[1:]:
        out = out + src + part
    return out


#: Migration 5: the runs table, its triggers, the grant to existing readers, and the
#: table filled from the events already stored.
V5_RUNS: LiteralString = (
    """
CREATE TABLE IF NOT EXISTS {schema}.runs (
    correlation_id    text        COLLATE "C" PRIMARY KEY,
    first_position    bigint      NOT NULL,
    last_position     bigint      NOT NULL,
    first_recorded_at timestamptz NOT NULL,
    last_recorded_at  timestamptz NOT NULL,
    events            bigint      NOT NULL,
    first_type        text        NOT NULL,
    last_type         text        NOT NULL,
    actors            text[]      NOT NULL,
    streams           text[]      NOT NULL
);
-- Newest runs first: a backward walk of this index.
CREATE INDEX IF NOT EXISTS runs_last_position ON {schema}.runs (last_position);

CREATE OR REPLACE FUNCTION {schema}.runs_appended() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Positions only grow, so new rows extend a run: first_* stay, last_* move on,
    -- actors and streams not seen before are appended in order of appearance.
    INSERT INTO {schema}.runs AS r ("""
    + _COLS
    + """)
    """
    + _agg("new_events")
    + """
    ON CONFLICT (correlation_id) DO UPDATE SET
        last_position = excluded.last_position,
        last_recorded_at = excluded.last_recorded_at,
        last_type = excluded.last_type,
        events = r.events + excluded.events,
        actors = r.actors || ARRAY(SELECT u.x FROM unnest(excluded.actors)
            WITH ORDINALITY AS u(x, o) WHERE u.x <> ALL (r.actors) ORDER BY u.o),
        streams = r.streams || ARRAY(SELECT u.x FROM unnest(excluded.streams)
            WITH ORDINALITY AS u(x, o) WHERE u.x <> ALL (r.streams) ORDER BY u.o);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS runs_appended ON {schema}.events;
CREATE TRIGGER runs_appended AFTER INSERT ON {schema}.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.runs_appended();

CREATE OR REPLACE FUNCTION {schema}.runs_removed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Lock the runs first (in key order: no deadlock between two removals), so the
    -- statements below see every append to them committed meanwhile.
    PERFORM 1 FROM {schema}.runs
        WHERE correlation_id IN (SELECT correlation_id FROM old_events)
        ORDER BY correlation_id FOR UPDATE;
    DELETE FROM {schema}.runs r
        WHERE r.correlation_id IN (SELECT correlation_id FROM old_events)
        AND NOT EXISTS (SELECT 1 FROM {schema}.events e
                        WHERE e.correlation_id = r.correlation_id);
    WITH runs_left AS MATERIALIZED (
        SELECT e.* FROM {schema}.events e
        WHERE e.correlation_id IN (SELECT DISTINCT correlation_id FROM old_events)
    )
    INSERT INTO {schema}.runs AS r ("""
    + _COLS
    + """)
    """
    + _agg("runs_left")
    + """
    ON CONFLICT (correlation_id) DO UPDATE SET
        first_position = excluded.first_position,
        last_position = excluded.last_position,
        first_recorded_at = excluded.first_recorded_at,
        last_recorded_at = excluded.last_recorded_at,
        events = excluded.events,
        first_type = excluded.first_type,
        last_type = excluded.last_type,
        actors = excluded.actors,
        streams = excluded.streams;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS runs_removed ON {schema}.events;
CREATE TRIGGER runs_removed AFTER DELETE ON {schema}.events
    REFERENCING OLD TABLE AS old_events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.runs_removed();
-- (trigger functions: never called directly; firing them needs no privilege)
REVOKE ALL ON FUNCTION {schema}.runs_appended() FROM PUBLIC;
REVOKE ALL ON FUNCTION {schema}.runs_removed() FROM PUBLIC;

-- The schema owner's, whoever migrates (a superuser upgrading a schema its own role
-- made): the triggers then run as that role, which owns the table they write.
DO $$
DECLARE
    owner_name text;
BEGIN
    SELECT pg_get_userbyid(nspowner) INTO owner_name FROM pg_namespace
        WHERE nspname = {schema_text};
    IF owner_name <> current_user AND pg_has_role(current_user, owner_name, 'MEMBER') THEN
        EXECUTE format('ALTER TABLE %I.runs OWNER TO %I', {schema_text}, owner_name);
        EXECUTE format('ALTER FUNCTION %I.runs_appended() OWNER TO %I', {schema_text}, owner_name);
        EXECUTE format('ALTER FUNCTION %I.runs_removed() OWNER TO %I', {schema_text}, owner_name);
    END IF;
END $$;

-- Roles that may read the events may read their runs (the README's application role).
DO $$
DECLARE
    who text;
BEGIN
    FOR who IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE quote_ident(pg_get_userbyid(a.grantee)) END
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
             aclexplode(c.relacl) AS a
        WHERE n.nspname = {schema_text} AND c.relname = 'events'
            AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT SELECT ON %I.runs TO ', {schema_text}) || who;
    END LOOP;
END $$;

-- Fill the table from the events already stored (the trigger above already holds
-- back new appends until this transaction commits).
DELETE FROM {schema}.runs;
INSERT INTO {schema}.runs ("""
    + _COLS
    + """)
"""
    + _agg("{schema}.events")
    + """;
"""
)


def _summary(row: tuple[Any, ...], outcomes: Outcomes) -> RunSummary:
    cid, fp, lp, fra, lra, n, ft, lt, actors, streams = row
    return RunSummary(
        correlation_id=cid,
        events=int(n),
        first_position=int(fp),
        last_position=int(lp),
        first_recorded_at=fra,
        last_recorded_at=lra,
        duration_us=to_us(lra) - to_us(fra),
        actors=tuple(actors),
        streams=tuple(streams),
        first_type=ft,
        last_type=lt,
        outcome=outcome_of(lt, outcomes),
    )


class RunIndexPath(Connected):
    """:class:`~eventvault.runs.RunIndex` of :class:`~.store.PostgresBackend`, over
    the ``runs`` table."""

    _runs_readable: bool | None = None

    def _can_read_runs(self) -> bool:
        if self._runs_readable is None:
            name = '"{}".runs'.format(self.schema.replace('"', '""'))
            rows = self._query(
                "listing runs",
                self._q("SELECT has_table_privilege(current_user, %s, 'SELECT')"),
                (name,),
            )
            self._runs_readable = bool(rows and rows[0][0])
        return self._runs_readable

    def newest_runs(
        self, query: Query, *, head: int, before: int | None, limit: int
    ) -> list[RunKey] | None:
        """Without filters, from the table: runs whose last event is at most ``head``
        by the ``last_position`` index, and those appended to since ``head`` (their
        newest event up to ``head`` probed, one index lookup each). With filters:
        None, and the listing scans (the table knows runs, not every event)."""
        if not unfiltered(query) or not self._can_read_runs():
            return None
        bound = head + 1 if before is None else min(before, head + 1)
        rows = self._query(
            "listing runs",
            self._q(
                "SELECT cid, pos FROM ("
                "(SELECT correlation_id AS cid, last_position AS pos FROM {s}.runs "
                "WHERE last_position < %s ORDER BY last_position DESC LIMIT %s) "
                "UNION ALL "
                "SELECT r.correlation_id, p.pos FROM {s}.runs r CROSS JOIN LATERAL "
                "(SELECT max(e.position) AS pos FROM {s}.events e "
                "WHERE e.correlation_id = r.correlation_id AND e.position <= %s) p "
                "WHERE r.last_position > %s AND r.first_position <= %s AND p.pos < %s"
                ") AS found ORDER BY pos DESC LIMIT %s"
            ),
            (bound, limit, head, head, head, bound, limit),
        )
        return [RunKey(cid, int(pos)) for cid, pos in rows]

    def run_summaries(
        self, correlation_ids: Sequence[str], *, head: int, outcomes: Outcomes
    ) -> dict[str, RunSummary]:
        """From the table for runs with no event after ``head``; the others (appended
        to since) are summarised from their events up to ``head``."""
        if not correlation_ids:
            return {}
        ids = list(correlation_ids)
        out: dict[str, RunSummary] = {}
        later = ids
        if self._can_read_runs():
            rows = self._query(
                "listing runs",
                sql.SQL("SELECT {} FROM {}.runs WHERE correlation_id = ANY(%s)").format(
                    sql.SQL(_COLS), self._s
                ),
                (ids,),
            )
            later = []
            for row in rows:
                if row[2] <= head:
                    out[row[0]] = _summary(row, outcomes)
                else:
                    later.append(row[0])
        if later:
            rows = self._query(
                "listing runs",
                self._q(
                    "SELECT {columns} FROM {s}.events WHERE correlation_id = ANY(%s) "
                    "AND position <= %s ORDER BY position"
                ),
                (later, head),
            )
            grouped: dict[str, list[RecordedEvent]] = {}
            for ev in map(_columns.from_row, rows):
                grouped.setdefault(ev.correlation_id, []).append(ev)  # type: ignore[arg-type]
            for cid, events in grouped.items():
                out[cid] = summarise(cid, events, outcomes)
        return out
