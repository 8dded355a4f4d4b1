"""The audit commands' client side over HTTP: ``verify --checkpoint URL`` and ``log
watch --url`` against a real HTTP server answering ``GET /v1/log/checkpoint`` and
``GET /v1/log/consistency`` as ``eventvault serve`` does (issue 20). The server here
is a stand-in on the standard library, serving a memory store, so these tests do not
depend on the server's own implementation."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from eventvault import EventStore, NewEvent
from eventvault.backends.memory import MemoryBackend
from eventvault.tlog import NoteSigner

from .helpers import ev

pytest.importorskip("cryptography")
pytest.importorskip("httpx")


class Log:
    """What the stand-in server serves: one store (swappable: a fork)."""

    def __init__(self, signer: NoteSigner) -> None:
        self.signer = signer
        self.store = EventStore(MemoryBackend())
        self.requests: list[str] = []

    def grow(self, n: int, tag: str = "a") -> None:
        for i in range(n):
            self.store.append(NewEvent(type="t", stream="s", data={"i": i, "tag": tag}))
        self.store.log.checkpoint(self.signer, save=True)


@pytest.fixture
def log() -> Iterator[tuple[Log, str]]:
    state = Log(NoteSigner.generate("example.com/eventvault/http"))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            state.requests.append(self.path)
            if url.path == "/v1/log/checkpoint":
                note = state.store.log.latest_checkpoint()
                self._send(404, "none yet") if note is None else self._send(200, note)
            elif url.path == "/v1/log/consistency":
                q = {k: int(v[0]) for k, v in parse_qs(url.query).items()}
                proof = state.store.log.consistency_proof(q["first"], q["second"])
                self._send(200, json.dumps(proof.to_dict()), "application/json")
            else:
                self._send(404, "no such path")

        def _send(self, code: int, body: str, kind: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _watch(tmp_path: Path, url: str, vkey: str) -> tuple[int, str, str]:
    r = ev(tmp_path, "log", "watch", "--checkpoint-dir", "w", "--key", vkey, "--url", url,
           "--once")  # fmt: skip
    return r.returncode, r.stdout, r.stderr


def test_log_watch_follows_a_server_and_refuses_a_fork(
    tmp_path: Path, log: tuple[Log, str]
) -> None:
    state, url = log
    vkey = state.signer.verifier().key_text
    code, _out, err = _watch(tmp_path, url, vkey)
    assert code == 0, err
    assert "no signed checkpoint yet" in err
    state.grow(5, "same")
    code, out, err = _watch(tmp_path, url, vkey)
    assert code == 0, err
    assert "accepted: tree size 5" in out
    state.grow(6)
    code, out, err = _watch(tmp_path, url, vkey)
    assert code == 0, err
    assert "accepted: tree size 11, " in out
    assert "/v1/log/consistency?first=5&second=11" in state.requests
    kept = (tmp_path / "w" / "latest").read_text()

    state.store = EventStore(MemoryBackend())  # the same key, another history
    state.grow(5, "same")
    state.grow(9, "other")
    code, _out, err = _watch(tmp_path, url, vkey)
    assert code == 6
    assert "does not extend the one kept (size 11)" in err
    assert (tmp_path / "w" / "latest").read_text() == kept


def test_verify_reads_the_servers_latest_checkpoint(tmp_path: Path, log: tuple[Log, str]) -> None:
    """``verify --checkpoint URL`` fetches the checkpoint; the configured store (here a
    file store: not Proving in this worktree, or a store other than the server's)
    must then be consistent with it."""
    state, url = log
    state.grow(3)
    vkey = state.signer.verifier().key_text
    other = NoteSigner.generate("evil.example/log").verifier().key_text
    r = ev(tmp_path, "verify", "--checkpoint", url, "--key", other)
    assert r.returncode == 6
    assert f"checkpoint {url} is signed by example.com/eventvault/http+" in r.stderr
    assert ev(tmp_path, "init", "-q").returncode == 0
    r = ev(tmp_path, "verify", "--checkpoint", url + "/v1/log/checkpoint", "--key", vkey)
    assert "1 signed checkpoint(s) read" in r.stderr
    assert r.returncode in (2, 6)  # no tree (file, today), or not this store's tree


def test_an_unreachable_checkpoint_url_is_unavailable(tmp_path: Path) -> None:
    vkey = NoteSigner.generate("a.example/x").verifier().key_text
    r = ev(tmp_path, "verify", "--checkpoint", "http://127.0.0.1:9/", "--key", vkey)
    assert r.returncode == 5
    assert "GET http://127.0.0.1:9/v1/log/checkpoint" in r.stderr
