#!/usr/bin/env python3
"""CPU time per ``POST /v1/events`` inside the ASGI app, no sockets, no HTTP parser.

What the framework (routing, middleware, the append route itself) costs per
request, on the memory backend (so the store is cheap and constant): single
events and batches of 100. CPU time of this process, not wall time, so two
versions can be compared on a busy machine: run it with each checkout's code
(``PYTHONPATH=<checkout>/src``), alternately, and compare the medians.

    python scripts/asgi_append_bench.py [--requests 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from eventvault.backends.memory import MemoryEventStore
from eventvault.server import create_app


def _body(n: int) -> bytes:
    events = [{"type": "t.x", "data": {"i": i, "pad": "x" * 100}} for i in range(n)]
    return json.dumps(events[0] if n == 1 else events).encode()


async def _post(app: Any, body: bytes) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/events",
        "raw_path": b"/v1/events",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8730),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # pragma: no cover - the route reads the body once
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _measure(requests: int, size: int) -> float:
    """Microseconds of CPU per request."""
    app = create_app(MemoryEventStore())
    body = _body(size)
    async with app.router.lifespan_context(app):
        for _ in range(50):  # warm up
            assert await _post(app, body) == 201
        started = time.process_time()
        for _ in range(requests):
            await _post(app, body)
        return (time.process_time() - started) / requests * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    out: dict[str, float] = {}
    for name, size, n in (("single", 1, args.requests), ("batch100", 100, args.requests // 10)):
        runs = [asyncio.run(_measure(n, size)) for _ in range(args.rounds)]
        out[name] = round(statistics.median(runs), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
