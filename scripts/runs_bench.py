#!/usr/bin/env python3
"""Time the run functions on a large store (issue 21's targets).

Builds (or reuses) a file store of ``--events`` events (default 1,000,000) and copies
it into a PostgreSQL schema, then measures on each:

1. ``list_runs(store, limit=50)``: the newest 50 runs (target p50 <= 20 ms);
2. ``load_run(store, RUN)`` of a 1,000-event run, one from the middle of the log and
   the newest one (target p50 <= 50 ms);
3. ``diff_runs`` of two 1,000-event runs that differ here and there (target <= 200 ms).

The log: runs of 20 events, every tenth run 1,000 events instead, four runs open
at a time (their events interleave, as concurrent agents' do); the big runs'
events form causal trees (each caused by one of the previous few). Each figure is
the median of ``--repeat`` calls (after one warm-up call). Bounded: building the
1M-event file store takes about a minute, copying it to PostgreSQL a minute more;
``--data`` keeps the file store between runs (it is rebuilt if its size differs).

    python scripts/runs_bench.py [--events 1000000] [--repeat 7] [--no-postgres]
        [--dsn postgresql://postgres@127.0.0.1:5432/postgres] [--data /tmp/runs-bench]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from eventvault import EventStore, NewEvent
from eventvault.backends.file import FileEventStore
from eventvault.runs import diff_runs, list_runs, load_run

TYPES = ("llm.request", "llm.response", "tool.called", "tool.result")
ACTORS = ("agent:planner", "agent:coder", "agent:reviewer")
BIG = 1000
SMALL = 20


def _run_events(rnd: random.Random, name: str, size: int) -> Iterator[NewEvent]:
    """One run's events in order: a start, a body of agent steps, an end."""
    ids: list[str] = []
    for k in range(size):
        if k == 0:
            type_, actor, cause = "run.started", "ci", f"cmd-{name}"
        elif k == size - 1:
            type_, actor = rnd.choice(("run.succeeded", "run.failed")), "ci"
            cause = ids[0]
        else:
            # A steady rhythm with some noise, so two big runs align mostly, not fully.
            type_ = TYPES[k % 4] if rnd.random() > 0.05 else rnd.choice(TYPES)
            actor = ACTORS[(k // 4) % 3]
            cause = ids[max(0, len(ids) - 1 - rnd.randrange(4))]
        ev = NewEvent(
            type=type_, actor=actor, correlation_id=name, causation_id=cause,
            stream=f"loop-{name}", data={"k": k, "tokens": rnd.randrange(1000)},
        )  # fmt: skip
        ids.append(str(ev.id))
        yield ev


def _log(total: int, seed: int = 21) -> Iterator[tuple[NewEvent, str, int]]:
    """``total`` events of interleaved runs: (event, run name, run size)."""
    rnd = random.Random(seed)
    open_runs: list[tuple[str, int, Iterator[NewEvent]]] = []
    made = 0
    serial = 0
    while made < total:
        while len(open_runs) < 4:
            size = BIG if serial % 10 == 9 else SMALL
            name = f"run-{serial:06d}"
            open_runs.append((name, size, _run_events(rnd, name, size)))
            serial += 1
        slot = rnd.randrange(len(open_runs))
        name, size, events = open_runs[slot]
        ev = next(events, None)
        if ev is None:
            del open_runs[slot]
            continue
        made += 1
        yield ev, name, size


def build(path: Path, total: int) -> list[str]:
    """The file store at ``path`` with ``total`` events; returns the big runs' names
    (complete ones), oldest first."""
    marker = path / "bench-runs.txt"
    if marker.exists():
        lines = marker.read_text().split("\n")
        if lines[0] == str(total):
            return [line for line in lines[1:] if line]
    shutil.rmtree(path, ignore_errors=True)
    big: dict[str, int] = {}
    t0 = time.perf_counter()
    with FileEventStore(path, fsync="never") as store:
        batch: list[NewEvent] = []
        for ev, name, size in _log(total):
            batch.append(ev)
            if size == BIG:
                big[name] = big.get(name, 0) + 1
            if len(batch) == 10_000:
                store.append(batch)
                batch = []
        if batch:
            store.append(batch)
    complete = [name for name, n in big.items() if n == BIG]
    marker.write_text("\n".join([str(total), *complete]) + "\n")
    print(f"built {total:,} events in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return complete


def p50(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median wall time of ``fn()`` in ms (after one warm-up call), and its result."""
    result = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def measure(store: EventStore, big: list[str], repeat: int) -> dict[str, float]:
    out: dict[str, float] = {}
    out["runs newest 50"], page = p50(lambda: list_runs(store, limit=50), repeat)
    assert len(page.runs) == 50
    out["  (events in those runs)"] = float(sum(r.events for r in page.runs))
    middle, newest = big[len(big) // 2], big[-1]
    for label, name in (("run() middle", middle), ("run() newest", newest)):
        out[label], trace = p50(lambda name=name: load_run(store, name), repeat)
        assert trace is not None
        assert len(trace.events) == BIG
    a, b = load_run(store, big[-2]), load_run(store, newest)
    assert a is not None
    assert b is not None
    out["diff 1000 x 1000"], diff = p50(lambda: diff_runs(a, b), repeat)
    out["  (aligned steps)"] = float(diff.same + diff.changed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--data", type=Path, default=Path("/tmp/runs-bench"))
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    big = build(args.data, args.events)
    results: dict[str, dict[str, float]] = {}
    with FileEventStore(args.data, fsync="never") as store:
        results["file"] = measure(store, big, args.repeat)
        if not args.no_postgres:
            from eventvault.backends.postgres.store import PostgresEventStore, drop_schema
            from eventvault.copy import copy_store

            schema = f"runs_bench_{uuid.uuid4().hex[:8]}"
            try:
                with PostgresEventStore(args.dsn, schema=schema) as pg:
                    t0 = time.perf_counter()
                    copy_store(store, pg, verify=False)
                    took = time.perf_counter() - t0
                    print(f"copied to PostgreSQL in {took:.0f} s", file=sys.stderr)
                    results["postgres"] = measure(pg, big, args.repeat)
            finally:
                drop_schema(args.dsn, schema)

    targets = {
        "runs newest 50": 20,
        "run() middle": 50,
        "run() newest": 50,
        "diff 1000 x 1000": 200,
    }
    print(f"{args.events:,} events, median of {args.repeat} (ms)")
    print(f"{'':<26}" + "".join(f"{name:>12}" for name in results) + f"{'target':>10}")
    for key in next(iter(results.values())):
        row = "".join(
            f"{r[key]:>12,.1f}" if key in targets else f"{r[key]:>12,.0f}" for r in results.values()
        )
        print(f"{key:<26}{row}{targets.get(key, ''):>10}")


if __name__ == "__main__":
    main()
