"""The hash chain: ``hash_n = sha256(hash_{n-1} || canonical_bytes(event_n))``.

The first event chains to :data:`GENESIS` (32 zero bytes). After retention removes
a prefix, verification starts from the checkpoint hash recorded at the cut.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

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


class BridgeLookup(Protocol):
    """Holes retention left, as receipts recorded them (see :mod:`eventvault.retention_plan`)."""

    def between(self, q: int, s: int) -> tuple[int, str] | None: ...


def verify_chain(
    events: Iterable[RecordedEvent],
    *,
    start: bytes = GENESIS,
    checkpoint: int | None = None,
    bridges: BridgeLookup | None = None,
    receipts: int = 0,
    contiguous: bool = True,
) -> VerifyResult:
    """Walk ``events`` in position order and report the first one whose hash breaks.

    Also checks what the chain alone cannot: positions strictly increase and
    recorded_at never goes backwards. Where retention removed events, the next
    survivor chains to the hash a receipt recorded for the hole (``bridges``); a
    hole no receipt covers breaks the chain. ``contiguous``: the backend numbers
    1, 2, 3…, so a skipped position is a missing event worth naming.
    """
    prev = start
    checked = 0
    bridged = 0
    last_pos = 0
    last_time: datetime | None = None
    for ev in events:
        reason = None
        if ev.position <= last_pos and checked:
            reason = f"position {ev.position} does not follow {last_pos}"
        elif last_time is not None and ev.recorded_at < last_time:
            reason = "recorded_at goes backwards"
        else:
            hole = bridges.between(last_pos, ev.position) if bridges is not None else None
            if hole is not None:
                prev = bytes.fromhex(hole[1])
                bridged += 1
                if not checked:
                    checkpoint = hole[0]
            expect = record_hash(prev, ev)
            if expect.hex() != ev.hash:
                reason = "hash does not match the event's content and its predecessor"
                if hole is None and contiguous and ev.position > last_pos + 1:
                    reason += (
                        f" (positions {last_pos + 1}..{ev.position - 1} are missing and no "
                        "retention receipt accounts for them)"
                    )
            prev = expect
        if reason is not None:
            return VerifyResult(
                ok=False,
                checked=checked,
                head_hash=prev.hex() if checked else None,
                first_bad_position=ev.position,
                reason=reason,
                checkpoint_position=checkpoint,
                bridged=bridged,
                receipts=receipts,
            )
        checked += 1
        last_pos = ev.position
        last_time = ev.recorded_at
    return VerifyResult(
        ok=True,
        checked=checked,
        head_hash=prev.hex() if checked or start != GENESIS else None,
        checkpoint_position=checkpoint,
        bridged=bridged,
        receipts=receipts,
    )
