"""Benchmark offline audit bundles (issue 20: a 1,000-event run written in < 1 s and
verified in < 0.5 s).

    python scripts/bundle_bench.py                     # memory store
    python scripts/bundle_bench.py --config prod.toml  # a configured Proving store (its
                                                       # events; --correlation-id picks the run)

Without --config: a memory store of --store-events events (100-byte payloads, 1,000
to a batch), a run of --run-events of them spread through it; then writes the run's
bundle (proofs against a fresh checkpoint) and verifies it, --repeat times, and
prints the min and median of each. The bundle goes to a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from eventvault import EventStore, NewEvent, Query, open_store
from eventvault.backends.memory import MemoryBackend
from eventvault.integrity.bundle import verify_bundle, write_bundle
from eventvault.tlog import NoteSigner


def _memory_store(events: int, run: int) -> EventStore:
    store = EventStore(MemoryBackend())
    every = max(1, events // run)
    n = 0
    while n < events:
        batch = []
        for _ in range(min(1000, events - n)):
            corr = "run" if n % every == 0 and n // every < run else f"other-{n % 97}"
            batch.append(NewEvent(type="step", stream=f"s{n % 50}", correlation_id=corr,
                                  data={"n": n, "text": "x" * 100}))  # fmt: skip
            n += 1
        store.append(batch)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--correlation-id", default="run")
    parser.add_argument("--store-events", type=int, default=100_000)
    parser.add_argument("--run-events", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    store = (
        open_store(args.config, create=False)
        if args.config
        else _memory_store(args.store_events, args.run_events)
    )
    signer = NoteSigner.generate("bench.example/eventvault")
    note = store.log.checkpoint(signer)
    query = Query(correlation_ids=[args.correlation_id])
    wrote, checked = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "run.evb")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = write_bundle(store, query, path, checkpoint=note)
            wrote.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            verify_bundle(path, [signer.verifier()])
            checked.append(time.perf_counter() - t0)
        size = os.path.getsize(path)
    store.close()
    print(f"{report.events:,} events in a tree of {report.tree_size:,}; bundle {size:,} bytes")
    print(f"write : min {min(wrote):.3f} s, median {statistics.median(wrote):.3f} s")
    print(f"verify: min {min(checked):.3f} s, median {statistics.median(checked):.3f} s")


if __name__ == "__main__":
    main()
