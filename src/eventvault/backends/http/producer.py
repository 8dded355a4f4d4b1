"""A batching producer for hot loops: ``append`` returns at once, a thread sends.

:class:`Producer` takes events into a bounded buffer and sends them from one
background thread, in batches of up to ``max_batch`` events or after ``linger``
seconds, whichever comes first. A batch that fails for a reason a retry can fix
(no connection, a timeout, 5xx, 429) is sent again — the *same* events with the
*same* ids, so a batch whose first attempt did commit is not stored twice — with
back-off, for as long as the producer is open. A batch the server refuses (4xx:
a bad event, a conflict) is split until the events it refuses are alone; those
are reported (:attr:`Producer.failed`, ``on_error``), the others delivered.

When the buffer is full (the server has not taken events for a while),
``append`` blocks (``when_full="block"``, up to ``block_timeout``) or raises
:class:`~eventvault.errors.BufferFullError` (``"raise"``): memory stays bounded
by ``max_buffer`` events plus one batch in flight.

:meth:`Producer.close` (also at interpreter exit) sends what is buffered, for up
to ``close_timeout`` seconds, and returns a :class:`ProducerReport` naming what
it could not deliver. What a process killed outright (``kill -9``) held in its
buffer is lost with it; a producer that may be killed gives its events ids of
its own (``NewEvent(id=...)``) and re-sends them after a restart: the store
keeps each id once.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ... import errors
from ...model import NewEvent
from ...store import EventStore

__all__ = ["Producer", "ProducerReport"]


@dataclass(frozen=True)
class ProducerReport:
    """What a producer did, by its close."""

    delivered: int
    #: Events the store refused, each with the error (they will never be stored as sent).
    failed: list[tuple[NewEvent, errors.EventVaultError]] = field(default_factory=list)
    #: Events still unsent when ``close`` gave up (the server was unreachable).
    pending: list[NewEvent] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.pending


class Producer:
    """Send events to ``store`` (any store; usually an
    :class:`~eventvault.backends.http.HttpEventStore`) in batches, off the caller's
    thread. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        store: EventStore,
        *,
        max_batch: int = 500,
        linger: float = 0.05,
        max_buffer: int = 100_000,
        when_full: Literal["block", "raise"] = "block",
        block_timeout: float | None = None,
        close_timeout: float = 30.0,
        max_backoff: float = 5.0,
        on_error: Callable[[NewEvent, errors.EventVaultError], None] | None = None,
        close_store: bool = False,
    ) -> None:
        if not 1 <= max_batch <= 100_000:
            raise errors.ValidationError(f"max_batch must be 1–100000, got {max_batch!r}")
        if max_buffer < max_batch:
            raise errors.ValidationError("max_buffer must be at least max_batch")
        if when_full not in ("block", "raise"):
            raise errors.ValidationError(f"when_full must be 'block' or 'raise', not {when_full!r}")
        self.store = store
        self.max_batch = max_batch
        self.linger = linger
        self.max_buffer = max_buffer
        self.when_full = when_full
        self.block_timeout = block_timeout
        self.close_timeout = close_timeout
        self.max_backoff = max_backoff
        self.on_error = on_error
        self._close_store = close_store
        # (The http store's lean append: positions, not whole records, come back.)
        self._send: Callable[[list[NewEvent]], Any] = getattr(store, "send", store.append)
        self._buffer: deque[NewEvent] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._closing = False
        self._closed = False
        self._give_up_at: float | None = None
        self.delivered = 0
        self.retries = 0
        self.failed: list[tuple[NewEvent, errors.EventVaultError]] = []
        self._pending: list[NewEvent] = []
        #: The last reason a batch could not be sent yet (None once one is sent).
        self.last_error: errors.EventVaultError | None = None
        self._thread = threading.Thread(target=self._run, name="eventvault-producer", daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    @classmethod
    def connect(cls, url: str, *, token: str | None = None, **options: Any) -> Producer:
        """A producer with its own :class:`~.store.HttpEventStore` (closed with it)."""
        from .store import HttpEventStore

        store_keys = ("timeout", "retries", "ca_file", "verify_tls")
        store_options = {k: options.pop(k) for k in store_keys if k in options}
        store = HttpEventStore(url, token=token, **store_options)
        return cls(store, close_store=True, **options)

    # -- the caller's side ------------------------------------------------------------

    def append(self, event: NewEvent) -> None:
        """Take ``event`` for sending; returns at once unless the buffer is full."""
        if type(event) is not NewEvent:
            raise errors.ValidationError(f"append takes a NewEvent, not {type(event).__name__}")
        cond = self._cond
        with cond:
            if self._closing:
                raise errors.StoreClosedError
            buffer = self._buffer
            if len(buffer) >= self.max_buffer:
                self._wait_for_room()
            buffer.append(event)
            if len(buffer) == 1 or len(buffer) == self.max_batch:
                cond.notify_all()

    def _wait_for_room(self) -> None:
        full = errors.BufferFullError(
            f"the producer's buffer holds {self.max_buffer} events (max_buffer) the server "
            f"has not taken yet: {self.last_error or 'it is slower than the producer'}"
        )
        if self.when_full == "raise":
            raise full
        deadline = None if self.block_timeout is None else time.monotonic() + self.block_timeout
        while len(self._buffer) >= self.max_buffer:
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left <= 0) or self._closing:
                raise full
            self._cond.wait(left)

    @property
    def pending(self) -> int:
        """Events taken and not yet delivered or refused."""
        with self._cond:
            return len(self._buffer) + self._in_flight

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event taken so far is delivered or refused; False if
        ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._buffer or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is not None else 0.5)
        return True

    def close(self, timeout: float | None = None) -> ProducerReport:
        """Send what is buffered (for up to ``timeout``, default ``close_timeout``
        seconds), stop, and report. Safe to call twice."""
        timeout = self.close_timeout if timeout is None else timeout
        with self._cond:
            if not self._closing:
                self._closing = True
                self._give_up_at = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout + 5)
        with self._cond:
            if not self._closed:
                self._closed = True
                self._pending.extend(self._buffer)
                self._buffer.clear()
                if self._close_store:
                    self.store.close()
            return ProducerReport(self.delivered, list(self.failed), list(self._pending))

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the sending thread ---------------------------------------------------------------

    def _take(self) -> list[NewEvent] | None:
        """The next batch (waiting for it), or None when closing with nothing left."""
        cond = self._cond
        with cond:
            while not self._buffer:
                if self._closing:
                    return None
                cond.wait()
            if len(self._buffer) < self.max_batch and not self._closing:
                cond.wait(self.linger)  # (let a batch fill; an append of the max wakes us)
            buffer = self._buffer
            n = min(len(buffer), self.max_batch)
            batch = [buffer.popleft() for _ in range(n)]
            self._in_flight = n
            cond.notify_all()  # (room for appends that wait)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._deliver(batch)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _giving_up(self) -> bool:
        return self._give_up_at is not None and time.monotonic() >= self._give_up_at

    def _deliver(self, batch: list[NewEvent]) -> None:
        failures = 0
        while True:
            try:
                self._send(batch)
            except errors.StoreUnavailableError as exc:  # a retry may help: same ids again
                self.last_error = exc
                failures += 1
                if self._giving_up():
                    with self._cond:
                        self._pending.extend(batch)
                    return
                self.retries += 1
                pause = min(0.05 * 2 ** min(failures, 10), self.max_backoff)
                if self._give_up_at is not None:
                    pause = min(pause, max(self._give_up_at - time.monotonic(), 0.0))
                time.sleep(pause)
                continue
            except errors.EventVaultError as exc:  # refused: find the events it refuses
                if len(batch) > 1:
                    half = len(batch) // 2
                    self._deliver(batch[:half])
                    self._deliver(batch[half:])
                    return
                self._refused(batch[0], exc)
                return
            except Exception as exc:
                self._refused(batch[0], errors.StoreError(f"unexpected {exc!r}"))
                if len(batch) > 1:
                    self._deliver(batch[1:])
                return
            self.last_error = None
            with self._cond:
                self.delivered += len(batch)
            return

    def _refused(self, event: NewEvent, exc: errors.EventVaultError) -> None:
        with self._cond:
            self.failed.append((event, exc))
        if self.on_error is not None:
            with contextlib.suppress(Exception):  # (the caller's callback must not stop us)
                self.on_error(event, exc)


def _close_at_exit(ref: weakref.ref[Producer]) -> None:
    producer = ref()
    if producer is not None:
        producer.close()
