"""The EventStoreDB / KurrentDB backend, through the official ``kurrentdbclient``.

One hash chain needs one global order *and* a compare-and-set on its head, and
EventStoreDB (before 25.1) has no transaction spanning two streams. So every
eventvault event is appended to **one log stream** (``log_stream``, default
``eventvault``) with ``current_version`` = the revision this process last saw:
the server's optimistic concurrency is the chain head's compare-and-set. Another
writer got in first? Catch up, re-stamp, retry.

Mapping: the EventStoreDB event id is the eventvault id (so the server's own
idempotency applies too); its type is the eventvault type; ``data`` is the JSON
payload; the custom metadata holds the eventvault stream and revision, actor,
``$correlationId``, ``$causationId``, source, occurred_at, recorded_at, the
user's metadata and the chain hash. ``position`` is the ``$all`` commit position:
increasing, never contiguous.

This first version keeps, in memory, the position, time and id of every log event
(read once on open, then caught up incrementally): reads bisect that to a log
revision and scan forwards or backwards from there, applying filters on the
client. Costs: opening reads the whole log; a filter that matches little scans
far. The live tail waits on a ``subscribe_to_all`` filtered (server-side) to the
log stream. Server-side read filters, the by-correlation projection and retention
are not done yet (``plan_retention`` raises :class:`NotSupportedError`).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

import msgspec

from ...errors import (
    ConfigError,
    MissingExtraError,
    StoreUnavailableError,
)
from ...model import ExpectedRevision, NewEvent, Query, RecordedEvent, StoreStats
from ...spi import (
    DEFAULT_MAX_EVENT_BYTES,
    GENESIS,
    Backend,
    ChainHead,
    Import,
    Importing,
    Proving,
    Results,
    Retaining,
    StampedBatch,
    stamp_batch,
    stamp_import,
)
from ...store import EventStore
from ...timeutil import to_us
from .config import EventStoreDBConfig

try:
    import kurrentdbclient as kdb
    from kurrentdbclient.exceptions import (
        KurrentDBClientError,
        NotFoundError,
        WrongCurrentVersionError,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("eventstoredb", exc.name or "kurrentdbclient") from exc

__all__ = ["EventStoreDBBackend", "EventStoreDBEventStore"]


def _client_error(exc: KurrentDBClientError, action: str, uri: str) -> StoreUnavailableError:
    """The one place client errors become eventvault errors."""
    return StoreUnavailableError(f"{action} (EventStoreDB at {uri}): {type(exc).__name__}: {exc}")


log = logging.getLogger("eventvault.eventstoredb")

_PAGE = 500


class _Meta(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What an EventStoreDB event's custom metadata carries for eventvault."""

    v: int = 1
    stream: str
    revision: int
    recorded_at: datetime
    occurred_at: datetime
    hash: str
    actor: str | None = None
    correlation_id: str | None = msgspec.field(default=None, name="$correlationId")
    causation_id: str | None = msgspec.field(default=None, name="$causationId")
    source: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


_encode = msgspec.json.Encoder().encode
_decode_meta = msgspec.json.Decoder(_Meta).decode
_decode_data = msgspec.json.Decoder(dict[str, Any]).decode


