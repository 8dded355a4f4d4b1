"""The workloads ``eventvault bench`` runs, and the events they append.

Events are realistic (~500 bytes: UUIDv7 id, one of 20 types, 1,000 streams, 50
actors, ~100 events per correlation id, a causation id, a short text payload) and
generated from a fixed seed. Append rates count only the time spent inside
``append``. :func:`run_reads` is meant for a fresh process (see
:mod:`eventvault.benchmarks.runner`), so that the cold open and the peak RSS are
the reader's own. The eventsourcing comparison is in
:mod:`eventvault.benchmarks.compare`.
"""

from __future__ import annotations

import importlib.util
import random
import resource
import statistics
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "TYPES",
    "BenchError",
    "EventMaker",
    "bench_config",
    "have",
    "latencies",
    "peak_rss_mb",
    "reset",
    "run_copies",
    "run_reads",
    "run_retention",
    "run_writes",
]


class BenchError(Exception):
    """A benchmark found something wrong (a failed verify, a copy that differs, a
    reader process that died); the command reports the message and exits 1."""


WORDS = [
    "agent",
    "planner",
    "coder",
    "reviewer",
    "build",
    "test",
    "deploy",
    "merge",
    "patch",
    "commit",
    "branch",
    "release",
    "retry",
    "timeout",
    "cache",
    "artifact",
    "lint",
    "format",
    "check",
    "pass",
    "fail",
    "queue",
    "worker",
    "step",
    "job",
    "run",
    "prompt",
    "tool",
    "call",
    "result",
    "diff",
    "file",
    "module",
    "service",
    "endpoint",
    "schema",
    "migration",
    "index",
]
TYPES = [f"{area}.{verb}" for area in ("task", "build", "deploy", "tool", "agent")
         for verb in ("started", "completed", "failed", "retried")]  # fmt: skip


class EventMaker:
    """Deterministic, realistic events."""

    def __init__(self, seed: int = 42) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        # A pool of payload texts: generating words per event would dominate the run.
        self.texts = [" ".join(self.rng.choice(WORDS) for _ in range(25)) for _ in range(4096)]

    def make(self, count: int) -> list[Any]:
        from ..model import NewEvent

        rng = self.rng
        out = []
        for _ in range(count):
            i = self.n
            self.n += 1
            out.append(
                NewEvent(
                    type=TYPES[rng.randrange(len(TYPES))],
                    stream=f"loop-{rng.randrange(1000)}",
                    actor=f"agent:{rng.randrange(50)}",
                    correlation_id=f"run-{i // 100}",
                    causation_id=f"cmd-{rng.randrange(10**9)}",
                    source="urn:eventvault:bench",
                    data={
                        "task": f"T{rng.randrange(100000)}",
                        "status": rng.choice(("ok", "failed", "retry")),
                        "attempt": rng.randrange(5),
                        "text": self.texts[rng.randrange(4096)],
                    },
                )
            )
        return out


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def latencies(values: list[float]) -> dict[str, float]:
    """p50, p95 and p99 of ``values`` (seconds), in ms."""
    return {"p50_ms": _pct(values, 50) * 1e3, "p95_ms": _pct(values, 95) * 1e3,
            "p99_ms": _pct(values, 99) * 1e3}  # fmt: skip


def bench_config(backend: str, where: Path, dsn: str | None) -> dict[str, Any]:
    """The configuration of a scratch store of ``backend`` (file: at ``where``)."""
    if backend == "file":
        return {"store": {"backend": "file", "file": {"path": str(where)}}}
    if backend == "postgres":
        return {"store": {"backend": "postgres", "postgres": {
            "dsn": dsn or "postgresql://postgres@127.0.0.1:5432/postgres",
            "schema": "eventvault_bench"}}}  # fmt: skip
    return {"store": {"backend": backend}}


def have(module: str) -> bool:
    """Whether ``module`` is importable (the comparison needs the bench extra)."""
    return importlib.util.find_spec(module) is not None


def reset(config: dict[str, Any]) -> None:
    """Start from an empty scratch store (PostgreSQL: drop the bench schema)."""
    if config["store"]["backend"] == "postgres":
        from ..backends.postgres.store import drop_schema

        pg = config["store"]["postgres"]
        drop_schema(pg["dsn"], pg["schema"])


