"""The store users call: one façade over one backend.

:class:`EventStore` holds what is the same for every backend — argument checks,
cursors, paging, the live tail loop, chain verification, the retention algorithm
— and calls one :class:`~eventvault.spi.Backend` (the contract in
:mod:`eventvault.spi`) to store and find records. Each built-in backend also has
a thin subclass (``FileEventStore(path)``, ``MemoryEventStore()``, …) that builds
its backend and keeps that backend's own public methods.

The contract's error promise is kept here, at its edge: no public method of any
store raises anything but an ``eventvault.errors`` type. A backend translates its
driver's errors in one place (:meth:`~eventvault.spi.Backend.translate_error`);
whatever still escapes — a bug, ``MemoryError``, an ``OSError`` from an unexpected
path — is translated by :func:`eventvault.boundary.translate` as a last resort,
with the original as ``__cause__``. Every public method, the façade's and any a
subclass adds, is wrapped once (:meth:`EventStore.__init_subclass__`). Callers
inside the package go through the façade too (``import_records``,
``wait_for_head``), so the promise holds for ``copy_store``, ``import`` and the
server's long poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from uuid import UUID

import msgspec

from .boundary import guard_public_methods, typed
from .cursor import decode_cursor, encode_cursor
from .errors import (
    EventVaultError,
    StoreClosedError,
    ValidationError,
)
from .integrity.log import AuditLog
from .integrity.verifying import verify_store
from .model import (
    MAX_BATCH,
    AppendResult,
    ExpectedRevision,
    Import,
    NewEvent,
    Page,
    Query,
    RecordedEvent,
    StoreStats,
    VerifyResult,
)
from .retention import Policy
from .retention.apply import apply_plan
from .retention.plan import RetentionPlan, RetentionReport
from .sequencer import Results
from .spi import Backend, ProgressCallback, require_importing, require_retaining

if TYPE_CHECKING:  # (eventvault.runs imports this module)
    from datetime import timedelta

    from .runs import Outcomes, RunDiff, RunPage, RunTrace
    from .tlog.checkpoint import Checkpoint

__all__ = ["MAX_BATCH", "EventStore", "ProgressCallback"]


#: Event types the store itself writes (retention receipts); producers cannot.
RESERVED_TYPE_PREFIX = "eventvault."

_T = TypeVar("_T")


def as_uuid(event_id: UUID | str) -> UUID | None:
    """``event_id`` as a UUID, or None when it is not one (so it cannot be stored)."""
    if isinstance(event_id, UUID):
        return event_id
    try:
        return UUID(str(event_id))
    except ValueError:
        return None


def _normalise_batch(events: NewEvent | Iterable[NewEvent]) -> list[NewEvent]:
    batch = [events] if isinstance(events, NewEvent) else list(events)
    if not batch:
        raise ValidationError("append needs at least one event")
    if len(batch) > MAX_BATCH:
        raise ValidationError(f"a batch holds at most {MAX_BATCH} events, got {len(batch)}")
    if {type(ev) for ev in batch} != {NewEvent}:
        for i, ev in enumerate(batch):
            if not isinstance(ev, NewEvent):
                raise ValidationError(f"event {i} is a {type(ev).__name__}, not a NewEvent")
    for ev in batch:
        # A forged receipt could vouch for a hole someone cut: only the store writes them.
        if ev.type.startswith(RESERVED_TYPE_PREFIX):
            raise ValidationError(
                f"event type {ev.type!r} is reserved: types starting with "
                f"{RESERVED_TYPE_PREFIX!r} are written by eventvault itself"
            )
    # UUID.__hash__ is Python code; .int is a plain attribute.
    if len({ev.id.int for ev in batch}) != len(batch):
        seen: set[int] = set()
        for ev in batch:
            if ev.id.int in seen:
                raise ValidationError(f"event id {ev.id} appears twice in one batch")
            seen.add(ev.id.int)
    return batch


def _check_expected(
    batch: Sequence[NewEvent], expected: int | ExpectedRevision | None
) -> int | ExpectedRevision:
    if expected is None:
        return ExpectedRevision.ANY
    if isinstance(expected, ExpectedRevision):
        pass
    elif type(expected) is not int or expected < 0:
        raise ValidationError(
            f"expected_revision must be an int >= 0, ANY, NO_STREAM or STREAM_EXISTS, "
            f"got {expected!r}"
        )
    if expected is not ExpectedRevision.ANY and len({e.stream for e in batch}) > 1:
        raise ValidationError("expected_revision needs every event of the batch in one stream")
    return expected


class EventStore:
    """An append-only, ordered, verifiable log of events, kept by ``backend``.

    Thread-safe. Use as a context manager, or call :meth:`close` (which closes the
    backend: the store owns it).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        guard_public_methods(cls)  # a backend's own public methods (reindex, ...) too

    def __init__(self, backend: Backend) -> None:
        if not isinstance(backend, Backend):
            raise TypeError(f"EventStore needs an eventvault.spi.Backend, got {backend!r}")
        self._backend = backend
        #: The policy ``plan_retention``/``apply_retention`` use when given none
        #: (``open_store`` sets it from the configuration; None: keep forever).
        self.retention_policy: Policy | None = None
        self._closed = False
        self._closing = threading.Lock()

    @property
    def backend(self) -> Backend:
        """The storage engine behind this store. Ask it for a capability with
        ``isinstance(store.backend, eventvault.spi.Retaining)`` (or ``Importing``)."""
        return self._backend

    @property
    def backend_name(self) -> str:
        """The backend's registered name ("file", "postgres", …)."""
        return self._backend.name

    @property
    def hash_format(self) -> int:
        """What each event's stored ``hash`` is: 1, a hash chain (stores made before
        format 2, and backends without a Merkle tree); 2, the event's RFC 9162 leaf
        hash (see :mod:`eventvault.integrity.chain`)."""
        return self._ask(lambda: self._backend.hash_format, "hash format")

    @property
    def contiguous_positions(self) -> bool:
        """Whether positions are assigned 1, 2, 3… (gaps then mean removed events)."""
        return self._ask(lambda: self._backend.contiguous_positions, "contiguous positions")

    @property
    def max_event_bytes(self) -> int:
        """The largest event (canonical JSON bytes) the backend takes."""
        return self._backend.max_event_bytes

    @property
    def store_id(self) -> str:
        """A stable identifier of this store (cursors are tied to it)."""
        return self._ask(lambda: self._backend.store_id, "store id")

    def _ask(self, get: Callable[[], _T], action: str) -> _T:
        """A backend property through the error boundary (properties are not wrapped
        like the methods, and the http backend asks its server for some)."""
        try:
            return get()
        except EventVaultError:
            raise
        except Exception as exc:
            raise typed(self, exc, action) from exc

    # -- the public API ------------------------------------------------------------

    def append(
        self,
        events: NewEvent | Iterable[NewEvent],
        *,
        expected_revision: int | ExpectedRevision | None = None,
    ) -> AppendResult:
        """Append one event or an atomic batch.

        ``expected_revision`` (single-stream batches only): an int is the revision
        of the stream's last event; ``NO_STREAM``; ``STREAM_EXISTS``; ``ANY``/None.
        Events whose id is already stored with the same content are returned as
        stored and not written again.
        """
        self._check_open()
        batch = _normalise_batch(events)
        expected = _check_expected(batch, expected_revision)
        records = self._backend.commit(batch, expected)
        # (A backend that does not say how many it wrote is taken to have written all.)
        written = records.written if isinstance(records, Results) else len(records)
        return AppendResult(events=records, written=written)

    def get(self, event_id: UUID | str) -> RecordedEvent | None:
        """The event with this id (a UUID or its text), or None."""
        self._check_open()
        key = as_uuid(event_id)
        if key is None:
            raise ValidationError(f"{event_id!r} is not an event id (UUID)")
        return self._backend.get(key)

    def read(self, query: Query | None = None, *, cursor: str | None = None) -> Page:
        """One page of events matching ``query``; pass ``page.next_cursor`` for the next."""
        self._check_open()
        query = query if query is not None else Query()
        if cursor is not None:
            position = decode_cursor(cursor, query, self.store_id)
            if query.reverse:
                bound = position if query.before is None else min(position, query.before)
                query = msgspec.structs.replace(query, before=bound)
            else:
                bound = position if query.after is None else max(position, query.after)
                query = msgspec.structs.replace(query, after=bound)
        events = self._backend.read(query, query.limit + 1)
        next_cursor = None
        if len(events) > query.limit:
            events = events[: query.limit]
            next_cursor = encode_cursor(query, events[-1].position, self.store_id)
        return Page(events=events, next_cursor=next_cursor)

    def iter(self, query: Query | None = None, *, page_size: int = 1000) -> Iterator[RecordedEvent]:
        """Every event matching ``query``, page by page (``query.limit`` is the page size)."""
        query = query if query is not None else Query(limit=page_size)
        cursor: str | None = None
        while True:
            page = self.read(query, cursor=cursor)
            yield from page.events
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def subscribe(
        self,
        query: Query | None = None,
        *,
        after: int | None = None,
        poll_interval: float = 0.5,
        stop: threading.Event | None = None,
    ) -> Iterator[RecordedEvent]:
        """Events matching ``query`` after position ``after`` (default: from the start),
        then new ones as they are appended — in order, without gaps or duplicates.

        Ends when ``stop`` is set, the store is closed, or the caller stops iterating.
        """
        query = query if query is not None else Query()
        if query.reverse:
            raise ValidationError("subscribe reads forwards; reverse=True is not allowed")
        last = max(after or 0, query.after or 0)
        batch = msgspec.structs.replace(query, limit=1000)
        while not self._closed and not (stop is not None and stop.is_set()):
            head = self.head()
            events = self._backend.read(msgspec.structs.replace(batch, after=last), 1000)
            if events:
                yield from events
                last = events[-1].position
                continue
            # Nothing matched in (last, head]: every event up to head was readable
            # when head was taken, so no later read can find one there.
            last = max(last, head)
            if query.before is not None and last >= query.before - 1:
                return
            self._backend.wait(head, poll_interval)

    def head(self) -> int:
        """The last position in use (0 for an empty store)."""
        self._check_open()
        return self._backend.head()

    def wait_for_head(self, head: int, timeout: float) -> None:
        """Block until the head moves past ``head`` (another process's append
        counts), or ``timeout`` seconds pass; may return early. What a poller or a
        long poll waits with (``subscribe`` is the loop built on it)."""
        self._check_open()
        self._backend.wait(head, timeout)

    def import_records(self, imp: Import) -> list[RecordedEvent]:
        """Write records another store recorded, as they are (see
        :class:`~eventvault.model.Import`) — what ``copy_store`` and ``eventvault
        import`` do, page by page. Raises :class:`NotSupportedError` when the backend
        is not :class:`~eventvault.spi.Importing`."""
        self._check_open()
        return require_importing(self._backend).import_records(imp)

    def stats(self) -> StoreStats:
        """A summary of the store."""
        self._check_open()
        return self._backend.stats()

    # -- runs: the events of one correlation id (eventvault.runs) ---------------------

    def runs(
        self,
        query: Query | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
        outcomes: Outcomes | None = None,
    ) -> RunPage:
        """One page of runs, newest first (:func:`eventvault.runs.list_runs`): a run is
        listed when one of its events matches ``query``; pass ``next_cursor`` on."""
        from .runs import DEFAULT_OUTCOMES, list_runs

        self._check_open()
        chosen = DEFAULT_OUTCOMES if outcomes is None else outcomes
        return list_runs(self, query, limit=limit, cursor=cursor, outcomes=chosen)

    def run(
        self,
        correlation_id: str,
        *,
        max_events: int | None = None,
        outcomes: Outcomes | None = None,
    ) -> RunTrace | None:
        """The run's events with its causal tree and actor lanes
        (:func:`eventvault.runs.load_run`); None when no event has this correlation id
        (like :meth:`get`). A run longer than ``max_events`` (default 10,000) comes
        back with its first events and ``truncated=True``."""
        from .runs import DEFAULT_MAX_EVENTS, DEFAULT_OUTCOMES, load_run

        self._check_open()
        return load_run(
            self,
            correlation_id,
            max_events=DEFAULT_MAX_EVENTS if max_events is None else max_events,
            outcomes=DEFAULT_OUTCOMES if outcomes is None else outcomes,
        )

    def diff(
        self,
        run_a: str,
        run_b: str,
        *,
        timing_threshold: timedelta | None = None,
        max_events: int | None = None,
    ) -> RunDiff:
        """How run ``run_b`` differs from run ``run_a`` (correlation ids), aligned by
        their (actor, type) sequences (:func:`eventvault.runs.diff_runs`). Raises
        :class:`~eventvault.errors.RunNotFoundError` when either run has no event."""
        from .errors import RunNotFoundError
        from .runs import DEFAULT_TIMING_THRESHOLD, diff_runs

        traces = []
        for name in (run_a, run_b):
            trace = self.run(name, max_events=max_events)
            if trace is None:
                raise RunNotFoundError(name)
            traces.append(trace)
        threshold = DEFAULT_TIMING_THRESHOLD if timing_threshold is None else timing_threshold
        return diff_runs(traces[0], traces[1], timing_threshold=threshold)

    def verify(
        self,
        *,
        progress: ProgressCallback | None = None,
        checkpoints: Sequence[Checkpoint] = (),
    ) -> VerifyResult:
        """Recompute the hash chain from the first stored event to the head; report
        the first position where it breaks. Holes retention left are bridged by the
        hashes its receipts recorded; any other hole breaks the chain.

        On a backend that keeps the Merkle tree (:class:`~eventvault.spi.Proving`)
        the same walk regenerates the tree and compares it with the stored one, and
        with every (already signature-checked) checkpoint in ``checkpoints``: see
        :mod:`eventvault.integrity.verifying` for what each check finds."""
        self._check_open()
        return verify_store(self, progress=progress, checkpoints=checkpoints)

    @property
    def log(self) -> AuditLog:
        """The store's transparency log: Merkle roots, inclusion and consistency
        proofs, checkpoints (:class:`~eventvault.integrity.log.AuditLog`)."""
        self._check_open()
        return AuditLog(self)

    # -- retention -------------------------------------------------------------------

    def plan_retention(
        self, policy: Policy | None = None, *, now: datetime | None = None
    ) -> RetentionPlan:
        """What applying ``policy`` (default: :attr:`retention_policy`) at ``now``
        (default: the current time) would remove, per group. Removes nothing."""
        self._check_open()
        retaining = require_retaining(self._backend)
        policy = policy if policy is not None else self.retention_policy
        now = _aware(now)
        head = self.head()
        limit = min(retaining.retention_limit(), head)
        groups = retaining.plan_groups(policy, now, limit) if policy is not None else []
        return RetentionPlan(
            store_id=self.store_id,
            backend=self.backend_name,
            now=now,
            head=head,
            limit=limit,
            policy=policy.describe() if policy is not None else ["Every event is kept forever."],
            groups=groups,
        )

    def apply_retention(
        self,
        plan: RetentionPlan | None = None,
        *,
        policy: Policy | None = None,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
    ) -> RetentionReport:
        """Remove what ``plan`` (default: a fresh plan at ``now``) says, recording it.

        First appends the receipt(s) (``eventvault.retention.applied``) naming every
        run of events that goes and the hash at its end, then removes the runs,
        newest first. Interrupted, it leaves a store that verifies; applying again
        finishes the job. Returns what was done.
        """
        self._check_open()
        started = time.monotonic()
        policy = policy if policy is not None else self.retention_policy
        if plan is None:
            plan = self.plan_retention(policy, now=now)
        elif not isinstance(plan, RetentionPlan):
            raise ValidationError(
                f"apply_retention() takes a RetentionPlan (from plan_retention()), not "
                f"{type(plan).__name__}; to apply a policy, pass it as policy=..."
            )
        elif plan.store_id != self.store_id:
            raise ValidationError("this retention plan was made for another store")
        if plan.count and policy is None:
            raise ValidationError("pass the policy this plan was made with (policy=...)")
        if plan.count == 0 or policy is None:
            return RetentionReport(plan=plan, removed=0, runs=0, receipt_positions=[], seconds=0.0)
        if plan.policy != policy.describe():
            raise ValidationError("this retention plan was made for a different policy")
        return apply_plan(self, plan, policy, progress, started=started)

    def close(self) -> None:
        """Release resources. Safe to call twice."""
        with self._closing:  # two threads closing at once: the backend closes once
            if self._closed:
                return
            self._closed = True
        self._backend.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


guard_public_methods(EventStore)


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValidationError(f"now must be timezone-aware, got naive {now!r}")
    return now.astimezone(UTC)
