"""The soak test: sustained mixed load, then an account of every acknowledged event.

Several writer *processes* append batches of random sizes; a reader process runs
filtered queries; a live tail (``subscribe``) counts what it is delivered; a
retention thread applies a policy that removes only ``soak.debug`` events; every
``sample`` seconds the resident memory and open file descriptors of each process
are recorded. At the end:

* every acknowledged event that retention may not remove is found, exactly once
  (writers use ids derived from (writer, sequence), so nothing can hide);
* the tail saw them all, in position order;
* ``verify`` passes;
* memory and descriptors are reported over time (flat = no leak), with p99
  append and query latencies per minute.

``eventvault bench --soak 30m`` runs it (through :mod:`.runner`); ``tests/soak/``
runs a one-minute version.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import RetentionConfig, RetentionRule
from ..model import NewEvent, Query
from ..registry import open_store
from ..retention import resolve_policy
from ..spi import Retaining

__all__ = ["SoakReport", "leak_summary", "run_soak"]

#: (writer, sequence) -> a UUID no other writer or run can produce.
_NAMESPACE = uuid.UUID("0b4a1f3e-5c2d-4e8f-9a7b-6c5d4e3f2a1b")


def event_id(run: str, writer: int, seq: int) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{run}/{writer}/{seq}")


def _memory_kb(pid: int) -> dict[str, int]:
    """Resident memory, and its anonymous part (the heap: what a leak grows) apart
    from file-backed pages (mapped index files, which the kernel can drop)."""
    out = {"rss_kb": 0, "anon_kb": 0}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    out["rss_kb"] = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    out["anon_kb"] = int(line.split()[1])
    except OSError:
        pass
    return out


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _usage(pid: int) -> dict[str, int]:
    return {**_memory_kb(pid), "fds": _fds(pid)}


#: Latency histogram buckets grow by 5% from 1 µs: a p99 is read to within 5%.
_GROWTH = 1.05


class _Latencies:
    """Per-minute latency histograms: bounded memory, mergeable across processes.

    (A list of every sample grew by ~30 bytes a call — 4 MB a process over 30
    minutes — which is exactly the kind of growth the soak is there to find.)
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.minutes: dict[int, dict[int, int]] = {}

    def add(self, seconds: float) -> None:
        minute = int((time.monotonic() - self.started) // 60)
        bucket = int(math.log(max(seconds, 1e-6) / 1e-6, _GROWTH))
        counts = self.minutes.setdefault(minute, {})
        counts[bucket] = counts.get(bucket, 0) + 1


def _merged(parts: list[dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for counts in parts:
        for bucket, n in counts.items():
            out[bucket] = out.get(bucket, 0) + n
    return out


def _p99_ms(counts: dict[int, int]) -> float:
    """The 99th percentile (the upper edge of its bucket), in ms."""
    total = sum(counts.values())
    if not total:
        return 0.0
    rank = math.ceil(total * 0.99)
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return 1e-6 * _GROWTH ** (bucket + 1) * 1000
    raise AssertionError("unreachable")


def _writer(config: dict[str, Any], run: str, k: int, stop: Any, out: Any) -> None:
    """Append until told to stop; report (acknowledged kept, acknowledged debug,
    per-minute latencies) when done."""
    rng = random.Random(k)
    kept = debug = 0
    seq = 0
    lat = _Latencies()
    with open_store(config) as store:
        while not stop.is_set():
            n = rng.choice((1, 1, 1, 5, 20, 50))
            batch = []
            for _ in range(n):
                is_debug = _is_debug(seq)
                batch.append(
                    NewEvent(
                        id=event_id(run, k, seq),
                        type="soak.debug" if is_debug else f"soak.step.{seq % 7}",
                        stream=f"w{k}-s{seq % 13}",
                        actor=f"writer-{k}",
                        correlation_id=f"c{seq // 100}",
                        data={"k": k, "seq": seq, "pad": "x" * rng.randint(10, 300)},
                    )
                )
                seq += 1
            t0 = time.perf_counter()
            store.append(batch)
            lat.add(time.perf_counter() - t0)
            for ev in batch:
                if ev.type == "soak.debug":
                    debug += 1
                else:
                    kept += 1
    report = {"k": k, "kept": kept, "debug": debug, "seq": seq, "latency": lat.minutes}
    out.put(("writer", k, report))


def _reader(config: dict[str, Any], stop: Any, out: Any) -> None:
    rng = random.Random(99)
    lat = _Latencies()
    queries = 0
    with open_store(config) as store:
        while not stop.is_set():
            choice = rng.randrange(4)
            if choice == 0:
                q = Query(types=["soak.step.*"], limit=100, reverse=True)
            elif choice == 1:
                q = Query(actors=[f"writer-{rng.randrange(3)}"], limit=100, reverse=True)
            elif choice == 2:
                q = Query(correlation_ids=[f"c{rng.randrange(50)}"], limit=100)
            else:
                q = Query(streams=[f"w0-s{rng.randrange(13)}"], limit=100, reverse=True)
            t0 = time.perf_counter()
            store.read(q)
            lat.add(time.perf_counter() - t0)
            queries += 1
            time.sleep(0.01)
    out.put(("reader", 0, {"queries": queries, "latency": lat.minutes}))


def _tail(config: dict[str, Any], stop: Any, out: Any) -> None:
    """Count the non-debug events delivered live (after the writers stop, catch up)."""
    seen = 0
    last = 0
    in_order = True
    with open_store(config) as store:
        for ev in store.subscribe(Query(types=["soak.step.*"]), after=0, stop=stop):
            if ev.position <= last:
                in_order = False
            last = ev.position
            seen += 1
        # Catch up with whatever was appended before the writers stopped.
        for ev in store.iter(Query(types=["soak.step.*"], after=last, limit=5000)):
            if ev.position <= last:
                in_order = False
            last = ev.position
            seen += 1
    out.put(("tail", 0, {"seen": seen, "in_order": in_order}))


@dataclass
class SoakReport:
    seconds: float
    backend: str
    acknowledged: int  # events the writers were told are stored (retention may remove debug)
    acknowledged_kept: int  # of those, the ones retention must keep
    found_kept: int  # ...found in the store at the end
    found_distinct: int  # ...with distinct ids
    missing: int  # acknowledged_kept - found (a sample of ids checked one by one too)
    tail_seen: int
    tail_in_order: bool
    retention_runs: int
    retention_removed: int
    verify_ok: bool
    verify_checked: int
    queries: int
    samples: list[dict[str, Any]] = field(default_factory=list)  # t, per-process rss/fds
    per_minute: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.missing == 0
            and self.found_kept == self.acknowledged_kept == self.found_distinct
            and self.tail_seen == self.acknowledged_kept
            and self.tail_in_order
            and self.verify_ok
        )


def run_soak(
    config: dict[str, Any],
    *,
    seconds: float,
    writers: int = 3,
    sample_every: float = 10.0,
    retention_every: float = 10.0,
    say: Callable[[str], None] = lambda _m: None,
) -> SoakReport:
    """Run the soak against the (empty, scratch) store ``config`` names."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    tail_stop = ctx.Event()
    out: Any = ctx.Queue()
    run = uuid.uuid4().hex[:8]
    procs = [ctx.Process(target=_writer, args=(config, run, k, stop, out)) for k in range(writers)]
    procs.append(ctx.Process(target=_reader, args=(config, stop, out)))
    tail = ctx.Process(target=_tail, args=(config, tail_stop, out))
    policy = resolve_policy(
        RetentionConfig(rules=[RetentionRule(types=["soak.debug"], max_count=1000)])
    )
    assert policy is not None
    samples: list[dict[str, Any]] = []
    removed = runs = 0
    with open_store(config) as store:
        backend = store.backend_name
        tail.start()
        time.sleep(1.0)  # the tail subscribes from position 0 before anything is written
        for p in procs:
            p.start()
        started = time.monotonic()
        next_sample = next_retention = started
        while (now := time.monotonic()) - started < seconds:
            if now >= next_sample:
                samples.append(
                    {
                        "t": round(now - started, 1),
                        "processes": {str(p.pid): _usage(p.pid or 0) for p in [*procs, tail]},
                        "events": store.stats().events,
                    }
                )
                say(f"  {now - started:6.0f} s: {samples[-1]['events']:,} events stored")
                next_sample += sample_every
            if isinstance(store.backend, Retaining) and now >= next_retention:
                report = store.apply_retention(policy=policy)
                removed += report.removed
                runs += 1
                next_retention += retention_every
            time.sleep(0.2)
        stop.set()
        results: dict[str, list[dict[str, Any]]] = {"writer": [], "reader": []}
        for _ in range(len(procs)):
            kind, _k, data = out.get(timeout=120)
            results[kind].append(data)
        for p in procs:
            p.join(60)
        tail_stop.set()
        kind, _k, tail_result = out.get(timeout=300)
        tail.join(60)
        elapsed = time.monotonic() - started
        say("counting and verifying")
        ids = [ev.id for ev in store.iter(Query(types=["soak.step.*"], limit=5000))]
        # ...and a sample of acknowledged ids, one by one (they must all be there).
        missing = 0
        rng = random.Random(7)
        for data in results["writer"]:
            k = data["k"]
            for seq in rng.sample(range(data["seq"]), min(200, data["seq"])):
                eid = event_id(run, k, seq)
                if not _is_debug(seq) and store.get(eid) is None:
                    missing += 1
        result = store.verify()
    kept = sum(d["kept"] for d in results["writer"])
    debug = sum(d["debug"] for d in results["writer"])
    minutes = sorted({m for d in results["writer"] for m in d["latency"]})
    per_minute = []
    for m in minutes:
        appends = _merged([d["latency"].get(m, {}) for d in results["writer"]])
        queries = _merged([d["latency"].get(m, {}) for d in results["reader"]])
        per_minute.append({
            "minute": m,
            "appends": sum(appends.values()),
            "append_p99_ms": round(_p99_ms(appends), 2),
            "queries": sum(queries.values()),
            "query_p99_ms": round(_p99_ms(queries), 2),
        })  # fmt: skip
    return SoakReport(
        seconds=elapsed,
        backend=backend,
        acknowledged=kept + debug,
        acknowledged_kept=kept,
        found_kept=len(ids),
        found_distinct=len(set(ids)),
        missing=missing + max(0, kept - len(set(ids))),
        tail_seen=tail_result["seen"],
        tail_in_order=tail_result["in_order"],
        retention_runs=runs,
        retention_removed=removed,
        verify_ok=result.ok,
        verify_checked=result.checked,
        queries=sum(d["queries"] for d in results["reader"]),
        samples=samples,
        per_minute=per_minute,
    )


def _is_debug(seq: int) -> bool:
    """About 30% of each writer's events are ``soak.debug`` (which retention trims)."""
    return (seq * 2654435761) % 10 < 3


def leak_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per process: RSS and descriptors in the first and last third (flat = no leak)."""
    if len(samples) < 3:
        return {}
    third = max(1, len(samples) // 3)
    out: dict[str, Any] = {}
    for pid in samples[0]["processes"]:
        early = [s["processes"][pid] for s in samples[:third] if pid in s["processes"]]
        late = [s["processes"][pid] for s in samples[-third:] if pid in s["processes"]]
        if not early or not late:
            continue
        out[pid] = {
            "rss_mb_early": round(statistics.median(x["rss_kb"] for x in early) / 1024, 1),
            "rss_mb_late": round(statistics.median(x["rss_kb"] for x in late) / 1024, 1),
            "anon_mb_early": round(statistics.median(x["anon_kb"] for x in early) / 1024, 1),
            "anon_mb_late": round(statistics.median(x["anon_kb"] for x in late) / 1024, 1),
            "fds_early": max(x["fds"] for x in early),
            "fds_late": max(x["fds"] for x in late),
        }
    return out
