#!/usr/bin/env python3
"""Issue 20's targets, measured through the public API of a real store.

    python scripts/audit_bench.py --backend file --events 1000000
    python scripts/audit_bench.py --backend postgres --events 1000000 \
        [--dsn postgresql://postgres@127.0.0.1:5432/postgres]

Builds (or reuses, with ``--data`` / the same schema) a store of ``--events``
realistic events (~500 bytes, runs of 1,000 events under one correlation id), then:

1. **proofs**: ``store.log.inclusion_proof(event_id)`` of random events (the id
   lookup included) and ``store.log.consistency_proof(m)`` to the whole tree at
   random ``m``: p50 / p99 over ``--samples`` (target p50 <= 2 ms, p99 <= 10 ms);
2. **verify**: ``store.verify(checkpoints=[cp])`` (chain + the regenerated tree +
   a signed checkpoint) against the chain-only walk of the same store (the tree
   check switched off in-process), alternated ``--repeat`` times; the ratio of
   throughputs (target >= 0.80);
3. **bundles** (if ``eventvault.integrity.bundle`` is there): write and verify the
   bundle of one 1,000-event run (targets < 1 s and < 0.5 s).

Append overhead is measured separately (before/after commits, alternated with
farm-bench): see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventvault import NewEvent, Query
from eventvault.store import EventStore
from eventvault.tlog import NoteSigner, open_checkpoint

RUN = 1000


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def _events(start: int, n: int) -> list[NewEvent]:
    out = []
    for i in range(start, start + n):
        out.append(
            NewEvent(
                type=("agent.step", "tool.called", "tool.result", "agent.thought")[i % 4],
                actor=f"agent:{i // RUN % 7}",
                correlation_id=f"run-{i // RUN}",
                stream=f"loop-{i // RUN % 13}",
                data={"i": i, "text": "lorem ipsum dolor sit amet " * 12, "tokens": [i, i + 1]},
            )
        )
    return out


def open_store(args: argparse.Namespace) -> EventStore:
    if args.backend == "file":
        from eventvault.backends.file import FileEventStore

        return FileEventStore(Path(args.data), fsync="never")
    from eventvault.backends.postgres.store import PostgresEventStore

    return PostgresEventStore(args.dsn, schema=args.schema)


def fill(store: EventStore, n: int) -> None:
    have = store.stats().events
    if have >= n:
        return
    t0 = time.perf_counter()
    for start in range(have, n, RUN):
        store.append(_events(start, min(RUN, n - start)))
    print(f"filled {n - have:,} events in {time.perf_counter() - t0:.0f} s", flush=True)


def proofs(store: EventStore, samples: int) -> None:
    size = store.log.state().size
    ids = [e.id for e in store.read(Query(limit=1000)).events]
    rng = random.Random(7)
    positions = [rng.randrange(1, store.head() + 1) for _ in range(samples)]
    # Ids of random events, looked up first (not timed): what a caller holds.
    wanted = []
    for p in positions[: min(samples, 500)]:
        page = store.read(Query(after=p - 1, limit=1))
        wanted.append(page.events[0].id if page.events else ids[0])
    inc: list[float] = []
    for k in range(samples):
        t = time.perf_counter()
        store.log.inclusion_proof(wanted[k % len(wanted)])
        inc.append(time.perf_counter() - t)
    con: list[float] = []
    for _ in range(samples):
        m = rng.randrange(1, size)
        t = time.perf_counter()
        store.log.consistency_proof(m)
        con.append(time.perf_counter() - t)
    for name, xs in (("inclusion", inc), ("consistency", con)):
        print(
            f"{name} proof at {size:,} leaves ({samples}): p50 {_pct(xs, 0.5) * 1e3:.2f} ms "
            f"p99 {_pct(xs, 0.99) * 1e3:.2f} ms"
        )


def verify(store: EventStore, repeat: int) -> None:
    from eventvault import spi
    from eventvault.integrity import verifying

    signer = NoteSigner.generate("bench.eventvault/log")
    cp = open_checkpoint(store.log.checkpoint(signer), [signer.verifier()])
    n = store.stats().events

    def tree() -> float:
        t = time.perf_counter()
        r = store.verify(checkpoints=[cp])
        assert r.ok, r.reason
        assert r.checkpoints_checked == 1
        return time.perf_counter() - t

    def chain() -> float:
        verifying.Proving = type("NotProving", (), {})  # type: ignore[misc,assignment]
        try:
            t = time.perf_counter()
            r = store.verify()
            assert r.ok, r.reason
            assert r.tree_size is None
            return time.perf_counter() - t
        finally:
            verifying.Proving = spi.Proving  # type: ignore[misc]

    runs: dict[str, list[float]] = {"tree+checkpoint": [], "chain only": []}
    fns: dict[str, Callable[[], float]] = {"tree+checkpoint": tree, "chain only": chain}
    for k in range(repeat):
        order = list(fns) if k % 2 == 0 else list(reversed(fns))
        for name in order:
            runs[name].append(fns[name]())
    med = {k: statistics.median(v) for k, v in runs.items()}
    for k, v in runs.items():
        print(
            f"verify {k}: median {n / med[k]:,.0f} ev/s ({med[k]:.2f} s; runs "
            + ", ".join(f"{x:.2f}" for x in v)
            + ")"
        )
    ratio = med["chain only"] / med["tree+checkpoint"]
    print(f"verify --checkpoint throughput / plain chain walk: {ratio:.2f}")


def bundles(store: EventStore) -> None:
    try:
        from eventvault.integrity import bundle
    except ImportError:
        print("bundles: eventvault.integrity.bundle not there; skipped")
        return
    signer = NoteSigner.generate("bench.eventvault/log")
    note = store.log.checkpoint(signer)
    query = Query(correlation_ids=["run-3"])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "run-3.evb"
        writes, checks = [], []
        for _ in range(5):
            t = time.perf_counter()
            bundle.write_bundle(store, query, path, checkpoint=note)
            writes.append(time.perf_counter() - t)
            t = time.perf_counter()
            report: Any = bundle.verify_bundle(path, [signer.verifier()])
            checks.append(time.perf_counter() - t)
            path.unlink()
        print(
            f"bundle of a {RUN}-event run: write median {statistics.median(writes) * 1e3:.0f} ms, "
            f"verify median {statistics.median(checks) * 1e3:.0f} ms ({report!r:.80})"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("file", "postgres"), default="file")
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "audit-bench"))
    p.add_argument(
        "--dsn",
        default=os.environ.get(
            "EVENTVAULT_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    p.add_argument("--schema", default="audit_bench")
    p.add_argument("--only", default="proofs,verify,bundles")
    args = p.parse_args()
    store = open_store(args)
    try:
        fill(store, args.events)
        only = set(args.only.split(","))
        if "proofs" in only:
            proofs(store, args.samples)
        if "verify" in only:
            verify(store, args.repeat)
        if "bundles" in only:
            bundles(store)
    finally:
        store.close()


if __name__ == "__main__":
    main()
