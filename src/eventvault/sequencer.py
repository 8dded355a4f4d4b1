"""Turning a validated batch into recorded events: the one place that decides
idempotency, expected revisions, positions, revisions, timestamps and hashes.

Backends that assign positions themselves (memory, file) call :func:`stamp_batch`
while holding their writer lock, so every backend shares one definition of these
rules. The function is pure: it reads state through callbacks and returns what to
write; the caller writes all of it or none of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import msgspec

from .errors import (
    DuplicateEventError,
    EventVaultError,
    ValidationError,
    WrongExpectedRevisionError,
)
from .groupcommit import Request
from .integrity.canonical import CANONICAL_ENCODER, CANONICAL_VERSION, payload_bytes, same_payload
from .integrity.chain import CHAIN, LEAF, event_leaf_hash, record_hash
from .model import ExpectedRevision, Import, NewEvent, RecordedEvent, utcnow

#: What id lookups take: new events or recorded ones (both have ``.id``).
Keyed = NewEvent | RecordedEvent

__all__ = [
    "ChainHead",
    "Import",
    "Results",
    "StampedBatch",
    "StampedGroup",
    "client_clock",
    "same_content",
    "stamp_batch",
    "stamp_group",
]

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024


@dataclass(slots=True)
class ChainHead:
    """The tip of the log that the next append builds on."""

    position: int  # last position used (0 when empty)
    hash: bytes  # raw hash of the last event (GENESIS when empty)
    recorded_at: datetime | None  # recorded_at of the last event


class Results(list[RecordedEvent]):
    """One record per input event, in input order — and how many of them this append
    writes (``written``); the others were stored already (idempotent retries).

    A list, so backends pass it through unchanged to :meth:`EventStore.append`,
    which reports ``written`` in the :class:`~eventvault.model.AppendResult`."""

    __slots__ = ("written",)

    def __init__(self, records: Sequence[RecordedEvent] = (), written: int = 0) -> None:
        super().__init__(records)
        self.written = written


@dataclass(slots=True)
class StampedBatch:
    new: list[RecordedEvent]  # to be written, in position order
    results: list[RecordedEvent]  # one per input event, in input order (a Results)
    head: ChainHead  # the head after writing ``new``
    #: The RFC 9162 leaf hash of each of ``new`` (``SHA-256(0x00 ‖ canonical
    #: bytes)``), computed from the same bytes as the chain hash: what a backend
    #: keeping the Merkle tree appends (see :class:`eventvault.spi.Proving`).
    leaves: list[bytes] = field(default_factory=list)


def client_clock() -> datetime:
    """This process's clock, as stamping reads it when given no ``now`` (one place,
    so a test can skew it)."""
    return utcnow()


def same_content(new: NewEvent, old: RecordedEvent) -> bool:
    """Whether a re-sent event is the one already stored (idempotent retry). An
    ``occurred_at`` the producer left to the default matches any: a retry (say, an
    HTTP client re-sending a body without one) has no time of its own to compare."""
    return (
        new.type == old.type
        and new.stream == old.stream
        and new.actor == old.actor
        and new.correlation_id == old.correlation_id
        and new.causation_id == old.causation_id
        and new.source == old.source
        and (new.occurred_at == old.occurred_at or "occurred_defaulted" in new.__dict__)
        # What the chain covers, not Python values (JSONB turns 1e23 into an int).
        and _frozen(new, 0) == payload_bytes(old.data)
        and _frozen(new, 1) == payload_bytes(old.metadata, "metadata")
    )


def _frozen(new: NewEvent, which: int) -> bytes:
    """The canonical bytes of ``new``'s data (0) or metadata (1), frozen at validation."""
    return bytes(new.__dict__["canonical"][which])


