"""``eventvault bench``: measure a backend on this machine.

Always works on a *scratch* store (a temporary directory, or the directory given
with ``--dir``), never the configured one. Events are realistic (~500 bytes:
UUIDv7 id, one of 20 types, 1,000 streams, 50 actors, ~100 events per
correlation id, a causation id, a short text payload) and generated from a fixed
seed. Append rates count only the time spent inside ``append``. Reads, filters,
the cold open and peak RSS are measured in a fresh child process that opens the
store the writer left behind.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from .common import Ctx, PathArg

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


def _lat(values: list[float]) -> dict[str, float]:
    return {"p50_ms": _pct(values, 50) * 1e3, "p95_ms": _pct(values, 95) * 1e3,
            "p99_ms": _pct(values, 99) * 1e3}  # fmt: skip


def bench_config(backend: str, where: Path, dsn: str | None) -> dict[str, Any]:
    if backend == "file":
        return {"store": {"backend": "file", "file": {"path": str(where)}}}
    if backend == "postgres":
        return {"store": {"backend": "postgres", "postgres": {
            "dsn": dsn or "postgresql://postgres@127.0.0.1:5432/postgres",
            "schema": "eventvault_bench"}}}  # fmt: skip
    return {"store": {"backend": backend}}


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _reset(config: dict[str, Any]) -> None:
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
        results["append_batch_1000"] = {"events_per_s": events / spent, **_lat(lat)}

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
            **_lat(lat),
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
            **_lat([x for lst in lats for x in lst]),
        }
    return results


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


def run_reads(config: dict[str, Any], queries: int) -> dict[str, Any]:
    """Open, replay and query; run in a fresh process (see :func:`_child`)."""
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
            return _lat(lat)

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
        results["peak_rss_mb"] = _peak_rss_mb()
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
        raise click.ClickException(f"verify failed after retention: {verified}")
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
            _reset(dst_cfg)
            name = f"copy_{src_cfg['store']['backend']}_to_{dst_cfg['store']['backend']}"
            with open_store(src_cfg) as src, open_store(dst_cfg) as dst:
                say(f"{name.replace('_', ' ')}")
                report = copy_store(src, dst, verify=False)
                t0 = time.perf_counter()
                cmp = compare_stores(src, dst)
                compare_s = time.perf_counter() - t0
            if not cmp.ok:
                raise click.ClickException(f"{name}: the copy differs: {cmp.difference}")
            out[name] = {
                "events": report.copied,
                "events_per_s": report.copied / report.seconds,
                "compare_events_per_s": cmp.events / compare_s,
            }
    finally:
        _reset(hop)
        _reset(back)
    return out


def _soak(
    backend: str,
    duration: str,
    writers: int,
    work_dir: str | None,
    dsn: str | None,
    as_json: bool,
    say: Any,
) -> None:
    import dataclasses

    from ..soak import leak_summary, run_soak
    from ..timeutil import parse_duration

    if backend == "memory":
        raise click.UsageError("the soak needs a store several processes share: file or postgres")
    try:
        seconds = parse_duration(duration).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--soak") from None
    root = Path(tempfile.mkdtemp(prefix="eventvault-soak-", dir=work_dir))
    config = bench_config(backend, root / "store", dsn)
    if backend == "postgres":
        config["store"]["postgres"]["schema"] = "eventvault_soak"
    _reset(config)
    try:
        say(f"soak: {backend} backend, {duration}, {writers} writer processes, a reader, "
            "a live tail, retention every 10 s")  # fmt: skip
        report = run_soak(config, seconds=seconds, writers=writers, say=say)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        _reset(config)
    out = dataclasses.asdict(report)
    out["ok"] = report.ok
    out["leaks"] = leak_summary(report.samples)
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(
            f"soak {backend} {report.seconds:.0f} s: acknowledged {report.acknowledged:,} "
            f"({report.acknowledged_kept:,} kept by policy), found {report.found_kept:,} "
            f"({report.found_distinct:,} distinct), missing {report.missing}, tail saw "
            f"{report.tail_seen:,} (in order: {report.tail_in_order}), retention "
            f"{report.retention_runs} runs / {report.retention_removed:,} removed, verify "
            f"{'ok' if report.verify_ok else 'BROKEN'} ({report.verify_checked:,} events), "
            f"{report.queries:,} queries"
        )
        for row in report.per_minute:
            click.echo(
                f"  minute {row['minute']:>3}: {row['appends']:>7,} appends p99 "
                f"{row['append_p99_ms']:>8.1f} ms, {row['queries']:>6,} queries p99 "
                f"{row['query_p99_ms']:>8.1f} ms"
            )
        for pid, leak in out["leaks"].items():
            click.echo(
                f"  pid {pid}: RSS {leak['rss_mb_early']} -> {leak['rss_mb_late']} MB (anonymous "
                f"{leak['anon_mb_early']} -> {leak['anon_mb_late']} MB), fds "
                f"{leak['fds_early']} -> {leak['fds_late']}"
            )
        click.echo("OK" if report.ok else "FAILED")
    if not report.ok:
        sys.exit(6)


def _peak_rss_mb() -> float:
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


def _child(config: dict[str, Any], queries: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "eventvault.cli.bench", json.dumps(config), str(queries)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise click.ClickException(f"bench reader process failed:\n{proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _summary(runs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(workload, metric, 'median (min–max)') rows over all runs."""
    rows = []
    for name in runs[0]:
        if not isinstance(runs[0][name], dict):
            vals = [r[name] for r in runs]
            rows.append((name, "MB", _fmt(vals)))
            continue
        for metric in runs[0][name]:
            if metric == "events" and not name.startswith(("open", "retention_", "copy_")):
                continue
            vals = [r[name][metric] for r in runs]
            rows.append((name, metric, _fmt(vals)))
    return rows


