"""Two retention applies at once (two processes, two cron jobs): the one that walks
while the other removes sees holes its own receipts list did not know of yet. They
are recorded (the other's receipts were durable before it removed anything), so it
must go on — not refuse as if the store were damaged. (Found by the file backend's
multi-process stress test, ``tests/file_backend/test_stress.py``: two appliers.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from eventvault import MemoryEventStore, NewEvent, Query
from eventvault.config import RetentionConfig, RetentionRule
from eventvault.retention import resolve_policy
from eventvault.retention.plan import EventHead

A = resolve_policy(RetentionConfig(rules=[RetentionRule(types=["a.*"], max_age="1h")]))
B = resolve_policy(RetentionConfig(rules=[RetentionRule(types=["b.*"], max_age="1h")]))


@pytest.mark.parametrize("hashes", [1, 2])
def test_an_apply_walking_while_another_removes_goes_on(hashes: int) -> None:
    store = MemoryEventStore(hash_format=hashes)
    store.append([NewEvent(type="a.x" if i % 2 else "b.x", data={"i": i}) for i in range(40)])
    store.append(NewEvent(type="keep"))
    later = datetime.now(UTC) + timedelta(hours=2)
    backend = store.backend
    walk = backend.walk_heads
    raced: list[bool] = []

    def racing(before: int) -> Iterator[EventHead]:
        # The walk reads a few events, then the other apply removes every b.*,
        # then the walk goes on reading (as after a page boundary).
        last = 0
        for head in walk(before):
            yield head
            last = head.position
            if last == 4:
                break
        if not raced:
            raced.append(True)
            backend.walk_heads = walk  # type: ignore[method-assign]
            other = store.apply_retention(policy=B, now=later)
            assert other.removed == 20
        for head in walk(before):
            if head.position > last:
                yield head

    backend.walk_heads = racing  # type: ignore[method-assign]
    report = store.apply_retention(policy=A, now=later)
    assert raced
    assert report.removed == 20
    result = store.verify()
    assert result.ok, result
    assert {e.type for e in store.iter(Query(limit=100))} == {
        "keep",
        "eventvault.retention.applied",
    }
