"""Append cost on the file backend: batched throughput and single-event latency.

    python scripts/file_append_bench.py [--events 50000] [--single 2000] [--json]

Appends ``--events`` events in batches of 1,000 to a fresh store (fsync="always"),
timing only the ``append`` calls, then ``--single`` events one per ``append``.
Prints events/s for the batches and p50/p99 of the single appends. Runs with any
eventvault version (to compare a branch with the commit before it, run it once with
each one's interpreter, alternating). With ``--proofs N`` it also times N inclusion
proofs (``store.log.inclusion_proof``) at random events, if the store keeps a tree.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from eventvault import NewEvent, Query
from eventvault.backends.file import FileEventStore


def _event(rng: random.Random, i: int) -> NewEvent:
    return NewEvent(
        type=f"type.{i % 20}",
        stream=f"stream-{rng.randrange(1000)}",
        actor=f"actor-{rng.randrange(50)}",
        data={"i": i, "text": "x" * rng.randrange(100, 300)},
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--single", type=int, default=2_000)
    ap.add_argument("--proofs", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(7)
    out: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(dir=args.dir) as tmp,
        FileEventStore(Path(tmp) / "store") as store,
    ):
        spent = cpu = 0.0
        for start in range(0, args.events, 1000):
            batch = [_event(rng, start + k) for k in range(1000)]
            t, c = time.perf_counter(), time.process_time()
            store.append(batch)
            spent += time.perf_counter() - t
            cpu += time.process_time() - c
        out["batch_events_per_s"] = args.events / spent
        # CPU time (this process, all threads): robust to a loaded machine's waits.
        out["batch_cpu_us_per_event"] = cpu / args.events * 1e6
        lat = []
        for i in range(args.single):
            ev = _event(rng, i)
            t = time.perf_counter()
            store.append(ev)
            lat.append(time.perf_counter() - t)
        lat.sort()
        if lat:
            out["single_p50_ms"] = statistics.median(lat) * 1e3
            out["single_p99_ms"] = lat[int(0.99 * len(lat))] * 1e3
        if args.proofs and hasattr(store, "log"):
            heads = store.head()
            picks = [rng.randrange(1, heads + 1) for _ in range(args.proofs)]
            times = []
            for p in picks:
                ev = store.read(Query(after=p - 1, limit=1)).events[0]
                t = time.perf_counter()
                proof = store.log.inclusion_proof(ev.id)
                times.append(time.perf_counter() - t)
                assert proof.leaf_index == p - 1
            times.sort()
            out["proof_p50_ms"] = statistics.median(times) * 1e3
            out["proof_p99_ms"] = times[int(0.99 * len(times))] * 1e3
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v:,.3f}")


if __name__ == "__main__":
    main()
