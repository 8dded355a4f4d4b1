"""The same append workloads through the ``eventsourcing`` library, for a ratio
measured in the same run (``eventvault bench --backend postgres --compare``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .workloads import EventMaker

__all__ = ["run_eventsourcing_writes"]


def run_eventsourcing_writes(
    dsn: str, events: int, single: int, threads: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """The same append workloads through the ``eventsourcing`` library's PostgreSQL
    application recorder (gap-free notification ids, like ours), for a same-run ratio.

    Each stream becomes an aggregate (a UUID), each event a ``StoredEvent`` whose state
    is the same JSON payload eventvault stores.
    """
    import uuid

    import msgspec
    import psycopg
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    info = psycopg.conninfo.conninfo_to_dict(dsn)
    schema = "eventvault_bench_es"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    datastore = PostgresDatastore(
        str(info.get("dbname", "postgres")), str(info.get("host", "127.0.0.1")),
        str(info.get("port", 5432)), str(info.get("user", "postgres")),
        str(info.get("password", "")), schema=schema, pool_size=threads + 2,
    )  # fmt: skip
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    versions: dict[str, int] = {}
    lock = threading.Lock()
    encode = msgspec.json.encode

    def stored(batch: list[Any]) -> list[Any]:
        out = []
        with lock:
            for e in batch:
                v = versions.get(e.stream, 0) + 1
                versions[e.stream] = v
                out.append(StoredEvent(
                    originator_id=uuid.uuid5(uuid.NAMESPACE_URL, e.stream),
                    originator_version=v, topic=e.type, state=encode(e),
                ))  # fmt: skip
        return out

    results: dict[str, Any] = {}
    maker = EventMaker()
    try:
        say(f"eventsourcing recorder, batched: {events} events in batches of 1000")
        spent = 0.0
        done = 0
        while done < events:
            batch = stored(maker.make(min(1000, events - done)))
            t0 = time.perf_counter()
            recorder.insert_events(batch)
            spent += time.perf_counter() - t0
            done += len(batch)
        results["es_append_batch_1000"] = {"events_per_s": events / spent}
        say(f"eventsourcing recorder, single, 1 thread: {single} events")
        pending = [stored([e]) for e in maker.make(single)]
        t0 = time.perf_counter()
        for one in pending:
            recorder.insert_events(one)
        results["es_append_single_1_thread"] = {"events_per_s": single / (time.perf_counter() - t0)}
        per = (single * 2) // threads
        work = [[stored([e]) for e in maker.make(per)] for _ in range(threads)]
        barrier = threading.Barrier(threads + 1)

        def writer(k: int) -> None:
            barrier.wait()
            for one in work[k]:
                recorder.insert_events(one)

        pool = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in pool:
            t.join()
        results[f"es_append_single_{threads}_threads"] = {
            "events_per_s": per * threads / (time.perf_counter() - t0)
        }
    finally:
        datastore.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return results
