#!/usr/bin/env python3
"""What the PostgreSQL index of runs costs writers: appends and imports with and
without its triggers (issue 21).

Copies 200,000 events (runs of ~20 events, three actors, five streams) from a
memory store into a fresh schema, then times 1,000 single appends; twice with the
``runs`` triggers and twice without (dropped right after the schema is created),
alternating, so load on a shared machine hits both alike. Bounded: about a minute.

    python scripts/runs_index_overhead.py [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import psycopg
from psycopg import sql

from eventvault import NewEvent
from eventvault.backends.memory import MemoryEventStore
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema
from eventvault.copy import copy_store


def _source() -> MemoryEventStore:
    src = MemoryEventStore()
    for b in range(20):
        src.append(
            [
                NewEvent(
                    type="job.step",
                    correlation_id=f"r{(b * 10_000 + i) // 20 % 997}",
                    actor=f"a{i % 3}",
                    stream=f"s{i % 5}",
                )
                for i in range(10_000)
            ]
        )
    return src


def _run(dsn: str, src: MemoryEventStore, *, triggers: bool) -> tuple[float, float]:
    schema = f"runs_overhead_{uuid.uuid4().hex[:8]}"
    try:
        with PostgresEventStore(dsn, schema=schema) as pg:
            if not triggers:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    for name in ("runs_appended", "runs_removed"):
                        conn.execute(
                            sql.SQL("DROP TRIGGER {} ON {}.events").format(
                                sql.Identifier(name), sql.Identifier(schema)
                            )
                        )
            t0 = time.perf_counter()
            copy_store(src, pg, verify=False)
            copied = time.perf_counter() - t0
            times = []
            for i in range(1000):
                t = time.perf_counter()
                pg.append(NewEvent(type="x.y", correlation_id=f"r{i % 50}", actor="a"))
                times.append(time.perf_counter() - t)
            return copied, statistics.median(times) * 1000
    finally:
        drop_schema(dsn, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    src = _source()
    for triggers in (False, True, False, True):
        copied, append_ms = _run(args.dsn, src, triggers=triggers)
        print(
            f"triggers={'on ' if triggers else 'off'}  copy 200,000: {copied:5.1f} s "
            f"({200_000 / copied:,.0f} events/s)  single append p50: {append_ms:.2f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
