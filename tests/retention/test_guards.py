"""Misuse of plans, and holes no receipt accounts for."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from eventvault import (
    CorruptionError,
    MemoryEventStore,
    NewEvent,
    Query,
    RecordedEvent,
    ValidationError,
)
from eventvault.config import RetentionConfig, RetentionRule
from eventvault.retention import resolve_policy

KEEP_2 = resolve_policy(RetentionConfig(max_count=2))
DEBUG = resolve_policy(RetentionConfig(rules=[RetentionRule(types=["debug.*"], max_age="1h")]))


HASHES = 2


@pytest.fixture(autouse=True, params=[1, 2], ids=["chain", "leaf"])
def _both_hash_formats(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every guard holds in both hash formats (``filled`` makes stores of each)."""
    monkeypatch.setitem(globals(), "HASHES", request.param)


def filled() -> MemoryEventStore:
    store = MemoryEventStore(hash_format=HASHES)
    store.append([NewEvent(type="debug.x" if i % 2 else "task.done") for i in range(10)])
    return store


def test_a_plan_only_applies_to_its_store_and_policy() -> None:
    a, b = filled(), filled()
    plan = a.plan_retention(KEEP_2)
    assert plan.count == 8  # every event is in the global group; the newest 2 stay
    with pytest.raises(ValidationError, match="another store"):
        b.apply_retention(plan, policy=KEEP_2)
    with pytest.raises(ValidationError, match="different policy"):
        a.apply_retention(plan, policy=DEBUG)
    with pytest.raises(ValidationError, match="pass the policy"):
        a.apply_retention(plan)
    with pytest.raises(ValidationError, match="timezone-aware"):
        a.plan_retention(KEEP_2, now=datetime(2030, 1, 1))
    assert a.stats().events == 10


def test_a_hole_no_receipt_covers_is_reported_as_such() -> None:
    store = filled()
    later = datetime.now(UTC) + timedelta(hours=2)
    store.apply_retention(policy=DEBUG, now=later)  # removes 2, 4, 6, 8, 10
    assert store.verify().ok
    # Someone removes survivor 5 behind the store's back.
    i = store.backend._positions.index(5)
    del store.backend._events[i], store.backend._positions[i]
    result = store.verify()
    assert not result.ok
    assert result.first_bad_position == 7
    assert "no retention receipt accounts for them" in (result.reason or "")
    assert [e.position for e in store.iter(Query())] == [1, 3, 7, 9, 11]


def test_retention_refuses_to_launder_a_broken_chain() -> None:
    """Someone deleted survivor 5; retention would remove 6 (debug) next to it, which
    would turn the damage into a recorded hole. It refuses and removes nothing."""
    store = filled()
    i = store.backend._positions.index(5)
    del store.backend._events[i], store.backend._positions[i]
    later = datetime.now(UTC) + timedelta(hours=2)
    with pytest.raises(CorruptionError, match="broken at position 6"):
        store.apply_retention(policy=DEBUG, now=later)
    assert [e.position for e in store.iter(Query())] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert store.verify().first_bad_position == 6


def test_only_receipts_naming_the_store_account_for_a_leaf_stores_holes() -> None:
    """A leaf hash confirms nothing about the event before it, so a hole counts as
    recorded only by receipts of this very store — not a receipt without a store
    (older receipts, perhaps copied from a store numbered otherwise), nor another's."""
    from eventvault.integrity.bridges import Bridges

    def receipt(store: str | None, run: list[object]) -> RecordedEvent:
        data: dict[str, object] = {"runs": [run]}
        if store is not None:
            data["store"] = store
        return RecordedEvent(
            position=500,
            stream_revision=0,
            recorded_at=datetime.now(UTC),
            occurred_at=datetime.now(UTC),
            id=uuid.uuid4(),
            type="eventvault.retention.applied",
            stream="eventvault",
            data=data,
            hash="0" * 64,
        )

    old_style = [10, 200, 191, "ab" * 32, 9]  # five elements: no before_hash, no store
    for store in (None, "another-store"):
        assert not Bridges("this-store").add_all([receipt(store, old_style)]).covers(49, 151)
    own = Bridges("this-store").add_all([receipt("this-store", old_style)])
    assert own.covers(49, 151)
    assert own.covers(9, 201)
    assert not own.covers(8, 201)  # position 9 is not in the run