class EventStoreDBBackend(Backend, Importing):
    """Events in one EventStoreDB / KurrentDB stream. Thread-safe.

    Not :class:`~eventvault.spi.Retaining` yet: events live in one log stream, and
    EventStoreDB can only truncate a stream's prefix ($tb), which cannot skip the
    receipts it must keep."""

    name = "eventstoredb"
    lacks: ClassVar[Mapping[type, str]] = {
        Retaining: "yet",
        # Its positions are the server's commit offsets, not 1, 2, 3…, and nothing but
        # events can be written next to them atomically: a tree kept in another stream
        # could lag or diverge without the store noticing.
        Proving: (
            "(its positions are the server's commit offsets and it cannot write a tree "
            "atomically with the events): copy the events into a file or PostgreSQL "
            "store (`eventvault copy`) to prove them; the hash chain still covers them"
        ),
    }
    contiguous_positions = False  # commit positions are byte offsets

    def __init__(
        self,
        uri: str,
        *,
        log_stream: str = "eventvault",
        timeout: float = 10.0,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self._closed = False
        self.uri = uri
        self.log_stream = log_stream
        self._meta_stream = f"{log_stream}.meta"
        self._timeout = timeout
        self._lock = threading.RLock()
        self._positions: list[int] = []  # log revision -> commit position
        self._times: list[int] = []  # log revision -> recorded_at (µs)
        self._ids: dict[int, int] = {}  # UUID.int -> log revision
        self._revisions: dict[str, int] = {}
        self._head = ChainHead(position=0, hash=GENESIS, recorded_at=None)
        self._notified = threading.Condition()
        self._listener: threading.Thread | None = None
        self._subscription: Any = None
        try:
            self._client = kdb.KurrentDBClient(uri)
        except (KurrentDBClientError, ValueError) as exc:
            raise StoreUnavailableError(f"connecting to EventStoreDB ({uri}): {exc}") from exc
        try:
            self._store_id = self._load_store_id()
            with self._lock:
                self._catch_up()
        except BaseException:
            self._client.close()
            raise

    # -- state ---------------------------------------------------------------------

    def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, timeout=self._timeout, **kwargs)
        except (NotFoundError, WrongCurrentVersionError):
            raise
        except KurrentDBClientError as exc:
            raise _client_error(exc, action, self.uri) from exc

    def translate_error(self, exc: Exception, action: str) -> StoreUnavailableError | None:
        if isinstance(exc, KurrentDBClientError):
            return _client_error(exc, action, self.uri)
        return None

    def _load_store_id(self) -> str:
        for _ in range(3):
            try:
                found = self._call(
                    "reading the store id", self._client.get_stream, self._meta_stream, limit=1
                )
                return str(msgspec.json.decode(found[0].data)["store_id"])
            except NotFoundError:
                pass
            new = {"store_id": str(uuid.uuid4())}
            try:
                self._call(
                    "creating the store",
                    self._client.append_to_stream,
                    self._meta_stream,
                    events=kdb.NewEvent(type="eventvault.store", data=_encode(new)),
                    current_version=kdb.StreamState.NO_STREAM,
                )
            except WrongCurrentVersionError:
                continue  # another process created it first: read theirs
            return new["store_id"]
        raise StoreUnavailableError("could not read or create the store id")  # pragma: no cover

    def _read_log(
        self, start: int, *, backwards: bool = False, limit: int = _PAGE
    ) -> tuple[Any, ...]:
        try:
            return tuple(
                self._call(
                    "reading",
                    self._client.get_stream,
                    self.log_stream,
                    stream_position=start,
                    backwards=backwards,
                    limit=limit,
                )
            )
        except NotFoundError:
            return ()

    def _catch_up(self) -> None:
        """Learn what was appended to the log since we last looked (hold ``_lock``)."""
        while True:
            events = self._read_log(len(self._positions), limit=5000)
            for ev in events:
                meta = _decode_meta(ev.metadata)
                self._ids[ev.id.int] = len(self._positions)
                self._positions.append(ev.commit_position)
                self._times.append(to_us(meta.recorded_at))
                self._revisions[meta.stream] = meta.revision
                self._head = ChainHead(
                    position=ev.commit_position,
                    hash=bytes.fromhex(meta.hash),
                    recorded_at=meta.recorded_at,
                )
            if len(events) < 5000:
                return

    @staticmethod
    def _record(ev: Any) -> RecordedEvent:
        meta = _decode_meta(ev.metadata)
        return RecordedEvent(
            position=ev.commit_position,
            stream_revision=meta.revision,
            recorded_at=meta.recorded_at,
            id=ev.id,
            type=ev.type,
            stream=meta.stream,
            actor=meta.actor,
            correlation_id=meta.correlation_id,
            causation_id=meta.causation_id,
            source=meta.source,
            occurred_at=meta.occurred_at,
            data=_decode_data(ev.data),
            metadata=meta.metadata,
            hash=meta.hash,
        )

    @staticmethod
    def _new_event(rec: RecordedEvent) -> Any:
        meta = _Meta(
            stream=rec.stream,
            revision=rec.stream_revision,
            recorded_at=rec.recorded_at,
            occurred_at=rec.occurred_at,
            hash=rec.hash,
            actor=rec.actor,
            correlation_id=rec.correlation_id,
            causation_id=rec.causation_id,
            source=rec.source,
            metadata=rec.metadata,
        )
        return kdb.NewEvent(
            type=rec.type, data=_encode(rec.data), metadata=_encode(meta), id=rec.id
        )

    # -- the interface -----------------------------------------------------------------

    @property
    def store_id(self) -> str:
        return self._store_id

    def _find(self, event_id: UUID) -> RecordedEvent | None:
        rev = self._ids.get(event_id.int)
        if rev is None:
            return None
        found = self._read_log(rev, limit=1)
        return self._record(found[0]) if found else None

    def commit(
        self, batch: list[NewEvent], expected: int | ExpectedRevision
    ) -> list[RecordedEvent]:
        return self._append_stamped(
            lambda: stamp_batch(
                batch,
                expected,
                self._head,
                revision_of=self._revisions.get,
                find=self._find,
                max_event_bytes=self.max_event_bytes,
            )
        )

    def import_records(self, imp: Import) -> list[RecordedEvent]:
        return self._append_stamped(
            lambda: stamp_import(imp, self._head, revision_of=self._revisions.get, find=self._find)
        )

    def _append_stamped(self, stamp: Callable[[], StampedBatch]) -> list[RecordedEvent]:
        """Append what ``stamp()`` decides on top of the log we know, with the log's
        current version as the compare-and-set; re-stamp if another writer moved it."""
        with self._lock:
            for _attempt in range(50):
                self._catch_up()
                stamped = stamp()
                if not stamped.new:
                    return stamped.results
                before = len(self._positions)
                try:
                    self._call(
                        "appending",
                        self._client.append_to_stream,
                        self.log_stream,
                        events=[self._new_event(r) for r in stamped.new],
                        current_version=before - 1 if before else kdb.StreamState.NO_STREAM,
                    )
                except WrongCurrentVersionError:
                    continue  # another writer moved the head: re-stamp on top of it
                self._catch_up()
                real = {r.id.int: self._positions[before + k] for k, r in enumerate(stamped.new)}
                return Results(
                    [
                        msgspec.structs.replace(r, position=real[r.id.int])
                        if r.id.int in real
                        else r
                        for r in stamped.results
                    ],
                    len(stamped.new),
                )
        raise StoreUnavailableError("appending: the log kept moving under us (50 attempts)")

    def read(self, query: Query, limit: int) -> list[RecordedEvent]:
        with self._lock:
            self._catch_up()
            positions = self._positions
            times = self._times
            lo = 0 if query.after is None else bisect.bisect_right(positions, query.after)
            hi = (
                len(positions)
                if query.before is None
                else bisect.bisect_left(positions, query.before)
            )
            if query.since is not None:
                lo = max(lo, bisect.bisect_left(times, to_us(query.since), lo, hi))
            if query.until is not None:
                hi = min(hi, bisect.bisect_left(times, to_us(query.until), lo, hi))
        out: list[RecordedEvent] = []
        if lo >= hi:
            return out
        if query.types:
            return self._read_by_type(query, limit, positions[lo], positions[hi - 1])
        # Scan log revisions [lo, hi) in the query's direction, a page at a time.
        step = -1 if query.reverse else 1
        at = hi - 1 if query.reverse else lo
        while lo <= at < hi and len(out) < limit:
            room = at - lo + 1 if query.reverse else hi - at
            page = self._read_log(at, backwards=query.reverse, limit=min(_PAGE, room))
            if not page:
                break
            for ev in page:
                rec = self._record(ev)
                if query.matches(rec):
                    out.append(rec)
                    if len(out) >= limit:
                        break
            at += step * len(page)
        return out

    def _read_by_type(self, query: Query, limit: int, first: int, last: int) -> list[RecordedEvent]:
        """Types filtered by the server (``read_all`` with an event-type regex) between
        commit positions ``first`` and ``last``; the rest of the query on our side."""
        alternatives = [
            re.escape(t[:-1]) + ".*" if t.endswith("*") else re.escape(t) for t in query.types
        ]
        pattern = "(?:" + "|".join(alternatives) + ")"  # the client anchors it: ^(...)$
        out: list[RecordedEvent] = []
        at = last if query.reverse else first
        seen: int | None = None  # reads start inclusively: a page repeats its start
        while True:
            page = tuple(
                self._call(
                    "reading",
                    self._client.read_all,
                    commit_position=at,
                    backwards=query.reverse,
                    filter_include=[pattern],
                    filter_by_stream_name=False,
                    limit=_PAGE,
                )
            )
            for ev in page:
                if ev.commit_position == seen:
                    continue
                if not first <= ev.commit_position <= last:
                    return out
                if ev.stream_name != self.log_stream:
                    continue  # the same type, in someone else's stream
                rec = self._record(ev)
                if query.matches(rec):
                    out.append(rec)
                    if len(out) >= limit:
                        return out
            if len(page) < _PAGE:
                return out
            seen = at = page[-1].commit_position

    def get(self, event_id: UUID) -> RecordedEvent | None:
        with self._lock:
            self._catch_up()
            return self._find(event_id)

    def head(self) -> int:
        with self._lock:
            if not self._closed:
                self._catch_up()
            return self._head.position

    def stats(self) -> StoreStats:
        with self._lock:
            self._catch_up()
            n = len(self._positions)
            first = self._read_log(0, limit=1) if n else ()
            return StoreStats(
                backend=self.name,
                events=n,
                head_position=self._head.position,
                first_position=self._positions[0] if n else None,
                streams=len(self._revisions),
                oldest_recorded_at=self._record(first[0]).recorded_at if first else None,
                newest_recorded_at=self._head.recorded_at,
                size_bytes=None,
                details={"uri": self.uri, "log_stream": self.log_stream},
            )

    def _listen(self) -> None:
        """Wake waiting subscribers whenever the log grows: a ``subscribe_to_all``
        filtered server-side to the log stream, resubscribed after a failure."""
        while not self._closed:
            try:
                sub = self._client.subscribe_to_all(
                    from_end=True,
                    filter_include=[re.escape(self.log_stream)],
                    filter_exclude=(),
                    filter_by_stream_name=True,
                )
                self._subscription = sub
                for _event in sub:
                    with self._notified:
                        self._notified.notify_all()
            except Exception as exc:
                if self._closed:
                    return
                log.info("live-tail subscription restarting after: %s", exc)
                time.sleep(0.5)

    def wait(self, head: int, timeout: float) -> None:
        if self._listener is None:
            with self._notified:
                if self._listener is None:
                    self._listener = threading.Thread(
                        target=self._listen, name="eventvault-esdb-listen", daemon=True
                    )
                    self._listener.start()
        with self._notified:
            if self.head() <= head and not self._closed:
                # A missed wake-up only delays delivery by ``timeout``: the caller
                # re-reads the log, which is the source of truth.
                self._notified.wait(timeout)

    def close(self) -> None:
        with self._notified:
            self._closed = True
            self._notified.notify_all()
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                self._subscription.stop()
        self._client.close()
        if self._listener is not None:
            self._listener.join(timeout=2)


