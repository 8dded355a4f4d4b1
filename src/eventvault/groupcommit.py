"""Group commit: many threads' appends, one write and one flush.

A thread that appends queues its request. If no commit is running, it becomes the
*leader*: it takes every queued request and commits them together; otherwise it
waits on a condition until a leader has done its request. Followers wait for
*their* request, not for a lock, so the moment a commit ends the next leader
takes everything that queued up meanwhile — the group grows with the load.

Each request keeps its own outcome: the commit function sets ``results`` or
``error`` per request, so one failing batch does not fail its neighbours.

Outcome completeness is this module's job, not the commit function's: whatever
the commit did — returned, raised an eventvault error, raised a bug, ran out of
memory — every request of the group leaves with its records or with an error of
its own (:meth:`GroupCommit._settle`). Results a commit set before it raised were
never proven written, so they are replaced by the error; a request the commit
left undecided gets an error too. A non-empty batch never returns an empty result.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .boundary import translate
from .errors import EventVaultError, StoreClosedError, StoreError
from .model import ExpectedRevision, Import, NewEvent, RecordedEvent

__all__ = ["GroupCommit", "Request"]


@dataclass
class Request:
    batch: list[NewEvent]
    expected: int | ExpectedRevision
    imported: Import | None = None  # instead of ``batch``: records copied from a store
    results: list[RecordedEvent] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


class GroupCommit:
    """Coalesces concurrent appends; ``commit(group)`` runs in one thread at a time."""

    def __init__(self, commit: Callable[[list[Request]], None]) -> None:
        self._commit = commit
        self._cv = threading.Condition()
        self._pending: list[Request] = []
        self._committing = False
        self._closed = False
        self._last_group = 0

    def submit(
        self, batch: list[NewEvent], expected: int | ExpectedRevision
    ) -> list[RecordedEvent]:
        return self.submit_request(Request(batch, expected))

    def submit_request(self, req: Request) -> list[RecordedEvent]:
        with self._cv:
            if self._closed:
                raise StoreClosedError
            self._pending.append(req)
            while not req.done and self._committing:
                self._cv.wait()
            if req.done:
                return self._outcome(req)
            self._committing = True
            if self._last_group > 1:
                # Others were committing with us last time: let them (just woken by
                # the previous commit) queue up before we take the queue. One yield
                # of the GIL; a lone writer never pays it.
                self._cv.release()
                time.sleep(0)
                self._cv.acquire()
            group, self._pending = self._pending, []
            self._last_group = len(group)
        failure: BaseException | None = None
        try:
            self._commit(group)
        except BaseException as exc:  # every request must still get an outcome
            failure = exc
        finally:
            with self._cv:
                try:
                    _settle(group, failure)
                finally:
                    for r in group:
                        r.done = True
                    self._committing = False
                    self._cv.notify_all()
        if failure is not None and not isinstance(failure, Exception):
            raise failure  # KeyboardInterrupt, SystemExit: the leader thread's own
        return self._outcome(req)

    @staticmethod
    def _outcome(req: Request) -> list[RecordedEvent]:
        if req.error is not None:
            raise req.error
        return req.results

    def drain(self) -> None:
        """Refuse new requests and wait for a running commit to finish."""
        with self._cv:
            self._closed = True
            while self._committing:
                self._cv.wait()


def _expected_count(req: Request) -> int:
    return len(req.imported.records) if req.imported is not None else len(req.batch)


def _own(error: EventVaultError) -> EventVaultError:
    """A copy of ``error`` for one request (one exception object raised in several
    threads would collect their tracebacks into each other); itself if it cannot
    be copied."""
    try:
        dup = copy.copy(error)
    except Exception:
        return error
    dup.__cause__ = error.__cause__
    return dup


def _settle(group: list[Request], failure: BaseException | None) -> None:
    """Give every request of ``group`` an outcome after its commit returned (or
    raised ``failure``): its own error, or exactly one record per event."""
    if failure is not None:
        if isinstance(failure, Exception):
            error = translate(failure, "appending")
            if error is failure:  # an eventvault error: each request gets a copy
                error = _own(failure)
            elif error.__cause__ is None:
                error.__cause__ = failure
        else:
            error = StoreError(
                f"appending: the committing thread was interrupted "
                f"({type(failure).__name__}); the outcome is unknown — retrying with "
                "the same event ids is safe"
            )
            error.__cause__ = failure
        for req in group:
            if req.error is None:
                # Results set before the commit raised were never proven written.
                req.error = _own(error)
                req.error.__cause__ = error.__cause__
                req.results = []
        return
    for req in group:
        if req.error is None and len(req.results) != _expected_count(req):
            req.error = StoreError(
                f"appending: the backend decided {len(req.results)} of "
                f"{_expected_count(req)} events of this batch (a bug); nothing is "
                "acknowledged — retrying with the same event ids is safe"
            )
            req.results = []
