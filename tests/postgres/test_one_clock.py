"""``recorded_at`` on PostgreSQL comes from one clock, the database's (issue 15,
item 10). The one-round-trip append stamps on the client, so it uses the client's
clock corrected by the offset to the database's clock measured on the last locking
commit, and the statement refuses (falling back to the locking path, which stamps
with the database's clock) any stamp more than ``CLOCK_TOLERANCE`` away from the
database's clock. A client whose clock runs a day ahead can no longer drag every
later event of every client a day into the future."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from eventvault import NewEvent, sequencer
from eventvault.backends.postgres.store import CLOCK_TOLERANCE, PostgresEventStore, drop_schema

DAY = timedelta(days=1)


@pytest.fixture
def pair(postgres_dsn: str) -> Iterator[tuple[PostgresEventStore, PostgresEventStore]]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    a = PostgresEventStore(postgres_dsn, schema=schema)
    b = PostgresEventStore(postgres_dsn, schema=schema)
    yield a, b
    a.close()
    b.close()
    drop_schema(postgres_dsn, schema)


def db_now(dsn: str) -> datetime:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value.astimezone(UTC)


def skewed(by: Callable[[], timedelta]) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) + by()


def assert_on_the_database_clock(store: PostgresEventStore, dsn: str) -> None:
    events = list(store.iter())
    limit = db_now(dsn) + CLOCK_TOLERANCE
    times = [e.recorded_at for e in events]
    assert all(a <= b for a, b in itertools.pairwise(times)), "recorded_at went backwards"
    late = [e for e in events if e.recorded_at > limit]
    assert not late, f"{len(late)} events recorded in the future, e.g. {late[0].recorded_at}"
    assert store.verify().ok


def test_a_client_a_day_ahead_from_the_start(
    pair: tuple[PostgresEventStore, PostgresEventStore],
    postgres_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = pair
    monkeypatch.setattr(sequencer, "utcnow", skewed(lambda: DAY))
    for _ in range(20):
        a.append(NewEvent(type="t"))  # the first locks; the rest take the fast path
    monkeypatch.undo()
    for _ in range(5):
        b.append(NewEvent(type="t"))  # an honest client, after the skewed one
    assert_on_the_database_clock(a, postgres_dsn)


def test_a_client_clock_that_jumps_a_day_ahead_after_its_first_commit(
    pair: tuple[PostgresEventStore, PostgresEventStore],
    postgres_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = pair
    skew = [timedelta(0)]
    monkeypatch.setattr(sequencer, "utcnow", skewed(lambda: skew[0]))
    for _ in range(3):
        a.append(NewEvent(type="t"))
    skew[0] = DAY  # NTP gone wrong, a VM resumed: the offset learned no longer holds
    for _ in range(10):
        a.append(NewEvent(type="t"))
    skew[0] = -DAY  # and a day behind: stamps in the past are refused too
    for _ in range(10):
        a.append(NewEvent(type="t"))
    monkeypatch.undo()
    b.append(NewEvent(type="t"))
    assert_on_the_database_clock(a, postgres_dsn)
    # Nothing a day behind either (beyond the tolerance of the clock at the time).
    events = list(a.iter())
    first = events[0].recorded_at
    assert all(e.recorded_at >= first for e in events)
    assert events[-1].recorded_at - first < timedelta(minutes=5)


def test_the_fast_path_is_still_taken_with_an_honest_clock(
    pair: tuple[PostgresEventStore, PostgresEventStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = pair
    slow: list[int] = []
    original = a.backend._commit_in

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        slow.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(a.backend, "_commit_in", spy)
    for _ in range(20):
        a.append(NewEvent(type="t"))
    assert len(slow) == 1