class EventStoreDBEventStore(EventStore):
    """An :class:`~eventvault.EventStore` over an :class:`EventStoreDBBackend`
    (arguments: those of :class:`EventStoreDBBackend`)."""

    def __init__(
        self,
        uri: str,
        *,
        log_stream: str = "eventvault",
        timeout: float = 10.0,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        super().__init__(
            EventStoreDBBackend(
                uri, log_stream=log_stream, timeout=timeout, max_event_bytes=max_event_bytes
            )
        )

    @property
    def backend(self) -> EventStoreDBBackend:
        backend = self._backend
        assert isinstance(backend, EventStoreDBBackend)
        return backend

    @property
    def uri(self) -> str:
        return self.backend.uri

    @property
    def log_stream(self) -> str:
        return self.backend.log_stream


def from_config(config: Any) -> EventStoreDBEventStore:
    from ...timeutil import parse_duration

    esdb = config.store.options(EventStoreDBConfig)
    timeout = parse_duration(esdb.timeout).total_seconds()  # (validated at load)
    if esdb.use_correlation_projection:
        raise ConfigError(
            "store.eventstoredb.use_correlation_projection: not supported yet; correlation "
            "ids are filtered by eventvault itself (set it to false)"
        )
    return EventStoreDBEventStore(
        esdb.uri,
        log_stream=esdb.log_stream,
        timeout=timeout,
        max_event_bytes=config.store.max_event_bytes,
    )
