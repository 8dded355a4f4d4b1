"""The http backend against a real ``eventvault serve`` process: the store's API,
typed errors for what a new user gets wrong, nothing half-appended."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from eventvault import ExpectedRevision, NewEvent, Query, open_store
from eventvault.backends.http import HttpEventStore
from eventvault.errors import (
    AuthenticationError,
    ConfigError,
    MissingExtraError,
    NotSupportedError,
    PermissionDeniedError,
    StoreUnavailableError,
    ValidationError,
    WrongExpectedRevisionError,
)

from ..server.test_process import Served, free_port
from .conftest import ADMIN, READER, WRITER, server_config, start, stop


def test_open_store_with_the_http_config_does_what_a_local_store_does(
    server: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTVAULT_TOKEN", WRITER)
    cfg = {
        "store": {"backend": "http", "http": {"url": server.url, "token": "${EVENTVAULT_TOKEN}"}}
    }
    with open_store(cfg) as store:
        assert isinstance(store, HttpEventStore)
        first = store.append(NewEvent(type="build.started", stream="b", correlation_id="run-7"))
        batch = store.append(
            [NewEvent(type="build.step", stream="b", causation_id=str(first.events[0].id))] * 1
            + [NewEvent(type="build.finished", stream="b", correlation_id="run-7")],
            expected_revision=0,
        )
        assert batch.written == 2
        assert store.head() == 3
        assert store.get(first.events[0].id) == first.events[0]
        assert [e.type for e in store.read(Query(correlation_ids=["run-7"])).events] == [
            "build.started",
            "build.finished",
        ]
        (caused,) = store.read(Query(causation_ids=[str(first.events[0].id)])).events
        assert caused.type == "build.step"
        with pytest.raises(WrongExpectedRevisionError) as info:
            store.append(
                NewEvent(type="x", stream="b"), expected_revision=ExpectedRevision.NO_STREAM
            )
        assert (info.value.stream, info.value.actual) == ("b", 2)
        assert store.stats().events == 3
        assert store.verify().ok
        page = store.read(Query(limit=2))
        assert page.next_cursor is not None
        rest = store.read(Query(limit=2), cursor=page.next_cursor)
        assert [e.position for e in rest.events] == [3]
        with pytest.raises(NotSupportedError, match="the server applies it"):
            store.plan_retention()


def test_the_environment_names_the_server_and_the_token(
    server: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTVAULT_BACKEND", "http")
    monkeypatch.setenv("EVENTVAULT_URL", server.url)
    monkeypatch.setenv("EVENTVAULT_TOKEN", READER)
    with open_store({}) as store:
        assert store.head() == 0
        with pytest.raises(PermissionDeniedError, match="lacks the 'append' scope"):
            store.append(NewEvent(type="a"))
        assert store.head() == 0


def test_wrong_token_and_no_token_are_authentication_errors(server: Served) -> None:
    for token in (None, "not-a-token-the-server-knows"):
        with HttpEventStore(server.url, token=token) as store:
            with pytest.raises(AuthenticationError, match="EVENTVAULT_TOKEN"):
                store.append(NewEvent(type="a"))
            with pytest.raises(AuthenticationError):
                store.read()
    with HttpEventStore(server.url, token=ADMIN) as store:
        assert store.head() == 0
        assert store.send([NewEvent(type="a"), NewEvent(type="b")]) == 2
        assert store.verify_on_server().ok  # (the server's own walk: admin scope)
    with HttpEventStore(server.url, token=WRITER) as store:
        with pytest.raises(PermissionDeniedError, match="'admin' scope"):
            store.verify_on_server()
        assert store.verify().ok  # (the walk here needs only read)


def test_a_server_that_is_down_is_unavailable_after_the_retries(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with HttpEventStore(url, retries=2) as store:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="cannot reach the eventvault server"):
            store.append(NewEvent(type="a"))
        assert time.monotonic() - started < 5  # (two quick retries, not forever)


def test_tls_to_a_plain_http_port_says_so(server: Served) -> None:
    with (
        HttpEventStore(server.url.replace("http://", "https://"), retries=0) as store,
        pytest.raises(StoreUnavailableError, match=r"TLS with .* failed.*plain HTTP"),
    ):
        store.head()


def test_a_wrong_url_is_a_configuration_error(server: Served) -> None:
    with (
        HttpEventStore(f"{server.url}/not-here", token=WRITER) as store,
        pytest.raises(ConfigError, match="the address of `eventvault serve`"),
    ):
        store.head()
    for bad in ("ftp://x", "localhost:8730", ""):
        with pytest.raises(ConfigError):
            HttpEventStore(bad)
    with pytest.raises(ConfigError, match=r"store\.http\.url is not set"):
        open_store({"store": {"backend": "http"}})


def test_not_an_http_server_at_all_is_unavailable() -> None:
    """A port that accepts and closes (not HTTP): a clear error, no hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def slam() -> None:
        for _ in range(4):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=slam, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with (
            HttpEventStore(url, retries=1) as store,
            pytest.raises(StoreUnavailableError, match=r"closed the connection|reset by peer"),
        ):
            store.head()
    finally:
        listener.close()


