"""The scheduler ``serve`` and ``retention run`` use."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from eventvault import MemoryEventStore, NewEvent, Query
from eventvault.config import RetentionConfig
from eventvault.retention import resolve_policy
from eventvault.retention.plan import RetentionReport
from eventvault.retention.schedule import RetentionScheduler

POLICY = resolve_policy(RetentionConfig(max_age="1h"))


def test_runs_in_a_thread_with_an_injected_clock() -> None:
    assert POLICY is not None
    store = MemoryEventStore()
    store.append([NewEvent(type="t.x") for _ in range(3)])
    later = datetime.now(UTC) + timedelta(hours=2)
    reports: list[RetentionReport] = []
    done = threading.Event()

    def on_report(report: RetentionReport) -> None:
        reports.append(report)
        done.set()

    scheduler = RetentionScheduler(
        store, POLICY, timedelta(seconds=30), clock=lambda: later, on_report=on_report
    )
    scheduler.start()
    assert done.wait(10)
    scheduler.stop(timeout=10)
    assert reports[0].removed == 3
    assert scheduler.runs == 1
    assert [e.type for e in store.iter(Query())] == ["eventvault.retention.applied"]


def test_a_failed_run_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    assert POLICY is not None
    store = MemoryEventStore()
    store.close()
    scheduler = RetentionScheduler(store, POLICY, timedelta(minutes=1))
    assert scheduler.run_once() is None
    assert scheduler.failures == 1
    assert "retention run failed" in caplog.text
    with pytest.raises(ValueError, match="positive"):
        RetentionScheduler(store, POLICY, timedelta(0))
