"""Live tail and tamper evidence."""

from __future__ import annotations

import threading

from ..model import Query, RecordedEvent
from ..store import EventStore
from ._base import ContractBase, Tamper, ev, mixed, need_tamper

__all__ = ["SubscribeVerifyContract"]


class SubscribeVerifyContract(ContractBase):
    def test_subscribe_catches_up_then_follows(self, store: EventStore) -> None:
        store.append([ev() for _ in range(5)])
        stop = threading.Event()
        got: list[int] = []

        def consume() -> None:
            for e in store.subscribe(poll_interval=0.05, stop=stop):
                got.append(e.position)
                if len(got) == 5 + 40:
                    stop.set()

        t = threading.Thread(target=consume)
        t.start()
        for _ in range(20):
            store.append([ev(), ev()])
        t.join(timeout=30)
        assert not t.is_alive()
        assert got == [e.position for e in store.iter(Query(limit=1000))]
        assert len(got) == 45

    def test_subscribe_after_position_with_filter(self, store: EventStore) -> None:
        recs = store.append(mixed(30)).events
        stop = threading.Event()
        got: list[RecordedEvent] = []
        want = [e for e in recs if e.correlation_id == "run-1" and e.position > 10]
        extra = store.append(mixed(8)).events
        want += [e for e in extra if e.correlation_id == "run-1"]
        for e in store.subscribe(
            Query(correlation_ids=["run-1"]), after=10, poll_interval=0.05, stop=stop
        ):
            got.append(e)
            if len(got) == len(want):
                break
        assert got == want

    def test_subscribe_ends_at_before(self, store: EventStore) -> None:
        recs = store.append([ev() for _ in range(10)]).events
        before = recs[3].position
        got = [e.position for e in store.subscribe(Query(before=before), poll_interval=0.05)]
        assert got == [e.position for e in recs[:3]]

    def test_verify_passes_on_an_intact_store(self, store: EventStore) -> None:
        assert store.verify().ok  # empty
        for _ in range(10):
            store.append(mixed(9))
        result = store.verify()
        assert result.ok
        assert result.checked == 90
        assert result.head_hash == store.read(Query(reverse=True, limit=1)).events[0].hash

    def test_verify_finds_the_tampered_event(
        self, store: EventStore, tamper: Tamper | None
    ) -> None:
        alter = need_tamper(tamper)
        recs = [r for _ in range(6) for r in store.append([ev() for _ in range(5)]).events]
        victim = recs[16].position
        store = alter(store, victim)
        try:
            result = store.verify()
            assert not result.ok
            assert result.first_bad_position == victim
            assert result.checked == 16
        finally:
            store.close()

    def test_verify_reports_progress(self, store: EventStore) -> None:
        store.append([ev() for _ in range(20)])
        calls: list[tuple[int, int | None]] = []
        store.verify(progress=lambda done, total: calls.append((done, total)))
        assert calls[-1] == (20, 20)