def run_writes(
    config: dict[str, Any], events: int, single: int, threads: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """Append workloads, in-process. Leaves ``events`` (+ singles) in the store."""
    from ..registry import open_store

    results: dict[str, Any] = {}
    maker = EventMaker()
    with open_store(config) as store:
        # Batched appends, batches of 1000.
        say(f"batched append: {events} events in batches of 1000")
        spent, lat = 0.0, []
        done = 0
        while done < events:
            batch = maker.make(min(1000, events - done))
            t0 = time.perf_counter()
            store.append(batch)
            dt = time.perf_counter() - t0
            spent += dt
            lat.append(dt)
            done += len(batch)
        results["append_batch_1000"] = {"events_per_s": events / spent, **latencies(lat)}

        say(f"single-event append, 1 thread: {single} events")
        pending = maker.make(single)
        lat = []
        t_start = time.perf_counter()
        for e in pending:
            t0 = time.perf_counter()
            store.append(e)
            lat.append(time.perf_counter() - t0)
        results["append_single_1_thread"] = {
            "events_per_s": single / (time.perf_counter() - t_start),
            **latencies(lat),
        }

        say(f"single-event append, {threads} threads: {single * 2} events")
        per = (single * 2) // threads
        work = [maker.make(per) for _ in range(threads)]
        lats: list[list[float]] = [[] for _ in range(threads)]
        barrier = threading.Barrier(threads + 1)

        def writer(k: int) -> None:
            barrier.wait()
            for e in work[k]:
                t0 = time.perf_counter()
                store.append(e)
                lats[k].append(time.perf_counter() - t0)

        pool = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        barrier.wait()
        t_start = time.perf_counter()
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - t_start
        results[f"append_single_{threads}_threads"] = {
            "events_per_s": per * threads / elapsed,
            **latencies([x for lst in lats for x in lst]),
        }
    return results


def run_reads(config: dict[str, Any], queries: int) -> dict[str, Any]:
    """Open, replay and query; run in a fresh process (see
    :func:`eventvault.benchmarks.runner.read_in_child`)."""
    from ..model import Query
    from ..registry import open_store

    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    store = open_store(config)
    head = store.head()
    results["open"] = {"seconds": time.perf_counter() - t0, "events": head}
    rng = random.Random(7)
    with store:
        runs = max(1, head // 100)
        newest = store.read(Query(reverse=True, limit=1)).events[0].recorded_at
        oldest = store.read(Query(limit=1)).events[0].recorded_at
        span = (newest - oldest).total_seconds()

        def timed(make_query: Callable[[], Query]) -> dict[str, float]:
            lat = []
            for _ in range(queries):
                q = make_query()
                t = time.perf_counter()
                store.read(q)
                lat.append(time.perf_counter() - t)
            return latencies(lat)

        def window() -> Query:
            start = oldest + timedelta(seconds=rng.random() * span)
            return Query(
                types=[rng.choice(TYPES)],
                since=start,
                until=start + timedelta(seconds=max(span / 20, 0.001)),
            )

        results["query_correlation_id"] = timed(
            lambda: Query(correlation_ids=[f"run-{rng.randrange(runs)}"])
        )
        results["query_actor"] = timed(lambda: Query(actors=[f"agent:{rng.randrange(50)}"]))
        results["query_type_time_window"] = timed(window)
        results["query_time_range_first_page"] = timed(
            lambda: Query(since=oldest + timedelta(seconds=rng.random() * span))
        )
        t = time.perf_counter()
        n = sum(1 for _ in store.iter(Query(limit=10_000)))
        results["replay_all"] = {"events_per_s": n / (time.perf_counter() - t), "events": n}
        results["peak_rss_mb"] = peak_rss_mb()
        results.update(run_retention(store, newest))
    return results


def run_retention(store: Any, newest: Any) -> dict[str, Any]:
    """Plan (3 times) and apply a mixed policy a week after the last event, then verify.

    The policy: ``tool.*`` kept 7 days (all of it goes), ``agent.*`` forever, the
    newest half of everything else kept by count — holes everywhere, the hard case.
    """
    from ..config import RetentionConfig, RetentionRule
    from ..retention import resolve_policy

    head = store.head()
    policy = resolve_policy(
        RetentionConfig(
            max_count=max(1, head // 2),
            rules=[
                RetentionRule(types=["tool.*"], max_age="7d"),
                RetentionRule(types=["agent.*"], keep="forever"),
            ],
        )
    )
    now = newest + timedelta(days=8)
    lat = []
    for _ in range(3):
        t = time.perf_counter()
        plan = store.plan_retention(policy, now=now)
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    report = store.apply_retention(plan, policy=policy)
    applied = time.perf_counter() - t
    t = time.perf_counter()
    verified = store.verify()
    if not verified.ok:
        raise BenchError(f"verify failed after retention: {verified}")
    return {
        "retention_plan": {"seconds": statistics.median(lat), "events": plan.count},
        "retention_apply": {
            "events_per_s": report.removed / applied,
            "seconds": applied,
            "events": report.removed,
        },
        "verify_after_retention": {
            "events_per_s": verified.checked / (time.perf_counter() - t),
            "events": verified.checked,
        },
    }


def run_copies(config: dict[str, Any], root: Path, dsn: str | None, say: Any) -> dict[str, Any]:
    """``eventvault copy`` both ways between the file backend and PostgreSQL, starting
    from the store the writes made (copy time, then the event-by-event comparison)."""
    from ..copy import compare_stores, copy_store
    from ..registry import open_store

    here = config["store"]["backend"]
    other = "postgres" if here == "file" else "file"
    hop = bench_config(other, root / "copy-1", dsn)
    back = bench_config(here, root / "copy-2", dsn)
    if other == "postgres":
        hop["store"]["postgres"]["schema"] = "eventvault_bench_copy"
    else:
        back["store"]["postgres"]["schema"] = "eventvault_bench_copy"
    out: dict[str, Any] = {}
    try:
        for src_cfg, dst_cfg in ((config, hop), (hop, back)):
            reset(dst_cfg)
            name = f"copy_{src_cfg['store']['backend']}_to_{dst_cfg['store']['backend']}"
            with open_store(src_cfg) as src, open_store(dst_cfg) as dst:
                say(f"{name.replace('_', ' ')}")
                report = copy_store(src, dst, verify=False)
                t0 = time.perf_counter()
                cmp = compare_stores(src, dst)
                compare_s = time.perf_counter() - t0
            if not cmp.ok:
                raise BenchError(f"{name}: the copy differs: {cmp.difference}")
            out[name] = {
                "events": report.copied,
                "events_per_s": report.copied / report.seconds,
                "compare_events_per_s": cmp.events / compare_s,
            }
    finally:
        reset(hop)
        reset(back)
    return out


def peak_rss_mb() -> float:
    """This process's peak RSS. Not ``ru_maxrss``: after fork+exec that still holds the
    parent's high-water mark (here: the writer's). ``VmHWM`` is the new image's own."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
