#!/usr/bin/env python3
"""The http backend's figures (issue 19), beside the load tool's, against one server.

Starts ``eventvault serve`` on a scratch file store (fsync = always, loopback) and,
in the same run against that same server:

1. batched ingest, batches of 100 events: autocannon (16 connections) and the
   client (``HttpEventStore.send`` — the lean answer — and ``append``, whole records
   back) from several producer processes; the ratio client / load tool;
2. single-event appends from 1 and 16 producers (threads of one process): events/s,
   p50/p99 — and autocannon with 1 and 16 connections;
3. the batching ``Producer``: the latency of ``append`` (p50/p99/max) while the server
   is reachable, at a steady rate and flat out;
4. the server down for ``--down`` seconds (30): a producer appending at a steady rate
   with ``max_buffer`` 20,000 and ``when_full="raise"`` — its RSS each second, how
   many appends it refused — then the server back: every accepted event stored
   exactly once.

The machine may be shared: compare the ratios within one run, not the absolute
figures across runs.

    python scripts/client_bench.py [--seconds 10] [--down 30]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import autocannon, free_port

from eventvault import NewEvent, Query
from eventvault.backends.http import HttpEventStore, Producer
from eventvault.errors import BufferFullError


def start(root: Path, port: int) -> subprocess.Popen[bytes]:
    config = root / "eventvault.toml"
    config.write_text(
        f'[store]\nbackend = "file"\n[store.file]\npath = "{root / "data"}"\nfsync = "always"\n'
        "[server]\naccess_log = false\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventvault.cli", "--config", str(config), "serve",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(60)


def batch_events(n: int) -> list[NewEvent]:
    return [
        NewEvent(type=f"agent.tool.t{i % 5}", stream=f"run-{i % 10}", actor="agent-1",
                 correlation_id="c-1", data={"i": i, "text": "x" * 200})
        for i in range(n)
    ]  # fmt: skip


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


# -- 1. batched ingest ------------------------------------------------------------------


def _ingest_worker(url: str, seconds: float, lean: bool, threads: int, out: Any) -> None:
    store = HttpEventStore(url)
    counts = [0] * threads

    def run(k: int) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = batch_events(100)  # (new ids each time, like the load tool's new bodies)
            if lean:
                store.send(batch)
            else:
                store.append(batch)
            counts[k] += 100

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    store.close()
    out.put(sum(counts))


def client_ingest(url: str, seconds: float, procs: int, threads: int, lean: bool) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ps = [
        ctx.Process(target=_ingest_worker, args=(url, seconds, lean, threads, q))
        for _ in range(procs)
    ]
    for p in ps:
        p.start()
    total = sum(q.get() for _ in ps)
    for p in ps:
        p.join()
    return total / seconds  # (each worker sends for ``seconds``, all at once)


# -- 2. single events ---------------------------------------------------------------------


def client_single(url: str, seconds: float, producers: int) -> dict[str, float]:
    store = HttpEventStore(url)
    latencies: list[list[float]] = [[] for _ in range(producers)]

    def run(k: int) -> None:
        deadline = time.monotonic() + seconds
        mine = latencies[k]
        while time.monotonic() < deadline:
            ev = NewEvent(type="ci.step", stream="ci", data={"ok": True})
            t0 = time.perf_counter()
            store.append(ev)
            mine.append(time.perf_counter() - t0)

    started = time.monotonic()
    ts = [threading.Thread(target=run, args=(k,)) for k in range(producers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.monotonic() - started
    store.close()
    flat = [x for xs in latencies for x in xs]
    return {
        "events_per_s": len(flat) / took,
        "p50_ms": statistics.median(flat) * 1000,
        "p99_ms": pct(flat, 0.99) * 1000,
    }


# -- 3. the producer's append ---------------------------------------------------------------


def producer_latency(url: str, n: int, rate: float | None) -> dict[str, float]:
    producer = Producer.connect(url, max_batch=500, linger=0.02)
    events = [NewEvent(type="agent.step", data={"i": i}) for i in range(n)]
    took: list[float] = []
    gap = 0.0 if rate is None else 1.0 / rate
    next_at = time.perf_counter()
    for ev in events:
        if gap:
            while time.perf_counter() < next_at:
                pass
            next_at += gap
        t0 = time.perf_counter_ns()
        producer.append(ev)
        took.append((time.perf_counter_ns() - t0) / 1000)
    report = producer.close()
    assert report.ok, report
    return {
        "events": n,
        "rate": rate or 0,
        "p50_us": statistics.median(took),
        "p99_us": pct(took, 0.99),
        "p999_us": pct(took, 0.999),
        "max_us": max(took),
        "delivered": report.delivered,
    }


# -- 4. the server down -------------------------------------------------------------------


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def server_down(root: Path, port: int, seconds: float, rate: float) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    ns = uuid.uuid4()
    producer = Producer.connect(url, max_batch=500, max_buffer=20_000, when_full="raise",
                                linger=0.02, retries=0)  # fmt: skip
    accepted: list[uuid.UUID] = []
    refused = 0
    rss: list[int] = []
    i = 0

    def pump(duration: float) -> None:
        nonlocal i, refused
        deadline = time.monotonic() + duration
        next_sample = time.monotonic()
        next_at = time.perf_counter()
        while time.monotonic() < deadline:
            ev = NewEvent(id=uuid.uuid5(ns, str(i)), type="agent.step",
                          data={"i": i, "text": "x" * 200})  # fmt: skip
            i += 1
            try:
                producer.append(ev)
                accepted.append(ev.id)
            except BufferFullError:
                refused += 1
            next_at += 1.0 / rate
            while time.perf_counter() < next_at:
                time.sleep(0.0002)
            if time.monotonic() >= next_sample:
                rss.append(rss_kib())
                next_sample += 1.0

    base = rss_kib()
    pump(seconds)
    pending_at_end = producer.pending
    proc = start(root, port)
    try:
        flushed = producer.flush(120)
        report = producer.close()
        with HttpEventStore(url) as store:
            stored = [e.id for e in store.iter(Query(types=["agent.step"], limit=5000))]
    finally:
        stop(proc)
    mine = set(accepted)
    got = [x for x in stored if x in mine]
    return {
        "down_s": seconds,
        "attempted": i,
        "accepted": len(accepted),
        "refused_buffer_full": refused,
        "pending_when_back": pending_at_end,
        "rss_kib_before": base,
        "rss_kib_max": max(rss),
        "rss_kib_samples": rss,
        "flushed": flushed,
        "report_ok": report.ok,
        "stored_of_accepted": len(got),
        "distinct_stored": len(set(got)),
        "exactly_once": len(got) == len(set(got)) == len(accepted),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--down", type=int, default=30)
    ap.add_argument("--procs", type=int, default=1, help="producer processes (batched)")
    ap.add_argument("--threads", type=int, default=8, help="threads per producer process")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="eventvault-client-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    body = root / "batch.json"
    body.write_text(json.dumps([
        {"type": f"agent.tool.t{i % 5}", "stream": f"run-{i % 10}", "actor": "agent-1",
         "correlation_id": "c-1", "data": {"i": i, "text": "x" * 200}}
        for i in range(100)
    ]))  # fmt: skip
    single = root / "single.json"
    single.write_text(json.dumps({"type": "ci.step", "stream": "ci", "data": {"ok": True}}))
    proc = start(root, port)
    try:
        say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
        say("1. batched ingest: the load tool")
        tool = autocannon(url, body, 16, args.seconds)
        tool["events_per_s"] = tool["requests_per_s"] * 100
        out["tool_batch100_c16"] = tool
        say("1. batched ingest: the client (lean answers)")
        lean = client_ingest(url, args.seconds, args.procs, args.threads, lean=True)
        say("1. batched ingest: the client (whole records back)")
        whole = client_ingest(url, args.seconds, args.procs, args.threads, lean=False)
        say("1. again, the load tool (the machine may have changed meanwhile)")
        tool2 = autocannon(url, body, 16, args.seconds)
        tool2["events_per_s"] = tool2["requests_per_s"] * 100
        tool_mean = (tool["events_per_s"] + tool2["events_per_s"]) / 2
        out["tool_batch100_c16_again"] = tool2
        out["client_batch100"] = {
            "producers": f"{args.procs} processes x {args.threads} threads",
            "send_events_per_s": lean,
            "append_events_per_s": whole,
            "send_vs_tool": lean / tool_mean,
            "append_vs_tool": whole / tool_mean,
        }
        for n in (1, 16):
            say(f"2. single events, {n} producer(s)")
            out[f"client_single_{n}"] = client_single(url, args.seconds, n)
            t = autocannon(url, single, n, args.seconds)
            t["events_per_s"] = t["requests_per_s"]
            out[f"tool_single_c{n}"] = t
        say("3. the producer's append latency")
        out["producer_steady_5k"] = producer_latency(url, 50_000, 5000.0)
        out["producer_flat_out"] = producer_latency(url, 100_000, None)
    finally:
        stop(proc)
    say(f"4. the server down for {args.down} s")
    out["server_down"] = server_down(root, port, args.down, 2000.0)
    shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