def test_a_body_over_the_servers_limit_is_refused_whole(server: Served) -> None:
    with HttpEventStore(server.url, token=WRITER) as store:
        store.append(NewEvent(type="before"))
        big = [NewEvent(type="t", data={"pad": "x" * 1000}) for _ in range(100)]  # ~110 KB
        with pytest.raises(ValidationError, match=r"413.*max_body_bytes"):
            store.append(big)
        assert store.head() == 1
        assert all(store.get(e.id) is None for e in big[:3])


def test_appends_are_retried_with_the_same_ids_and_stored_once(tmp_path: Path) -> None:
    """The server goes away and comes back while an append is being retried: the
    append succeeds, and its events are stored once."""
    port = free_port()
    config = server_config(tmp_path / "server.toml", tmp_path / "data")
    srv = start(config, port)
    store = HttpEventStore(srv.url, token=WRITER, retries=40)
    try:
        store.append(NewEvent(type="first"))
        stop(srv)
        result: list[object] = []
        batch = [NewEvent(type="during", data={"i": i}) for i in range(50)]
        sender = threading.Thread(target=lambda: result.append(store.append(batch)))
        sender.start()
        time.sleep(0.5)
        srv = start(config, port)
        sender.join(60)
        assert result, "the append did not finish"
        again = store.append(batch)  # (a caller's own retry: the same events, once)
        assert again.written == 0
        assert store.head() == 51
        assert len({e.id for e in store.iter(Query(limit=1000))}) == 51
    finally:
        store.close()
        stop(srv)


def test_subscribe_resumes_after_the_server_restarts_without_gap_or_duplicate(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = server_config(tmp_path / "server.toml", tmp_path / "data")
    srv = start(config, port)
    writer = HttpEventStore(srv.url, token=WRITER, retries=40)
    reader = HttpEventStore(srv.url, token=READER)
    seen: list[int] = []
    stop_tail = threading.Event()

    def follow() -> None:
        for ev in reader.subscribe(poll_interval=0.1, stop=stop_tail):
            seen.append(ev.position)

    tail = threading.Thread(target=follow)
    tail.start()
    try:
        for i in range(20):
            writer.append(NewEvent(type="t", data={"i": i}))
        stop(srv)
        time.sleep(0.5)
        srv = start(config, port)
        for i in range(20, 40):
            writer.append(NewEvent(type="t", data={"i": i}))
        deadline = time.monotonic() + 30
        while len(seen) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_tail.set()
        tail.join(30)
        writer.close()
        reader.close()
        stop(srv)
    assert seen == list(range(1, 41))


def test_missing_httpx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import sys

    import eventvault.backends.http as http_backend

    real_import = builtins.__import__

    def no_httpx(name: str, *args: object, **kwargs: object) -> object:
        if name == "httpx" or name.startswith("httpx."):
            raise ImportError("No module named 'httpx'", name="httpx")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "httpx", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_httpx)
    with pytest.raises(MissingExtraError, match=r"pip install 'eventvault\[http\]'"):
        open_store({"store": {"backend": "http", "http": {"url": "http://127.0.0.1:1"}}})
    with pytest.raises(MissingExtraError):
        http_backend.Producer  # noqa: B018


def test_importing_eventvault_does_not_import_httpx() -> None:
    import subprocess
    import sys

    code = "import sys, eventvault, eventvault.backends.http; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