def check_revision(stream: str, expected: int | ExpectedRevision, current: int | None) -> None:
    """Raise :class:`WrongExpectedRevisionError` unless ``current`` satisfies ``expected``."""
    if expected is ExpectedRevision.ANY:
        return
    if expected is ExpectedRevision.NO_STREAM:
        ok = current is None
    elif expected is ExpectedRevision.STREAM_EXISTS:
        ok = current is not None
    else:
        ok = current == expected
    if not ok:
        raise WrongExpectedRevisionError(stream, expected, current)


def stamp_batch(
    batch: Sequence[NewEvent],
    expected: int | ExpectedRevision,
    head: ChainHead,
    *,
    revision_of: Callable[[str], int | None],
    find: Callable[[UUID], RecordedEvent | None],
    find_many: Callable[[Sequence[Keyed]], Sequence[int]] | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    now: datetime | None = None,
    hashes: int = CHAIN,
) -> StampedBatch:
    """Decide what appending ``batch`` writes. Raises before anything is decided to write.

    ``hashes``: the store's hash format (:mod:`eventvault.integrity.chain`): in the
    leaf format each event's stored hash *is* its tree leaf — one hash per event.

    * Ids already stored with the same content are returned as stored (nothing is
      written for them); with other content they raise :class:`DuplicateEventError`.
    * When *every* event is already stored the batch is a retry of a batch that
      succeeded, so ``expected`` is not checked again.
    * ``recorded_at`` never goes backwards, even if the wall clock does.

    ``find_many(batch)``, when given, returns the indexes of events whose id *may*
    be stored (a cheap pre-filter); ``find`` then decides for those only.
    """
    existing: dict[int, RecordedEvent] = {}
    # ``find_many`` (optional) narrows the batch to the indexes that may be stored.
    maybe = range(len(batch)) if find_many is None else find_many(batch)
    for i in maybe:
        ev = batch[i]
        old = find(ev.id)
        if old is not None:
            if not same_content(ev, old):
                raise DuplicateEventError(ev.id, old.position)
            existing[i] = old
    if len(existing) == len(batch):
        retried = Results([existing[i] for i in range(len(batch))])
        return StampedBatch(new=[], results=retried, head=head)

    if expected is not ExpectedRevision.ANY:
        stream = batch[0].stream
        check_revision(stream, expected, revision_of(stream))

    stamp = now if now is not None else client_clock()
    if head.recorded_at is not None and stamp < head.recorded_at:
        stamp = head.recorded_at
    revisions: dict[str, int] = {}
    position = head.position
    prev = head.hash
    new: list[RecordedEvent] = []
    results: list[RecordedEvent] = []
    leaves: list[bytes] = []
    # Hot loop (a batch of 1000 spends most of its append time here): locals only.
    sha256 = hashlib.sha256
    encode = CANONICAL_ENCODER.encode
    record = RecordedEvent
    get_rev = revisions.get
    leaf_format = hashes == LEAF
    for i, ev in enumerate(batch):
        if existing:
            old = existing.get(i)
            if old is not None:
                results.append(old)
                continue
        stream = ev.stream
        rev = get_rev(stream)
        if rev is None:
            current = revision_of(stream)
            rev = 0 if current is None else current + 1
        else:
            rev += 1
        revisions[stream] = rev
        position += 1
        cdata, cmeta = ev.__dict__["canonical"]
        # The layout of canonical.canonical_event_bytes_checked, inlined (a call per
        # event costs ~5% of a batch). verify() recomputes every hash through the
        # canonical module, so the conformance suite catches any drift between them.
        canon = encode(
            [
                CANONICAL_VERSION,
                ev.id,
                ev.type,
                stream,
                rev,
                ev.actor,
                ev.correlation_id,
                ev.causation_id,
                ev.source,
                ev.occurred_at,
                stamp,
                cdata,
                cmeta,
            ]
        )
        if len(canon) > max_event_bytes:
            raise ValidationError(
                f"event {i} ({ev.type}) is {len(canon)} bytes; the limit is {max_event_bytes} "
                "(store.max_event_bytes)"
            )
        if leaf_format:
            prev = sha256(b"\x00" + canon).digest()
            leaves.append(prev)
        else:
            prev = sha256(prev + canon).digest()
            leaves.append(sha256(b"\x00" + canon).digest())
        rec = record(
            position=position,
            stream_revision=rev,
            recorded_at=stamp,
            id=ev.id,
            type=ev.type,
            stream=stream,
            actor=ev.actor,
            correlation_id=ev.correlation_id,
            causation_id=ev.causation_id,
            source=ev.source,
            occurred_at=ev.occurred_at,
            data=ev.data,
            metadata=ev.metadata,
            hash=prev.hex(),
        )
        new.append(rec)
        results.append(rec)
    return StampedBatch(
        new=new,
        results=Results(results, len(new)),
        head=ChainHead(position=position, hash=prev, recorded_at=stamp),
        leaves=leaves,
    )


