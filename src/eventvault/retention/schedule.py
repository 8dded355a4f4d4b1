"""Applying the retention policy on a schedule (``retention run``, ``serve``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from ..errors import EventVaultError
from ..store import EventStore
from .plan import RetentionReport
from .policy import Policy

#: How often a waiting scheduler looks for a stop requested by a signal, seconds.
_POLL = 0.2

__all__ = ["RetentionScheduler", "describe_report"]

log = logging.getLogger("eventvault.retention")


def describe_report(report: RetentionReport) -> str:
    """One line saying what an application did."""
    if not report.removed:
        return f"nothing to remove (head {report.plan.head:,})"
    at = report.receipt_positions
    receipts = (
        f"receipt at position {at[0]}"
        if len(at) == 1
        else f"{len(at)} receipts at positions {at[0]}–{at[-1]}"
    )
    return (
        f"removed {report.removed:,} events in {report.runs:,} run(s) in "
        f"{report.seconds:.2f} s; {receipts}"
    )


class RetentionScheduler:
    """Applies ``policy`` to ``store`` every ``every``, in a thread or in the foreground.

    A failed run is logged and retried at the next tick: a retention hiccup (say,
    the database restarting) must not stop the service that hosts it.
    """

    def __init__(
        self,
        store: EventStore,
        policy: Policy,
        every: timedelta,
        *,
        clock: Callable[[], datetime] | None = None,
        on_report: Callable[[RetentionReport], None] | None = None,
    ) -> None:
        if every <= timedelta(0):
            raise ValueError("the retention interval must be positive")
        self.store = store
        self.policy = policy
        self.every = every
        self.runs = 0
        self.failures = 0
        self._clock = clock
        self._on_report = on_report
        self._stop = threading.Event()
        #: Set by :meth:`request_stop` (from a signal handler: no lock taken).
        self._stopping = False
        self._thread: threading.Thread | None = None

    def run_once(self) -> RetentionReport | None:
        now = self._clock() if self._clock is not None else None
        try:
            report = self.store.apply_retention(policy=self.policy, now=now)
        except EventVaultError as exc:
            self.failures += 1
            # The reason, not a traceback: these are operational (e.g. a database restart).
            log.error("retention run failed (will retry in %s): %s", self.every, exc)  # noqa: TRY400
            return None
        self.runs += 1
        log.info("retention: %s", describe_report(report))
        if self._on_report is not None:
            self._on_report(report)
        return report

    def run_forever(self) -> None:
        """Run now, then every interval, until :meth:`stop`."""
        while not self._stopped():
            self.run_once()
            # In slices, so a stop requested from a signal handler is seen promptly.
            until = time.monotonic() + self.every.total_seconds()
            while not self._stopped() and (left := until - time.monotonic()) > 0:
                self._stop.wait(min(left, _POLL))

    def _stopped(self) -> bool:
        return self._stopping or self._stop.is_set()

    def request_stop(self) -> None:
        """Stop :meth:`run_forever` after the run in progress, if any — safe in a signal
        handler. (:meth:`stop` is not: a handler runs in the main thread, maybe while it
        holds the event's lock inside ``wait``, and taking it again deadlocks.)"""
        self._stopping = True

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(
            target=self.run_forever, name="eventvault-retention", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
