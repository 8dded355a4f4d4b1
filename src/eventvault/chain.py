"""The hash chain: ``hash_n = sha256(hash_{n-1} || canonical_bytes(event_n))``.

The first event chains to :data:`GENESIS` (32 zero bytes). After retention removes
a prefix, verification starts from the checkpoint hash recorded at the cut.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from .canonical import canonical_event_bytes
from .model import RecordedEvent, VerifyResult

__all__ = ["GENESIS", "record_hash", "verify_chain"]

GENESIS = bytes(32)


def record_hash(prev: bytes, event: RecordedEvent) -> bytes:
    """Recompute the chain hash of a stored event from its fields."""
    h = hashlib.sha256(prev)
    h.update(
        canonical_event_bytes(
            id=event.id,
            type=event.type,
            stream=event.stream,
            stream_revision=event.stream_revision,
            actor=event.actor,
            correlation_id=event.correlation_id,
            causation_id=event.causation_id,
            source=event.source,
            occurred_at=event.occurred_at,
            recorded_at=event.recorded_at,
            data=event.data,
            metadata=event.metadata,
        )
    )
    return h.digest()


def verify_chain(
    events: Iterable[RecordedEvent], *, start: bytes = GENESIS, checkpoint: int | None = None
) -> VerifyResult:
    """Walk ``events`` in position order and report the first one whose hash breaks.

    Also checks what the chain alone cannot: positions strictly increase and
    recorded_at never goes backwards.
    """
    prev = start
    checked = 0
    last_pos = -1
    last_time: datetime | None = None
    for ev in events:
        reason = None
        if ev.position <= last_pos:
            reason = f"position {ev.position} does not follow {last_pos}"
        elif last_time is not None and ev.recorded_at < last_time:
            reason = "recorded_at goes backwards"
        else:
            expect = record_hash(prev, ev)
            if expect.hex() != ev.hash:
                reason = "hash does not match the event's content and its predecessor"
            prev = expect
        if reason is not None:
            return VerifyResult(
                ok=False,
                checked=checked,
                head_hash=prev.hex() if checked else None,
                first_bad_position=ev.position,
                reason=reason,
                checkpoint_position=checkpoint,
            )
        checked += 1
        last_pos = ev.position
        last_time = ev.recorded_at
    return VerifyResult(
        ok=True,
        checked=checked,
        head_hash=prev.hex() if checked or start != GENESIS else None,
        checkpoint_position=checkpoint,
    )
