"""Group commit: many threads' appends, one write and one flush.

A thread that appends queues its request. If no commit is running, it becomes the
*leader*: it takes every queued request and commits them together; otherwise it
waits on a condition until a leader has done its request. Followers wait for
*their* request, not for a lock, so the moment a commit ends the next leader
takes everything that queued up meanwhile — the group grows with the load.

Each request keeps its own outcome: the commit function sets ``results`` or
``error`` per request, so one failing batch does not fail its neighbours.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import StoreClosedError
from .model import ExpectedRevision, NewEvent, RecordedEvent

__all__ = ["GroupCommit", "Import", "Request"]


@dataclass(slots=True, frozen=True)
class Import:
    """Events recorded by another store, to be written as they are (``eventvault copy``).

    The destination numbers them with its own positions and keeps everything else:
    ids, streams, revisions, times and — unless ``rechain`` — the hashes, so the
    chain head is the source's. ``rechain`` (a filtered slice, whose events no longer
    chain to each other) recomputes the hashes over the same content instead.
    """

    records: Sequence[RecordedEvent]
    rechain: bool = False


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
        try:
            self._commit(group)
        finally:
            with self._cv:
                for r in group:
                    r.done = True
                self._committing = False
                self._cv.notify_all()
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