def stamp_import(
    imp: Import,
    head: ChainHead,
    *,
    revision_of: Callable[[str], int | None],
    find: Callable[[UUID], RecordedEvent | None],
    find_many: Callable[[Sequence[Keyed]], Sequence[int]] | None = None,
    hashes: int = CHAIN,
) -> StampedBatch:
    """Decide what importing ``imp`` writes. Raises before anything is decided to write.

    An id already stored with the same hash (or, when rechaining, the same content)
    was imported before: it is returned as stored, so re-running an interrupted copy
    never duplicates. Imports must keep each stream's revisions increasing and
    ``recorded_at`` non-decreasing on top of what the destination holds.

    A leaf-format destination (``hashes=LEAF``) always computes each event's hash
    from its content: the hash a source stored is never taken on trust, and in the
    other format it would be another number altogether.
    """
    records = imp.records
    leaf_format = hashes == LEAF
    rechain = imp.rechain or leaf_format
    existing: dict[int, RecordedEvent] = {}
    maybe = range(len(records)) if find_many is None else find_many(records)
    for i in maybe:
        rec = records[i]
        old = find(rec.id)
        if old is not None:
            if not _same_record(rec, old) or (not rechain and old.hash != rec.hash):
                raise DuplicateEventError(rec.id, old.position)
            existing[i] = old
    position = head.position
    prev = head.hash
    last_time = head.recorded_at
    revisions: dict[str, int] = {}
    new: list[RecordedEvent] = []
    results: list[RecordedEvent] = []
    leaves: list[bytes] = []
    # Hot loop (a copy runs every event through it): locals only.
    replace = msgspec.structs.replace
    get_rev = revisions.get
    last_digest = prev.hex()
    for i, rec in enumerate(records):
        if existing:
            old = existing.get(i)
            if old is not None:
                results.append(old)
                continue
        stream = rec.stream
        current = get_rev(stream)
        if current is None:
            current = revision_of(stream)
        if current is not None and rec.stream_revision <= current:
            raise ValidationError(
                f"cannot import event {rec.id}: stream {stream!r} is at revision "
                f"{current} here, the event has revision {rec.stream_revision} (is this "
                "destination a copy of another store?)"
            )
        when = rec.recorded_at
        if last_time is not None and when < last_time:
            raise ValidationError(
                f"cannot import event {rec.id}: recorded_at {when.isoformat()} is "
                f"before the destination's newest event ({last_time.isoformat()})"
            )
        position += 1
        if leaf_format:
            prev = event_leaf_hash(rec)
            last_digest = prev.hex()
            leaves.append(prev)
        else:
            if rechain:
                prev = record_hash(prev, rec)
                last_digest = prev.hex()
            else:
                last_digest = rec.hash
            leaves.append(event_leaf_hash(rec))
        out = replace(rec, position=position, hash=last_digest)
        revisions[stream] = rec.stream_revision
        last_time = when
        new.append(out)
        results.append(out)
    if new and not rechain:
        prev = bytes.fromhex(last_digest)
    return StampedBatch(
        new=new,
        results=Results(results, len(new)),
        head=ChainHead(position=position, hash=prev, recorded_at=last_time),
        leaves=leaves,
    )


