"""The one-round-trip append (PostgresEventStore._commit_fast) and its fallbacks.

Two store instances on one schema stand for two processes: each remembers the head
of its own last commit, and must notice when the other wrote in between.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from eventvault import NO_STREAM, NewEvent, Query, WrongExpectedRevisionError
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema


@pytest.fixture
def pair(postgres_dsn: str) -> Iterator[tuple[PostgresEventStore, PostgresEventStore]]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    a = PostgresEventStore(postgres_dsn, schema=schema)
    b = PostgresEventStore(postgres_dsn, schema=schema)
    yield a, b
    a.close()
    b.close()
    drop_schema(postgres_dsn, schema)


def count_slow(store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = store.backend._commit_in

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(store.backend, "_commit_in", spy)
    return calls


def test_steady_state_takes_the_fast_path(pair, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a, _ = pair
    slow = count_slow(a, monkeypatch)
    a.append(NewEvent(type="t.x", stream="s"))  # first: nothing known yet
    for _ in range(20):
        a.append(NewEvent(type="t.x", stream="s"))
    a.append(NewEvent(type="t.x", stream="brand-new"))  # unknown but empty: still fast
    assert len(slow) == 1
    events = list(a.iter())
    assert [e.position for e in events] == list(range(1, 23))
    assert [e.stream_revision for e in events if e.stream == "s"] == list(range(21))
    assert a.verify().ok


def test_a_write_by_someone_else_forces_the_locking_path(pair, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    a.append(NewEvent(type="t.x", stream="s"))
    b.append([NewEvent(type="t.y", stream="s") for _ in range(3)])
    slow = count_slow(a, monkeypatch)
    rec = a.append(NewEvent(type="t.x", stream="s")).events[0]
    assert len(slow) == 1
    assert (rec.position, rec.stream_revision) == (5, 4)
    assert a.verify().ok


def test_stream_new_to_us_but_not_empty_is_detected(pair, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    b.append([NewEvent(type="t.y", stream="theirs") for _ in range(2)])
    a.append(NewEvent(type="t.x", stream="mine"))  # a learns the head (position 3)
    slow = count_slow(a, monkeypatch)
    rec = a.append(NewEvent(type="t.x", stream="theirs")).events[0]
    assert len(slow) == 1  # the fast attempt assumed revision 0 and was refused
    assert rec.stream_revision == 2
    assert a.verify().ok


def test_resending_a_stored_event_falls_back_and_returns_it(pair, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a, _ = pair
    first = NewEvent(type="t.x", stream="s")
    stored = a.append(first).events[0]
    a.append(NewEvent(type="t.x", stream="s"))
    slow = count_slow(a, monkeypatch)
    again = a.append(first).events[0]
    assert again == stored
    assert len(slow) == 1
    assert a.head() == 2
    nxt = a.append(NewEvent(type="t.x", stream="s")).events[0]
    assert nxt.position == 3


def test_expected_revision_on_an_unseen_stream_is_checked_by_the_database(pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    b.append(NewEvent(type="t.y", stream="x"))
    a.append(NewEvent(type="t.x", stream="other"))
    with pytest.raises(WrongExpectedRevisionError) as info:
        a.append(NewEvent(type="t.x", stream="x"), expected_revision=NO_STREAM)
    assert info.value.actual == 0
    a.append(NewEvent(type="t.x", stream="x"), expected_revision=0)
    assert [e.stream_revision for e in a.read(Query(streams=["x"])).events] == [0, 1]


def test_expected_revision_on_a_known_stream_stays_fast(pair, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    a, _ = pair
    a.append(NewEvent(type="t.x", stream="s"))
    slow = count_slow(a, monkeypatch)
    a.append(NewEvent(type="t.x", stream="s"), expected_revision=0)
    a.append(NewEvent(type="t.x", stream="s"), expected_revision=1)
    assert slow == []
    with pytest.raises(WrongExpectedRevisionError):
        a.append(NewEvent(type="t.x", stream="s"), expected_revision=0)
    assert a.head() == 3


def test_interleaved_writers_keep_one_chain(pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    for i in range(30):
        (a if i % 3 else b).append(NewEvent(type="t.z", stream=f"s{i % 4}"))
    events = list(a.iter())
    assert [e.position for e in events] == list(range(1, 31))
    for s in {e.stream for e in events}:
        revs = [e.stream_revision for e in events if e.stream == s]
        assert revs == list(range(len(revs)))
    assert a.verify().ok
    assert b.verify().ok
