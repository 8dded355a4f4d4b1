"""PostgreSQL append cost of the Merkle tree, and proof latency on a large tree.

Two modes (run with the venv of the checkout to measure):

* ``append``: batched append throughput (batches of 1,000) and single-append
  latency (one thread) on a scratch schema, printed as one JSON line. Works on any
  checkout (public API only), so alternate it between a worktree of the base and
  this branch: ``python scripts/pg_tree_bench.py append --events 20000 --single 1000``.
* ``proofs``: writes a synthetic tree of ``--leaves`` random leaves *directly into
  the tree table* (``--per-row`` leaves a row: 65,536 by default; 1 is the layout single-event
  appends leave; no events),
  then times inclusion and consistency proofs through ``tlog`` over the backend's
  ``read_hashes`` (one round trip each read): p50/p99 in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid

DSN = os.environ.get("EVENTVAULT_BENCH_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def bench_append(events: int, single: int) -> dict[str, float]:
    from eventvault import NewEvent
    from eventvault.backends.postgres.store import PostgresEventStore, drop_schema

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    rnd = random.Random(7)

    def ev(i: int) -> NewEvent:
        return NewEvent(
            type=f"bench.t{i % 20}",
            stream=f"s{rnd.randrange(1000)}",
            actor=f"a{i % 50}",
            correlation_id=f"c{i // 100}",
            data={"i": i, "text": "x" * 300, "n": rnd.random()},
        )

    try:
        with PostgresEventStore(DSN, schema=schema) as store:
            batches = [[ev(b * 1000 + j) for j in range(1000)] for b in range(events // 1000)]
            spent = 0.0
            cpu = time.process_time()
            for batch in batches:
                t = time.perf_counter()
                store.append(batch)
                spent += time.perf_counter() - t
            batch_cpu = time.process_time() - cpu
            singles = [ev(events + i) for i in range(single)]
            lat = []
            cpu = time.process_time()
            for e in singles:
                t = time.perf_counter()
                store.append(e)
                lat.append(time.perf_counter() - t)
            single_cpu = time.process_time() - cpu
        return {
            "batch_events_per_s": events / spent,
            "single_p50_ms": statistics.median(lat) * 1000,
            "single_p99_ms": _pct(lat, 0.99) * 1000,
            # This process's CPU time (less sensitive to a loaded machine than the clock).
            "batch_cpu_us_per_event": batch_cpu / events * 1e6,
            "single_cpu_us_per_append": single_cpu / single * 1e6,
        }
    finally:
        drop_schema(DSN, schema)


def bench_proofs(leaves: int, samples: int, keep: bool, per_row: int) -> dict[str, float]:
    import hashlib

    import psycopg
    from psycopg import sql

    from eventvault.backends.postgres.store import PostgresBackend, drop_schema
    from eventvault.backends.postgres.tree import extend
    from eventvault.tlog.layout import stored_hash_count
    from eventvault.tlog.proofs import consistency_proof, inclusion_proof

    schema = f"bench_proofs_{leaves}_{per_row}"
    backend = PostgresBackend(DSN, schema=schema)
    s = sql.Identifier(schema)
    try:
        if backend.tree_state().size != leaves:
            t0 = time.perf_counter()
            chunk = 65536
            size, edge = 0, []
            with psycopg.connect(DSN) as conn:
                conn.execute("SET session_replication_role = replica")  # (head trigger)
                for lo in range(0, leaves, chunk):
                    n = min(chunk, leaves - lo)
                    hs = [hashlib.sha256(b"%d" % (lo + i)).digest() for i in range(n)]
                    with conn.cursor().copy(
                        sql.SQL("COPY {}.tree (start, hashes) FROM STDIN").format(s)
                    ) as copy:
                        # ``per_row`` leaves a row: 1 is the layout of single appends.
                        for k in range(0, n, per_row):
                            hashes, edge = extend(size, edge, hs[k : k + per_row])
                            copy.write_row((stored_hash_count(size), hashes))
                            size += len(hs[k : k + per_row])
                conn.execute(
                    sql.SQL(
                        "UPDATE {}.head SET position = %s, tree_base = 0, tree_size = %s, "
                        "tree_edge = %s"
                    ).format(s),
                    (size, size, b"".join(edge)),
                )
                conn.commit()
                conn.execute(sql.SQL("ANALYZE {}.tree").format(s))
            print(f"wrote {leaves} leaves in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        rnd = random.Random(1)
        inc, con = [], []
        for _ in range(samples):
            i = rnd.randrange(leaves)
            t = time.perf_counter()
            inclusion_proof(backend, i, leaves)
            inc.append(time.perf_counter() - t)
            m = rnd.randrange(1, leaves)
            t = time.perf_counter()
            consistency_proof(backend, m, leaves)
            con.append(time.perf_counter() - t)
        return {
            "leaves": leaves,
            "leaves_per_row": per_row,
            "inclusion_p50_ms": statistics.median(inc) * 1000,
            "inclusion_p99_ms": _pct(inc, 0.99) * 1000,
            "consistency_p50_ms": statistics.median(con) * 1000,
            "consistency_p99_ms": _pct(con, 0.99) * 1000,
        }
    finally:
        backend.close()
        if not keep:
            drop_schema(DSN, schema)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["append", "proofs"])
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--single", type=int, default=1000)
    p.add_argument("--leaves", type=int, default=1_000_000)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--per-row", type=int, default=65536, help="leaves a tree row holds")
    p.add_argument("--keep", action="store_true", help="keep the synthetic tree's schema")
    a = p.parse_args()
    if a.mode == "append":
        out = bench_append(a.events, a.single)
    else:
        out = bench_proofs(a.leaves, a.samples, a.keep, a.per_row)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