def _same_record(a: RecordedEvent, b: RecordedEvent) -> bool:
    """Same event, ignoring where it sits (position) and its chain hash; payloads
    compared as the chain covers them (see :func:`eventvault.integrity.canonical.same_payload`)."""
    replace = msgspec.structs.replace
    return (
        replace(a, position=0, hash="", data={}, metadata={})
        == replace(b, position=0, hash="", data={}, metadata={})
        and same_payload(a.data, b.data)
        and same_payload(a.metadata, b.metadata)
    )


@dataclass(slots=True)
class StampedGroup:
    """The outcome of stamping a group-commit group, request by request."""

    outcomes: list[tuple[Request, StampedBatch | EventVaultError]]
    head: ChainHead  # the head after every successful request
    new: list[RecordedEvent]  # everything to write, in position order
    revisions: dict[str, int]  # last revision of every stream the group writes
    leaves: list[bytes] = field(default_factory=list)  # the leaf hash of each of ``new``

    @property
    def failed(self) -> bool:
        return any(isinstance(o, EventVaultError) for _, o in self.outcomes)

    def settle(self) -> list[tuple[Request, list[RecordedEvent]]]:
        """Give each request its results or its error; return what each writes."""
        chunks = []
        for req, outcome in self.outcomes:
            if isinstance(outcome, EventVaultError):
                req.error = outcome
            else:
                req.results = outcome.results
                if outcome.new:
                    chunks.append((req, outcome.new))
        return chunks


def stamp_group(
    group: Sequence[Request],
    head: ChainHead,
    *,
    revision_of: Callable[[str], int | None],
    find: Callable[[UUID], RecordedEvent | None],
    find_many: Callable[[Sequence[Keyed], AbstractSet[int]], Sequence[int]] | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    now: datetime | None = None,
    hashes: int = CHAIN,
) -> StampedGroup:
    """Stamp every request of a group in turn, each on top of the ones before it.

    A later request must see the ids and stream revisions of earlier ones in the
    same group (they are not stored yet), so lookups go through an overlay first.
    A failing request fails alone and leaves the head where it was. ``find_many``,
    if given, also receives the ids the group has stamped so far.
    """
    new_ids: dict[int, RecordedEvent] = {}  # UUID.int: UUID.__hash__ is Python code
    new_revs: dict[str, int] = {}

    def overlay_revision(stream: str) -> int | None:
        rev = new_revs.get(stream)
        return rev if rev is not None else revision_of(stream)

    def overlay_find(event_id: UUID) -> RecordedEvent | None:
        rec = new_ids.get(event_id.int)
        return rec if rec is not None else find(event_id)

    def overlay_find_many(batch: Sequence[Keyed]) -> Sequence[int]:
        assert find_many is not None
        return find_many(batch, new_ids.keys())

    outcomes: list[tuple[Request, StampedBatch | EventVaultError]] = []
    new: list[RecordedEvent] = []
    leaves: list[bytes] = []
    for req in group:
        try:
            if req.imported is not None:
                stamped = stamp_import(
                    req.imported,
                    head,
                    revision_of=overlay_revision,
                    find=overlay_find,
                    find_many=overlay_find_many if find_many is not None else None,
                    hashes=hashes,
                )
            else:
                stamped = stamp_batch(
                    req.batch,
                    req.expected,
                    head,
                    revision_of=overlay_revision,
                    find=overlay_find,
                    find_many=overlay_find_many if find_many is not None else None,
                    max_event_bytes=max_event_bytes,
                    now=now,
                    hashes=hashes,
                )
        except EventVaultError as exc:
            outcomes.append((req, exc))
            continue
        outcomes.append((req, stamped))
        head = stamped.head
        for rec in stamped.new:
            new_ids[rec.id.int] = rec
            new_revs[rec.stream] = rec.stream_revision
        new.extend(stamped.new)
        leaves.extend(stamped.leaves)
    return StampedGroup(outcomes=outcomes, head=head, new=new, revisions=new_revs, leaves=leaves)
