"""The batching producer (and the log handler on it): everything delivered once,
the buffer cap holding while the server is down, refused events isolated and
reported, the buffer flushed at exit — and a producer killed with ``kill -9``
mid-flush, restarted and re-sending the same events, leaves each stored once."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventvault import MemoryEventStore, NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.backends.http import EventLogHandler, HttpEventStore, Producer
from eventvault.backends.http.loghandler import correlation_id
from eventvault.errors import (
    BufferFullError,
    DuplicateEventError,
    StoreClosedError,
    ValidationError,
)

from ..conformance.served import Served
from ..server.test_process import free_port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    srv = Served(FileEventStore(tmp_path / "store"))
    yield srv
    srv.stop()


def ids_in(store: HttpEventStore | Served) -> list[str]:
    backing = store.backing if isinstance(store, Served) else store
    return [str(e.id) for e in backing.iter(Query(limit=5000))]


def test_everything_is_delivered_once_in_batches(served: Served) -> None:
    events = [NewEvent(type="t", data={"i": i}) for i in range(5000)]
    with Producer.connect(served.url, max_batch=300, linger=0.01) as producer:
        for e in events:
            producer.append(e)
        assert producer.flush(30)
    report = producer.close()
    assert report.ok
    assert report.delivered == 5000
    assert ids_in(served) == [str(e.id) for e in events]  # in order, once each
    with pytest.raises(StoreClosedError):
        producer.append(NewEvent(type="t"))


def test_the_buffer_cap_holds_while_the_server_is_down(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "store"
    srv = Served(FileEventStore(path), port=port)
    srv.stop()  # down from the start
    producer = Producer.connect(
        srv.url, max_batch=100, max_buffer=1000, when_full="raise", linger=0.01, retries=0
    )
    taken: list[NewEvent] = []
    refused = 0
    reason = ""
    try:
        for i in range(3000):
            e = NewEvent(type="t", data={"i": i})
            try:
                producer.append(e)
                taken.append(e)
            except BufferFullError as exc:
                refused += 1
                reason = str(exc)
        assert "max_buffer" in reason
        assert len(taken) <= 1000 + 100  # the buffer, and one batch in flight
        assert refused == 3000 - len(taken)
        assert producer.pending == len(taken)
        assert producer.last_error is not None
        srv = Served(FileEventStore(path), port=port)  # back
        assert producer.flush(60)
        report = producer.close()
    finally:
        producer.close()
        srv.stop()
    assert report.ok, report
    with FileEventStore(path) as store:
        assert [str(e.id) for e in store.iter(Query(limit=5000))] == [str(e.id) for e in taken]


def test_a_full_buffer_blocks_for_at_most_block_timeout() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    producer = Producer.connect(url, max_batch=10, max_buffer=10, block_timeout=1.0, retries=0)
    try:
        for _ in range(20):  # the buffer, and a batch in flight
            producer.append(NewEvent(type="t"))
        started = time.monotonic()
        with pytest.raises(BufferFullError):
            producer.append(NewEvent(type="t"))
        assert 0.9 <= time.monotonic() - started < 6
    finally:
        report = producer.close(timeout=0.2)
    assert not report.ok
    assert 10 <= len(report.pending) <= 20  # what never reached a server, named


def test_refused_events_are_isolated_reported_and_the_rest_delivered(served: Served) -> None:
    stored = NewEvent(type="t", data={"v": 1})
    with HttpEventStore(served.url) as store:
        store.append(stored)
    clash = NewEvent(id=stored.id, type="t", data={"v": 2})  # same id, other content
    batch = [NewEvent(type="t", data={"i": i}) for i in range(40)]
    batch.insert(17, clash)
    errors: list[object] = []
    with Producer.connect(
        served.url, max_batch=100, linger=0.2, on_error=lambda e, x: errors.append((e, x))
    ) as producer:
        for e in batch:
            producer.append(e)
    report = producer.close()
    assert [e for e, _ in report.failed] == [clash]
    assert isinstance(report.failed[0][1], DuplicateEventError)
    assert errors == report.failed
    assert report.delivered == 40
    assert ids_in(served) == [str(stored.id)] + [str(e.id) for e in batch if e is not clash]


def test_any_store_works_and_bad_settings_are_refused() -> None:
    store = MemoryEventStore()
    with Producer(store, max_batch=7) as producer:
        for i in range(50):
            producer.append(NewEvent(type="t", data={"i": i}))
        with pytest.raises(ValidationError, match="NewEvent"):
            producer.append({"type": "t"})  # type: ignore[arg-type]
    assert len(list(store.iter())) == 50
    for bad in ({"max_batch": 0}, {"max_buffer": 1, "max_batch": 5}, {"when_full": "drop"}):
        with pytest.raises(ValidationError):
            Producer(store, **bad)  # type: ignore[arg-type]


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "produce.py"
    script.write_text(textwrap.dedent(body))
    return script


def test_the_buffer_is_flushed_at_interpreter_exit(served: Served, tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        f"""
        from eventvault import NewEvent
        from eventvault.backends.http import Producer

        producer = Producer.connect({served.url!r}, linger=5)
        for i in range(250):
            producer.append(NewEvent(type="t", data={{"i": i}}))
        # no close(): the interpreter's exit flushes
        """,
    )
    subprocess.run([sys.executable, str(script)], check=True, timeout=60)
    assert len(ids_in(served)) == 250


@pytest.mark.system
def test_kill_9_mid_flush_then_resending_stores_each_event_once(
    served: Served, tmp_path: Path
) -> None:
    n = 20_000
    script = _script(
        tmp_path,
        f"""
        import uuid
        from eventvault import NewEvent
        from eventvault.backends.http import Producer

        # Ids of the producer's own (from what each event is), so a restart re-sends
        # the same events rather than new ones.
        ns = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")
        with Producer.connect({served.url!r}, max_batch=200, linger=0.001) as producer:
            for i in range({n}):
                producer.append(
                    NewEvent(id=uuid.uuid5(ns, f"job-{{i}}"), type="t", data={{"i": i}})
                )
        """,
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.monotonic() + 120
    with HttpEventStore(served.url) as store:
        while store.head() < 2000:
            assert time.monotonic() < deadline, "no progress"
            assert proc.poll() is None, "the producer ended before it was killed"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        at_kill = store.head()
        assert 0 < at_kill < n, at_kill  # killed in the middle of its flushes
        subprocess.run([sys.executable, str(script)], check=True, timeout=300)
        ids = ids_in(served)
        assert len(ids) == n
        assert len(set(ids)) == n
        assert store.verify().ok


def test_log_records_become_events(served: Served) -> None:
    producer = Producer.connect(served.url, linger=0.01)
    handler = EventLogHandler(producer, actor="worker-3")
    log = logging.getLogger("myapp.db")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        token = correlation_id.set("run-42")
        log.info("connected to %s", "primary")
        correlation_id.reset(token)
        try:
            raise RuntimeError("lost it")
        except RuntimeError:
            log.exception("query failed")
        log.debug("not at this level")
    finally:
        log.removeHandler(handler)
        producer.close()
    events = list(served.backing.iter())
    assert [e.type for e in events] == ["log.myapp.db", "log.myapp.db"]
    first, second = events
    assert first.correlation_id == "run-42"
    assert first.actor == "worker-3"
    assert first.stream == "logs"
    assert first.data["message"] == "connected to primary"
    assert first.data["level"] == "INFO"
    assert second.correlation_id is None
    assert "RuntimeError: lost it" in second.data["exception"]
    assert handler.dropped == 0
