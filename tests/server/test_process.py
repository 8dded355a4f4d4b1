"""A real ``eventvault serve`` process over loopback: appends, the SSE live tail and
its resumption, slow clients, SIGHUP reloads (good and bad), graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from eventvault import EventStore, Query, open_store

EV = [sys.executable, "-m", "eventvault.cli"]


def file_store(path: Path) -> EventStore:
    return open_store({"store": {"backend": "file", "file": {"path": str(path)}}})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str, seconds: float) -> bool:
    """Whether ``url`` answers 200 within ``seconds`` (a server starting up)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.05)
    return False


def write_config(path: Path, data_dir: Path, extra: str = "") -> None:
    path.write_text(
        f'[store]\nbackend = "file"\n[store.file]\npath = "{data_dir}"\n'
        f'[server]\nheartbeat = "1s"\nheader_timeout = "1s"\ngraceful_timeout = "10s"\n{extra}'
    )


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int, config: Path) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.config = config
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def log_has(self, text: str, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.05)
        return False


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    config = tmp_path / "eventvault.toml"
    write_config(config, tmp_path / "data-a")
    port = free_port()
    proc = subprocess.Popen(
        [*EV, "--config", str(config), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    srv = Served(proc, port, config)
    if not answers(f"{srv.url}/healthz", 30):
        proc.kill()
        raise AssertionError("".join(srv.lines))
    yield srv
    if proc.poll() is None:
        proc.terminate()  # graceful (and lets coverage write its data)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post(srv: Served, *events: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{srv.url}/v1/events", json=list(events), timeout=30)


def sse_events(response: httpx.Response, n: int) -> list[dict[str, object]]:
    """The first ``n`` events of an open SSE response (ids checked against positions)."""
    out: list[dict[str, object]] = []
    current_id = None
    for line in response.iter_lines():
        if line.startswith("id: "):
            current_id = int(line[4:])
        elif line.startswith("data: "):
            event = json.loads(line[6:])
            assert event["position"] == current_id
            out.append(event)
            if len(out) == n:
                return out
    raise AssertionError(f"stream ended after {len(out)} events")


def test_append_read_and_live_tail_over_loopback(served: Served) -> None:
    assert post(served, {"type": "boot.done", "data": {}}).status_code == 201
    with httpx.Client(timeout=30) as client:
        with client.stream("GET", f"{served.url}/v1/events/stream?type=task.*") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            sent = post(served, {"type": "noise.x"}, {"type": "task.a", "data": {"k": 1}},
                        {"type": "task.b", "data": {"k": 2}})  # fmt: skip
            assert sent.status_code == 201
            got = sse_events(stream, 2)
        assert [e["type"] for e in got] == ["task.a", "task.b"]
        # Resume after the first one, as a reconnecting EventSource would.
        headers = {"Last-Event-ID": str(got[0]["position"])}
        with client.stream(
            "GET", f"{served.url}/v1/events/stream?type=task.*", headers=headers
        ) as again:
            (resumed,) = sse_events(again, 1)
        assert resumed["type"] == "task.b"
        # Heartbeats keep an idle stream alive.
        with client.stream("GET", f"{served.url}/v1/events/stream") as idle:
            lines = idle.iter_lines()
            seen = [next(lines) for _ in range(6)]
        assert ": keep-alive" in seen


def test_slow_client_is_cut_off_after_the_head_deadline(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # ... and never finish
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < 5
    assert httpx.get(f"{served.url}/healthz").status_code == 200  # others unaffected


def test_sighup_switches_backend_and_a_bad_config_keeps_the_old(
    served: Served, tmp_path: Path
) -> None:
    assert post(served, {"type": "before.reload"}).status_code == 201
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", f"{served.url}/v1/events/stream") as tail,
    ):
        write_config(served.config, tmp_path / "data-b")
        served.proc.send_signal(signal.SIGHUP)
        assert served.log_has("reloaded"), "".join(served.lines)
        assert post(served, {"type": "after.reload"}).status_code == 201
        # The tail opened before the reload is not cut off: it still answers.
        lines = tail.iter_lines()
        assert any(line.startswith(": ") for line in (next(lines) for _ in range(4)))
    with open_store(
        {"store": {"backend": "file", "file": {"path": str(tmp_path / "data-b")}}}
    ) as b:
        assert [e.type for e in b.iter(Query())] == ["after.reload"]
    with open_store(
        {"store": {"backend": "file", "file": {"path": str(tmp_path / "data-a")}}}
    ) as a:
        assert [e.type for e in a.iter(Query())] == ["before.reload"]
    # A broken file: logged, and the service keeps the configuration it has.
    served.config.write_text("[store]\nbackend = 'nope'\n")
    served.proc.send_signal(signal.SIGHUP)
    assert served.log_has("reload failed, keeping the current configuration")
    assert post(served, {"type": "still.b"}).status_code == 201
    with open_store(
        {"store": {"backend": "file", "file": {"path": str(tmp_path / "data-b")}}}
    ) as b:
        assert [e.type for e in b.iter(Query())] == ["after.reload", "still.b"]


def test_sigterm_finishes_the_append_in_flight(served: Served, tmp_path: Path) -> None:
    big = json.dumps(
        [{"type": "bulk.item", "data": {"i": i, "pad": "x" * 200}} for i in range(20_000)]
    )
    body = big.encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        time.sleep(0.05)
        served.proc.send_signal(signal.SIGTERM)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
    assert served.proc.wait(30) == 0
    with open_store(
        {"store": {"backend": "file", "file": {"path": str(tmp_path / "data-a")}}}
    ) as a:
        assert a.stats().events == 20_000
        assert a.verify().ok


def test_sigterm_with_a_live_tail_open_exits_promptly(served: Served) -> None:
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", f"{served.url}/v1/events/stream") as tail,
    ):
        next(tail.iter_lines())
        started = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(30) == 0
    assert time.monotonic() - started < 8


def test_refuses_to_listen_beyond_loopback_without_tokens(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    write_config(config, tmp_path / "d")
    proc = subprocess.run(
        [*EV, "--config", str(config), "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert proc.returncode == 3
    assert "refusing to listen on 0.0.0.0 without tokens" in proc.stderr


def test_workers_share_the_store_and_sighup_replaces_them(tmp_path: Path) -> None:
    config = tmp_path / "eventvault.toml"
    write_config(config, tmp_path / "data", extra="[retention]\nmax_count = 1000000\n")
    port = free_port()
    proc = subprocess.Popen(
        [*EV, "--config", str(config), "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    srv = Served(proc, port, config)
    try:
        url = srv.url
        answers(f"{url}/readyz", 60)
        with httpx.Client(timeout=30) as client:
            for k in range(20):  # spread over both workers by the kernel
                r = client.post(f"{url}/v1/events", json={"type": "w.item", "data": {"k": k}})
                assert r.status_code == 201
            assert client.get(f"{url}/v1/stats").json()["events"] == 20
        write_config(config, tmp_path / "data-2")
        proc.send_signal(signal.SIGHUP)
        assert srv.log_has("restarting processes", timeout=20), "".join(srv.lines)
        deadline = time.monotonic() + 60
        moved = False
        while time.monotonic() < deadline and not moved:
            time.sleep(0.5)
            try:
                r = httpx.post(f"{url}/v1/events", json={"type": "after.hup"}, timeout=5)
            except httpx.TransportError:
                continue
            with file_store(tmp_path / "data-2") as b:
                moved = b.stats().events > 0
        assert moved, "".join(srv.lines)
        assert r.status_code == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    with file_store(tmp_path / "data") as a:
        assert a.stats().events >= 20
        assert a.verify().ok
