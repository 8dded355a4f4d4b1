"""The eventstoredb backend beyond the shared suite: configuration, the CLI, failures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from eventvault import ConfigError, NewEvent, Query, StoreUnavailableError, open_store
from eventvault.backends.eventstoredb.store import EventStoreDBEventStore
from eventvault.cli.main import cli

from .standin import serve


@pytest.fixture
def port() -> Iterator[int]:
    server, _servicer, bound = serve()
    yield bound
    server.stop(None)


def test_chosen_by_configuration_and_used_by_the_cli(
    port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTVAULT_BACKEND", raising=False)
    monkeypatch.setenv("ESDB_URI", f"kurrentdb://127.0.0.1:{port}?tls=false")
    (tmp_path / "eventvault.toml").write_text(
        '[store]\nbackend = "eventstoredb"\n[store.eventstoredb]\n'
        'uri = "${ESDB_URI}"\ntimeout = "5s"\nlog_stream = "vault"\n'
    )
    runner = CliRunner()
    r = runner.invoke(cli, ["append", "--type", "build.started", "--correlation-id", "run-1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["query", "--correlation-id", "run-1", "--format", "json"])
    (event,) = json.loads(r.stdout)
    assert event["type"] == "build.started"
    assert runner.invoke(cli, ["verify"]).exit_code == 0
    with open_store() as store:
        assert isinstance(store, EventStoreDBEventStore)
        assert store.log_stream == "vault"
        assert store.stats().events == 1


def test_two_clients_share_one_chain(port: int) -> None:
    """Two stores on one server interleave appends; the log's CAS keeps one chain."""
    uri = f"kurrentdb://127.0.0.1:{port}?tls=false"
    with EventStoreDBEventStore(uri) as a, EventStoreDBEventStore(uri) as b:
        for i in range(10):
            (a if i % 2 else b).append(NewEvent(type="t.x", stream="s"))
        assert a.store_id == b.store_id
        revisions = [e.stream_revision for e in a.iter(Query())]
        assert revisions == list(range(10))
        assert a.verify().ok
        assert b.verify().ok


def test_an_unreachable_server_fails_fast_with_a_clear_error() -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=r"EventStoreDB at kurrentdb://127\.0\.0\.1:1"):
        EventStoreDBEventStore("kurrentdb://127.0.0.1:1?tls=false", timeout=2)
    assert time.monotonic() - started < 10


def test_the_correlation_projection_is_refused_until_supported(port: int) -> None:
    with pytest.raises(ConfigError, match="use_correlation_projection"):
        open_store(
            {
                "store": {
                    "backend": "eventstoredb",
                    "eventstoredb": {
                        "uri": f"kurrentdb://127.0.0.1:{port}?tls=false",
                        "use_correlation_projection": True,
                    },
                }
            }
        )


def test_live_tail_wakes_on_the_server_subscription(port: int) -> None:
    """With a 10 s poll interval, a new event still arrives at once: the waiter is
    woken by the subscribe_to_all listener, not by its timeout."""
    import threading

    uri = f"kurrentdb://127.0.0.1:{port}?tls=false"
    with EventStoreDBEventStore(uri) as store:
        store.append(NewEvent(type="t.x"))
        stop = threading.Event()
        got: list[float] = []

        def consume() -> None:
            for _ in store.subscribe(poll_interval=10, stop=stop):
                got.append(time.monotonic())
                if len(got) == 2:
                    stop.set()
                    return

        t = threading.Thread(target=consume)
        t.start()
        time.sleep(0.5)  # the subscriber is waiting, caught up
        sent = time.monotonic()
        store.append(NewEvent(type="t.x"))
        t.join(timeout=20)
        assert not t.is_alive()
        assert got[1] - sent < 2


def test_type_filters_page_through_the_server(port: int) -> None:
    """More matches than one server page, other streams' events of the same type
    mixed in: forwards and backwards give exactly the store's events."""
    import kurrentdbclient as kdb

    uri = f"kurrentdb://127.0.0.1:{port}?tls=false"
    with EventStoreDBEventStore(uri) as store:
        for i in range(12):
            store.append([NewEvent(type=f"k.{j % 2}", data={"i": i, "j": j}) for j in range(100)])
        client = kdb.KurrentDBClient(uri)
        client.append_to_stream(
            "someone-else",
            events=[kdb.NewEvent(type="k.1", data=b"{}")],
            current_version=kdb.StreamState.ANY,
        )
        client.close()
        store.append([NewEvent(type="k.1") for _ in range(3)])
        want = [e for e in store.iter(Query(limit=1000)) if e.type == "k.1"]
        got = list(store.iter(Query(types=["k.1"], limit=700)))
        assert got == want
        back = list(store.iter(Query(types=["k.*"], reverse=True, limit=333)))
        assert [e.position for e in back] == [e.position for e in store.iter(Query())][::-1]


def test_retention_commands_say_it_is_not_available(
    port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTVAULT_BACKEND", raising=False)
    (tmp_path / "eventvault.toml").write_text(
        f'[store]\nbackend = "eventstoredb"\n[store.eventstoredb]\n'
        f'uri = "kurrentdb://127.0.0.1:{port}?tls=false"\n[retention]\nmax_count = 5\n'
    )
    runner = CliRunner()
    for command in (["plan"], ["apply", "--yes"], ["run", "--every", "1s"]):
        r = runner.invoke(cli, ["retention", *command])
        assert r.exit_code == 2, r.output
        assert "not available on the eventstoredb backend" in r.stderr
