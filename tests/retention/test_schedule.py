"""The scheduler ``serve`` and ``retention run`` use."""

from __future__ import annotations

import threading
import time
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


def test_a_stop_from_a_signal_handler_takes_no_lock() -> None:
    """`retention run` stops on SIGTERM from a handler that runs in the main thread —
    maybe while that thread holds the scheduler's event lock inside ``wait()``. The
    handler used to call ``stop()``, which takes that lock again: now and then the
    process hung for good (seen in CI). ``request_stop`` takes no lock."""
    sched = RetentionScheduler(MemoryEventStore(), POLICY, timedelta(seconds=1))
    returned = threading.Event()

    def handler_inside_wait() -> None:
        with sched._stop._cond:  # where the signal may land  # type: ignore[attr-defined]
            sched.request_stop()
        returned.set()

    t = threading.Thread(target=handler_inside_wait, daemon=True)
    t.start()
    t.join(5)
    assert returned.is_set()
    # ...and a scheduler waiting between runs sees it within its polling slice.
    sched = RetentionScheduler(MemoryEventStore(), POLICY, timedelta(hours=1))
    runner = threading.Thread(target=sched.run_forever, daemon=True)
    runner.start()
    deadline = time.monotonic() + 5
    while sched.runs < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    sched.request_stop()
    runner.join(5)
    assert not runner.is_alive()
    assert sched.runs == 1
