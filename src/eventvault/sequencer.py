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
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from .canonical import CANONICAL_ENCODER, CANONICAL_VERSION
from .errors import DuplicateEventError, ValidationError, WrongExpectedRevisionError
from .model import ExpectedRevision, NewEvent, RecordedEvent, utcnow

__all__ = ["ChainHead", "StampedBatch", "same_content", "stamp_batch"]

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024


@dataclass(slots=True)
class ChainHead:
    """The tip of the log that the next append builds on."""

    position: int  # last position used (0 when empty)
    hash: bytes  # raw hash of the last event (GENESIS when empty)
    recorded_at: datetime | None  # recorded_at of the last event


@dataclass(slots=True)
class StampedBatch:
    new: list[RecordedEvent]  # to be written, in position order
    results: list[RecordedEvent]  # one per input event, in input order
    head: ChainHead  # the head after writing ``new``


def same_content(new: NewEvent, old: RecordedEvent) -> bool:
    """Whether a re-sent event is the one already stored (idempotent retry)."""
    return (
        new.type == old.type
        and new.stream == old.stream
        and new.actor == old.actor
        and new.correlation_id == old.correlation_id
        and new.causation_id == old.causation_id
        and new.source == old.source
        and new.occurred_at == old.occurred_at
        and new.data == old.data
        and new.metadata == old.metadata
    )


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
    find_many: Callable[[Sequence[NewEvent]], Sequence[int]] | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    now: datetime | None = None,
) -> StampedBatch:
    """Decide what appending ``batch`` writes. Raises before anything is decided to write.

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
        return StampedBatch(new=[], results=[existing[i] for i in range(len(batch))], head=head)

    if expected is not ExpectedRevision.ANY:
        stream = batch[0].stream
        check_revision(stream, expected, revision_of(stream))

    stamp = now if now is not None else utcnow()
    if head.recorded_at is not None and stamp < head.recorded_at:
        stamp = head.recorded_at
    revisions: dict[str, int] = {}
    position = head.position
    prev = head.hash
    new: list[RecordedEvent] = []
    results: list[RecordedEvent] = []
    # Hot loop (a batch of 1000 spends most of its append time here): locals only.
    sha256 = hashlib.sha256
    encode = CANONICAL_ENCODER.encode
    record = RecordedEvent
    get_rev = revisions.get
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
        prev = sha256(prev + canon).digest()
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
        new=new, results=results, head=ChainHead(position=position, hash=prev, recorded_at=stamp)
    )