def _fmt(vals: list[float]) -> str:
    med = statistics.median(vals)
    if len(vals) == 1:
        return f"{med:,.3f}" if med < 100 else f"{med:,.0f}"
    lo, hi = min(vals), max(vals)
    if med < 100:
        return f"{med:,.3f} ({lo:,.3f}–{hi:,.3f})"
    return f"{med:,.0f} ({lo:,.0f}–{hi:,.0f})"


@click.command()
@click.option(
    "--backend",
    "bench_backend",
    type=click.Choice(["file", "memory", "postgres"]),
    default="file",
    show_default=True,
)
@click.option(
    "--events",
    type=click.IntRange(1000),
    default=100_000,
    show_default=True,
    help="Events appended in batches (and then queried).",
)
@click.option(
    "--single",
    type=click.IntRange(10),
    default=2000,
    show_default=True,
    help="Events for the single-event workloads (x2 for the threaded one).",
)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option(
    "--queries",
    type=click.IntRange(1),
    default=300,
    show_default=True,
    help="Queries per filter workload.",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="Repeat everything; report median (min–max).",
)
@click.option(
    "--dir",
    "work_dir",
    type=PathArg(file_okay=False),
    default=None,
    help="Scratch directory (default: a temporary one, removed afterwards).",
)
@click.option("--dsn", default=None, help="PostgreSQL DSN for --backend postgres.")
@click.option("--json", "as_json", is_flag=True, help="Print raw results as JSON.")
@click.option(
    "--compare/--no-compare",
    default=True,
    show_default=True,
    help="postgres: also run the eventsourcing library's recorder (if installed; "
    "pip install 'eventvault[bench]') and print the ratios.",
)
@click.option(
    "--copy/--no-copy",
    "with_copy",
    default=False,
    show_default=True,
    help="Also measure 'eventvault copy' file -> postgres -> file (or the other way round).",
)
@click.option(
    "--soak",
    "soak_for",
    default=None,
    metavar="DURATION",
    help="Instead: the soak test for DURATION (e.g. 30m): writer processes, queries, a "
    "live tail, retention; every acknowledged event accounted for (see docs/reliability.md).",
)
@click.option("--soak-writers", type=click.IntRange(1, 32), default=3, show_default=True)
def bench(
    soak_for: str | None,
    soak_writers: int,
    with_copy: bool,
    bench_backend: str,
    events: int,
    single: int,
    threads: int,
    queries: int,
    runs: int,
    work_dir: str | None,
    dsn: str | None,
    as_json: bool,
    compare: bool,
) -> None:
    """Benchmark a backend on a scratch store (never your configured one).

    \b
    Examples:
      eventvault bench                              # file backend, 100k events
      eventvault bench --events 1000000 --runs 3    # the published figures
      eventvault bench --backend postgres --events 1000000 --runs 3
    """

    def say(message: str) -> None:
        click.echo(message, err=True)

    chosen = click.get_current_context().find_object(Ctx)
    remote = os.environ.get("EVENTVAULT_BACKEND") == "http"  # (it would override ours)
    if remote or (chosen is not None and (chosen.url or chosen.backend == "http")):
        # (bench measures a scratch store it makes; it cannot make one on a server)
        say(
            "error: bench measures a scratch store of its own, so it needs a local backend "
            "(--backend file|memory|postgres); for a server's throughput run "
            "scripts/client_bench.py or scripts/http_bench.py against it"
        )
        sys.exit(2)
    if soak_for is not None:
        _soak(bench_backend, soak_for, soak_writers, work_dir, dsn, as_json, say)
        return
    all_runs = []
    for run in range(runs):
        root = Path(tempfile.mkdtemp(prefix="eventvault-bench-", dir=work_dir))
        config = bench_config(bench_backend, root / "store", dsn)
        _reset(config)
        try:
            say(f"run {run + 1}/{runs}: {bench_backend} backend in {root}")
            result = run_writes(config, events, single, threads, say)
            if bench_backend == "postgres" and compare and not _have("eventsourcing"):
                say(
                    "eventsourcing is not installed (pip install 'eventvault[bench]'): "
                    "no comparison this run"
                )
            elif bench_backend == "postgres" and compare:
                pg_dsn = config["store"]["postgres"]["dsn"]
                theirs = run_eventsourcing_writes(pg_dsn, events, single, threads, say)
                result.update(theirs)
                for name in list(theirs):
                    ours = result[name.removeprefix("es_")]["events_per_s"]
                    result[f"ratio_{name.removeprefix('es_')}"] = {
                        "x": ours / theirs[name]["events_per_s"]
                    }
            if with_copy and bench_backend != "memory":
                result.update(run_copies(config, root, dsn, say))
            if bench_backend != "memory":
                say("reads, filters, open time and RSS in a fresh process")
                result.update(_child(config, queries))
            all_runs.append(result)
        finally:
            shutil.rmtree(root, ignore_errors=True)
            _reset(config)
    if as_json:
        click.echo(json.dumps(all_runs, indent=2))
        return
    click.echo(
        f"eventvault bench: backend={bench_backend} events={events} single={single} "
        f"threads={threads} queries={queries} runs={runs} (median (min–max))"
    )
    for name, metric, value in _summary(all_runs):
        click.echo(f"  {name:<30} {metric:<14} {value}")


if __name__ == "__main__":  # the reader child process
    os.environ.setdefault("PYTHONHASHSEED", "0")
    print(json.dumps(run_reads(json.loads(sys.argv[1]), int(sys.argv[2]))))
