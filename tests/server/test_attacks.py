"""The attacks of issue 16, replayed against a real ``eventvault serve`` process.

Each test reproduces what an attacker did on the old main (a reload that dropped the
tokens, forged CloudEvents attributes, huge request heads, files anyone may write,
what answered without a token) and asserts the server now refuses it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .test_process import EV, Served, answers, free_port, write_config

TOKEN = "admin-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
READ = {"Authorization": f"Bearer {READER}"}
TOKENS = (
    f'[[tokens]]\nname = "ops"\ntoken = "{TOKEN}"\nscopes = ["admin"]\n'
    f'[[tokens]]\nname = "ci"\ntoken = "{READER}"\nscopes = ["read", "append"]\n'
)


def start(config: Path, *args: str, host: str = "127.0.0.1", ready: str = "/healthz") -> Served:
    port = free_port()
    proc = subprocess.Popen(
        [*EV, "--config", str(config), "serve", "--host", host, "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    srv = Served(proc, port, config)
    if not answers(f"{srv.url}{ready}", 60):
        proc.kill()
        raise AssertionError("".join(srv.lines))
    return srv


def stop(srv: Served) -> None:
    if srv.proc.poll() is None:
        srv.proc.terminate()
        try:
            srv.proc.wait(30)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait()


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text(TOKENS)
    path.chmod(0o600)
    return path


@pytest.fixture
def public(tmp_path: Path, tokens_file: Path) -> Iterator[Served]:
    """A server on 0.0.0.0 with a tokens file (as the issue's reproduction ran it)."""
    config = tmp_path / "eventvault.toml"
    write_config(config, tmp_path / "data", extra=f'tokens_file = "{tokens_file}"\n')
    srv = start(config, host="0.0.0.0")
    yield srv
    stop(srv)


# -- hole 1: a reload must never produce what start-up would refuse -----------------


def test_a_reload_without_tokens_on_a_public_bind_is_refused(
    public: Served, tokens_file: Path
) -> None:
    assert httpx.get(f"{public.url}/v1/events").status_code == 401
    tokens_file.write_text("# mid-rotation: no tokens yet\n")
    public.proc.send_signal(signal.SIGHUP)
    assert public.log_has("reload refused, keeping the current configuration"), "".join(
        public.lines
    )
    # Still authenticated: no scope for anonymous callers, the old tokens still work.
    assert httpx.get(f"{public.url}/v1/events").status_code == 401
    assert httpx.post(f"{public.url}/v1/events", json={"type": "x.y"}).status_code == 401
    assert httpx.post(f"{public.url}/v1/verify").status_code == 401
    metrics = httpx.get(f"{public.url}/metrics", headers=ADMIN).text
    assert 'eventvault_config_reloads_total{outcome="refused"} 1.0' in metrics


def test_a_reload_without_tokens_is_refused_with_workers(tmp_path: Path, tokens_file: Path) -> None:
    config = tmp_path / "eventvault.toml"
    write_config(config, tmp_path / "data", extra=f'tokens_file = "{tokens_file}"\n')
    srv = start(config, "--workers", "2", host="0.0.0.0")
    try:
        tokens_file.write_text("")
        srv.proc.send_signal(signal.SIGHUP)
        assert srv.log_has("SIGHUP: keeping the current configuration"), "".join(srv.lines)
        time.sleep(1)
        for _ in range(6):  # (both workers, as the kernel spreads connections)
            assert httpx.get(f"{srv.url}/v1/events", timeout=10).status_code == 401
            assert httpx.get(f"{srv.url}/v1/events", headers=READ, timeout=10).status_code == 200
    finally:
        stop(srv)


def test_a_worker_refuses_a_configuration_startup_would_refuse(tmp_path: Path) -> None:
    """The factory a restarted worker runs applies the same checks."""
    config = tmp_path / "eventvault.toml"
    write_config(config, tmp_path / "data")
    proc = subprocess.run(
        [*EV[:1], "-c", "from eventvault.server.factory import app; app()"],
        env={
            **os.environ,
            "EVENTVAULT_SERVE_CONFIG": str(config),
            "EVENTVAULT_SERVE_HOST": "0.0.0.0",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "refusing to listen on 0.0.0.0 without tokens" in proc.stderr


# -- hole 8: files that grant access ---------------------------------------------------


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_a_tokens_file_others_may_write_is_refused(
    tmp_path: Path, tokens_file: Path, mode: int
) -> None:
    tokens_file.chmod(mode)
    config = tmp_path / "eventvault.toml"
    write_config(config, tmp_path / "data", extra=f'tokens_file = "{tokens_file}"\n')
    proc = subprocess.run(
        [*EV, "--config", str(config), "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert "writable by other users" in proc.stderr
    assert f"chmod go-w {tokens_file}" in proc.stderr


def test_a_config_with_tokens_others_may_write_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "eventvault.toml"
    write_config(config, tmp_path / "data", extra=TOKENS.replace("[[tokens]]", "[[server.tokens]]"))
    config.chmod(0o666)
    proc = subprocess.run(
        [*EV, "--config", str(config), "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert f"chmod go-w {config}" in proc.stderr


def test_a_reload_after_the_tokens_file_became_world_writable_is_refused(
    public: Served, tokens_file: Path
) -> None:
    # Another local user adds an admin token to a file left writable...
    tokens_file.chmod(0o666)
    tokens_file.write_text(TOKENS + '[[tokens]]\nname = "evil"\ntoken = "e' + "v" * 20 + '"\n'
                           'scopes = ["admin"]\n')  # fmt: skip
    public.proc.send_signal(signal.SIGHUP)
    assert public.log_has("reload failed, keeping the current configuration")
    evil = {"Authorization": "Bearer e" + "v" * 20}
    assert httpx.post(f"{public.url}/v1/verify", headers=evil).status_code == 401


# -- hole 9: what answers without a token ---------------------------------------------


def test_without_a_token_only_liveness_and_bare_readiness_answer(public: Served) -> None:
    url = public.url
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}  # no head position, no backend
    for path in ("/docs", "/openapi.json", "/redoc", "/metrics", "/v1/stats", "/v1/events"):
        assert httpx.get(f"{url}{path}").status_code == 401, path
    assert httpx.get(f"{url}/openapi.json", headers=READ).status_code == 200
    assert "head" in httpx.get(f"{url}/readyz", headers=READ).json()
    # The data path is the admin's to know, not every reader's.
    assert "path" not in httpx.get(f"{url}/v1/stats", headers=READ).json()["details"]
    assert "path" in httpx.get(f"{url}/v1/stats", headers=ADMIN).json()["details"]


def test_operators_may_open_the_docs(tmp_path: Path, tokens_file: Path) -> None:
    config = tmp_path / "eventvault.toml"
    write_config(
        config,
        tmp_path / "data",
        extra=f'tokens_file = "{tokens_file}"\nanonymous = ["healthz", "docs"]\n',
    )
    srv = start(config)
    try:
        assert httpx.get(f"{srv.url}/openapi.json").status_code == 200
        assert httpx.get(f"{srv.url}/docs").status_code == 200
        assert httpx.get(f"{srv.url}/readyz").status_code == 401
    finally:
        stop(srv)


# -- hole 3: CloudEvents producers cannot forge the store's attributes --------------


def test_forged_cloudevents_attributes_are_refused_and_never_shown(public: Served) -> None:
    url = public.url
    forged = {"specversion": "1.0", "id": "x-1", "source": "ci", "type": "deploy.done",
              "recordedat": "2001-01-01T00:00:00Z", "position": 1, "streamrevision": 9,
              "hash": "0" * 64}  # fmt: skip
    r = httpx.post(f"{url}/v1/events", content=json.dumps(forged), headers={
        **READ, "Content-Type": "application/cloudevents+json"})  # fmt: skip
    assert r.status_code == 400
    assert "reserved" in r.json()["error"]["message"]
    binary = {**READ, "ce-specversion": "1.0", "ce-id": "b-1", "ce-source": "ci",
              "ce-type": "deploy.done", "ce-position": "7",
              "Content-Type": "application/json"}  # fmt: skip
    assert httpx.post(f"{url}/v1/events", content=b"{}", headers=binary).status_code == 400
    # A plain JSON producer putting them in metadata.cloudevents cannot override them.
    plain = {"type": "deploy.done", "metadata": {"cloudevents": {
        "position": 1, "hash": "0" * 64, "recordedat": "2001-01-01T00:00:00Z",
        "streamrevision": 9, "specversion": "0.3", "type": "other", "subject": "s"}}}  # fmt: skip
    written = httpx.post(f"{url}/v1/events", json=plain, headers=READ).json()["events"][0]
    ce_accept = {**READ, "Accept": "application/cloudevents+json"}
    got = httpx.get(f"{url}/v1/events/{written['id']}", headers=ce_accept).json()
    assert got["position"] == written["position"]
    assert got["hash"] == written["hash"]
    assert got["streamrevision"] == written["stream_revision"]
    assert got["recordedat"] != "2001-01-01T00:00:00Z"
    assert (got["specversion"], got["type"], got["subject"]) == ("1.0", "deploy.done", "default")
    batch = httpx.get(f"{url}/v1/events", headers={
        **READ, "Accept": "application/cloudevents-batch+json"}).json()  # fmt: skip
    assert batch[-1]["position"] == written["position"]
    assert batch[-1]["hash"] == written["hash"]


# -- hole 5: request heads are bounded -------------------------------------------------


def raw(port: int, head: bytes, *, chunk: int = 65536) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            for k in range(0, len(head), chunk):
                sock.sendall(head[k : k + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while True:
                got = sock.recv(65536)
                if not got:
                    break
                answer += got
        except ConnectionResetError:
            pass
    return answer


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_huge_request_heads_get_431_before_any_authentication(public: Served) -> None:
    before = rss_kib(public.proc.pid)
    huge = b"GET /v1/events HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (8 << 20) + b"\r\n\r\n"
    for _ in range(4):
        answer = raw(public.port, huge)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert b"server.max_head_bytes" in answer
    many = (
        b"GET /v1/events HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % k for k in range(500))
        + b"\r\n"
    )
    answer = raw(public.port, many)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"server.max_headers" in answer
    long_url = b"GET /v1/events?type=" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert raw(public.port, long_url).startswith(b"HTTP/1.1 431")
    assert rss_kib(public.proc.pid) - before < 40_000  # (32 MB of heads were sent)
    # An ordinary request still works, also on the same server afterwards.
    assert httpx.get(f"{public.url}/v1/events", headers=READ).status_code == 200


# -- issue 17 item 11: SSE frames name their event ------------------------------------


def test_sse_frames_carry_an_event_line(public: Served) -> None:
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", f"{public.url}/v1/events/stream?after=0", headers=READ) as tail,
    ):
        assert httpx.post(f"{public.url}/v1/events", json={"type": "a.b"}, headers=READ).is_success
        frame: list[str] = []
        for line in tail.iter_lines():
            if line.startswith(("id:", "event:", "data:")):
                frame.append(line.split(":", 1)[0])
            if line.startswith("data:"):
                break
    assert frame == ["event", "id", "data"]


# -- hole 7: the name rule holds over HTTP and CloudEvents ----------------------------


def test_look_alike_names_are_refused_over_http(public: Served) -> None:
    url = f"{public.url}/v1/events"
    for body in ({"type": "t.x", "actor": "root\u202e"}, {"type": "t.x", "stream": "a\x85b"},
                 {"type": "t.x", "correlation_id": "\ufeffrun"}):  # fmt: skip
        r = httpx.post(url, json=body, headers=READ)
        assert r.status_code == 400, r.text
    structured = {"specversion": "1.0", "id": "1", "source": "ci", "type": "t.x",
                  "actor": "ro\u200bot"}  # fmt: skip
    r = httpx.post(url, content=json.dumps(structured), headers={
        **READ, "Content-Type": "application/cloudevents+json"})  # fmt: skip
    assert r.status_code == 400, r.text
    binary = {**READ, "ce-specversion": "1.0", "ce-id": "2", "ce-source": "ci", "ce-type": "t.x",
              "ce-subject": "caf%65%CC%81", "Content-Type": "application/json"}  # fmt: skip
    r = httpx.post(url, content=b"{}", headers=binary)
    assert r.status_code == 400, r.text
    assert "NFC" in r.json()["error"]["message"]
    assert httpx.get(f"{public.url}/v1/stats", headers=READ).json()["events"] == 0


# -- Also: a read of many large events is streamed within a byte bound --------------


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[Served]:
    config = tmp_path / "eventvault.toml"
    write_config(config, tmp_path / "data", extra="max_response_bytes = 2_097_152\n")
    srv = start(config)
    yield srv
    stop(srv)


def test_a_read_of_large_events_is_streamed_within_the_bound(bounded: Served) -> None:
    url = f"{bounded.url}/v1/events"
    pad = "x" * 250_000
    with httpx.Client(timeout=120) as client:
        for first in range(0, 200, 20):
            batch = [
                {"type": "big.one", "data": {"k": k, "pad": pad}} for k in range(first, first + 20)
            ]
            assert client.post(url, json=batch).status_code == 201
        before = peak_kib(bounded.proc.pid)
        r = client.get(url, params={"limit": 150})
        grew = peak_kib(bounded.proc.pid) - before
        assert r.status_code == 200
        assert "content-length" not in r.headers  # streamed
        page = r.json()
        assert [e["data"]["k"] for e in page["events"]] == list(range(150))
        rest = client.get(url, params={"limit": 150, "cursor": page["next_cursor"]}).json()
        assert [e["data"]["k"] for e in rest["events"]] == list(range(150, 200))
        assert rest["next_cursor"] is None
        # (The whole answer is 37 MB; the old server held it twice over.)
        assert grew < 30_000, grew
        small = client.get(url, params={"limit": 2})  # (one store read: not streamed)
        assert small.headers["content-length"]
        assert len(small.json()["events"]) == 2
        # A CloudEvents batch (its cursor is a header) ends at the bound; paging goes on.
        seen: list[int] = []
        cursor = ""
        ce_accept = {"Accept": "application/cloudevents-batch+json"}
        for _ in range(200):
            got = client.get(url, params={"limit": 200, **({"cursor": cursor} if cursor else {})},
                             headers=ce_accept)  # fmt: skip
            batch_out = got.json()
            assert len(batch_out) < 200
            seen += [e["data"]["k"] for e in batch_out]
            cursor = got.headers["x-next-cursor"]
            if not cursor:
                break
        assert seen == list(range(200))
        lines = client.get(url, headers={"Accept": "application/x-ndjson"}).text.splitlines()
        assert [json.loads(line)["data"]["k"] for line in lines] == list(range(200))
