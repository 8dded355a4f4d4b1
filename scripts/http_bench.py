#!/usr/bin/env python3
"""Load-test ``eventvault serve`` over loopback (the issue's three figures).

Starts ``eventvault serve`` on a scratch file store (fsync = always), then:

1. ingestion in batches of 100 events per POST (autocannon, --connections 16);
2. single-event POSTs from 32 concurrent connections (autocannon);
3. the SSE tail: one subscriber, a writer posting single events at a steady rate;
   the delay is measured from just before each POST is sent (so it includes the
   append itself) to the moment the subscriber has the event.

Needs ``autocannon`` (``npm install -g autocannon``, or ``npx`` fetches it) and the
server extra.

    python scripts/http_bench.py [--seconds 20] [--workers 1] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(root: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    config = root / "eventvault.toml"
    config.write_text(
        f'[store]\nbackend = "file"\n[store.file]\npath = "{root / "data"}"\nfsync = "always"\n'
    )  # the defaults otherwise: JSON access log on
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventvault.cli", "--config", str(config), "serve",
         "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


#: autocannon from PATH, or through npx (which fetches it once).
AUTOCANNON = ["autocannon"] if shutil.which("autocannon") else ["npx", "-y", "autocannon"]


def autocannon(url: str, body: Path, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [*AUTOCANNON, "--json", "-c", str(connections), "-d", str(seconds), "-m", "POST",
         "-H", "content-type=application/json", "-i", str(body), f"{url}/v1/events"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    res = json.loads(out)
    ok = res["2xx"]
    return {
        "requests_per_s": ok / res["duration"],
        "non_2xx": res["non2xx"] + res["errors"],
        "p50_ms": res["latency"]["p50"],
        "p99_ms": res["latency"]["p99"],
    }


def sse_delay(url: str, events: int, rate: float) -> dict[str, float]:
    sent: dict[int, float] = {}
    delays: list[float] = []
    ready = threading.Event()
    done = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(timeout=60) as client,
            client.stream("GET", f"{url}/v1/events/stream?type=sse.probe") as stream,
        ):
            ready.set()
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    k = json.loads(line[6:])["data"]["k"]
                    delays.append((time.perf_counter() - sent[k]) * 1000)
                    if len(delays) == events:
                        done.set()
                        return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    ready.wait(10)
    time.sleep(0.3)
    with httpx.Client(timeout=30) as client:
        for k in range(events):
            sent[k] = time.perf_counter()
            client.post(f"{url}/v1/events", json={"type": "sse.probe", "data": {"k": k}})
            time.sleep(1 / rate)
    done.wait(30)
    delays.sort()
    return {
        "events": len(delays),
        "p50_ms": statistics.median(delays),
        "p99_ms": delays[int(len(delays) * 0.99) - 1],
        "max_ms": delays[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    if shutil.which("autocannon") is None and shutil.which("npx") is None:
        raise SystemExit("autocannon not found: npm install -g autocannon (or install npx)")
    results: list[dict[str, dict[str, float]]] = []
    for run in range(args.runs):
        root = Path(tempfile.mkdtemp(prefix="eventvault-http-bench-"))
        batch = root / "batch.json"
        batch.write_text(json.dumps([
            {"type": f"agent.tool.t{i % 5}", "stream": f"run-{i % 10}", "actor": "agent-1",
             "correlation_id": "c-1", "data": {"i": i, "text": "x" * 200}}
            for i in range(100)
        ]))  # fmt: skip
        single = root / "single.json"
        single.write_text(json.dumps({"type": "ci.step", "stream": "ci", "data": {"ok": True}}))
        proc, url = start(root, args.workers)
        try:
            print(f"run {run + 1}/{args.runs}: {url}", file=sys.stderr)
            r: dict[str, dict[str, float]] = {}
            r["batch100_c16"] = autocannon(url, batch, 16, args.seconds)
            r["batch100_c16"]["events_per_s"] = r["batch100_c16"]["requests_per_s"] * 100
            r["single_c32"] = autocannon(url, single, 32, args.seconds)
            r["single_c32"]["events_per_s"] = r["single_c32"]["requests_per_s"]
            r["sse_delay"] = sse_delay(url, 2000, 200.0)
            stats = httpx.get(f"{url}/v1/stats").json()
            r["store"] = {"events": stats["events"]}
            results.append(r)
        finally:
            proc.terminate()
            proc.wait(60)
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.runs > 1:
        print("median over runs:", file=sys.stderr)
        for name in results[0]:
            for metric in results[0][name]:
                vals = [r[name][metric] for r in results]
                print(f"  {name:<14} {metric:<15} {statistics.median(vals):>12,.1f} "
                      f"({min(vals):,.1f}–{max(vals):,.1f})", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
