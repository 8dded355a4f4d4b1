#!/usr/bin/env python3
"""Live-tail flood test of ``eventvault serve`` over loopback (issue 16.4).

Starts ``eventvault serve`` on a scratch file store, then:

1. appends single events one at a time (keep-alive client) and takes the p50
   latency with no subscriber;
2. opens ``--subscribers`` SSE tails (raw sockets, read scope; they follow a stream
   the appends do not touch — idle — unless ``--matching``) and takes the append p50
   again, with the server's RSS and thread count;
3. asks for one tail beyond ``server.max_subscribers`` and checks the refusal;
4. closes them all, takes the RSS again once they have left, and the append p50
   without subscribers once more (the machine's own drift).

Bounded: loopback only, a fixed number of appends and connections, and the
server stops at the end.

    python scripts/sse_load.py [--subscribers 1000] [--appends 400] [--matching]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Figures:
    subscribers: int
    matching: bool
    p50_none_ms: float
    p50_with_ms: float
    p50_none_after_ms: float
    ratio: float
    rss_before_mib: float
    rss_with_mib: float
    rss_after_mib: float
    threads_before: int
    threads_with: int
    refused_status: int
    refused_type: str
    delivered: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def rss_mib(pid: int) -> float:
    return int(_proc_status(pid)["VmRSS"].split()[0]) / 1024


def threads(pid: int) -> int:
    return int(_proc_status(pid)["Threads"])


def start_server(
    work: Path, subscribers: int, caps: bool = True
) -> tuple[subprocess.Popen[bytes], str]:
    config = work / "eventvault.toml"
    config.write_text(
        f'[store]\nbackend = "file"\n[store.file]\npath = "{work / "data"}"\n'
        "[server]\naccess_log = false\n"
        + (
            f"max_subscribers = {subscribers}\nmax_subscribers_per_token = {subscribers}\n"
            if caps
            else ""
        )
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventvault.cli",
            "--config",
            str(config),
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def append_p50(url: str, n: int, stream: str) -> float:
    took = []
    with httpx.Client(timeout=30) as client:
        for k in range(n):
            started = time.perf_counter()
            r = client.post(f"{url}/v1/events", json={"type": "load.tick", "stream": stream,
                                                       "data": {"k": k}})  # fmt: skip
            took.append(time.perf_counter() - started)
            assert r.status_code == 201, r.text
    return statistics.median(took) * 1000


async def _open_tail(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace"))
    await reader.readuntil(b"\n\n")  # the preamble
    return reader, writer


async def _drain(reader: asyncio.StreamReader, seen: list[int]) -> None:
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            seen[0] += chunk.count(b"\nid: ")
    except (ConnectionError, asyncio.CancelledError):
        return


def _one_more(url: str) -> httpx.Response:
    """One tail beyond the cap: its answer (the head only, if it is admitted)."""
    with httpx.Client(timeout=10) as client, client.stream("GET", url) as response:
        if response.status_code != 200:
            response.read()
        return response


def run(subscribers: int, appends: int, matching: bool, caps: bool = True) -> Figures:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < subscribers + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, subscribers + 1000), hard))
    with tempfile.TemporaryDirectory(prefix="sse-load-") as tmp:
        proc, url = start_server(Path(tmp), subscribers, caps)
        port = int(url.rsplit(":", 1)[1])
        try:
            append_p50(url, 50, "warm-up")
            p50_none = append_p50(url, appends, "load")
            rss_before, threads_before = rss_mib(proc.pid), threads(proc.pid)
            tail = "/v1/events/stream" + ("?stream=load" if matching else "?stream=elsewhere")

            async def flood() -> tuple[float, float, int, int, str, int]:
                opened = await asyncio.gather(*(_open_tail(port, tail) for _ in range(subscribers)))
                seen = [0]
                drains = [asyncio.create_task(_drain(r, seen)) for r, _w in opened]
                await asyncio.sleep(1)
                loop = asyncio.get_running_loop()
                p50 = await loop.run_in_executor(None, append_p50, url, appends, "load")
                rss_with, threads_with = rss_mib(proc.pid), threads(proc.pid)
                refused = await loop.run_in_executor(None, _one_more, url + tail)
                await asyncio.sleep(0.5)
                for _r, w in opened:
                    w.close()
                for t in drains:
                    t.cancel()
                await asyncio.gather(*drains, return_exceptions=True)
                kind = refused.json()["error"]["type"] if refused.status_code != 200 else ""
                refused.close()
                return p50, rss_with, threads_with, refused.status_code, kind, seen[0]

            p50_with, rss_with, threads_with, status, kind, seen = asyncio.run(flood())
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # gone: the gauge is back at 0
                metrics = httpx.get(f"{url}/metrics", timeout=10).text
                if "eventvault_subscribers 0.0" in metrics:
                    break
                time.sleep(0.2)
            time.sleep(1)
            rss_after = rss_mib(proc.pid)
            p50_none_after = append_p50(url, appends, "load")
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return Figures(
        subscribers=subscribers,
        matching=matching,
        p50_none_ms=round(p50_none, 3),
        p50_with_ms=round(p50_with, 3),
        p50_none_after_ms=round(p50_none_after, 3),
        ratio=round(p50_with / p50_none, 2),
        rss_before_mib=round(rss_before, 1),
        rss_with_mib=round(rss_with, 1),
        rss_after_mib=round(rss_after, 1),
        threads_before=threads_before,
        threads_with=threads_with,
        refused_status=status,
        refused_type=kind,
        delivered=seen,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--appends", type=int, default=400)
    parser.add_argument("--matching", action="store_true", help="tails receive every append")
    parser.add_argument(
        "--no-caps", action="store_true", help="write no cap keys (to measure older servers)"
    )
    args = parser.parse_args(argv)
    figures = run(args.subscribers, args.appends, args.matching, caps=not args.no_caps)
    out: dict[str, Any] = asdict(figures)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
