"""What an event's stored ``hash`` is: the store's *hash format*.

* **Format 2, leaf hashes** (:data:`LEAF`, every new store of a backend that keeps
  the Merkle tree): ``hash_n = SHA-256(0x00 ‖ canonical_bytes(event_n))``, the
  event's RFC 9162 leaf hash. One hash per event: the tree (see :mod:`eventvault.tlog`)
  holds order and completeness — which event sits at which index, and that none is
  missing — so the hash need not chain. ``verify`` finds a changed event by its
  hash, a reordered or inserted one by the tree, a missing one by the gap in
  positions that no retention receipt accounts for.
* **Format 1, the hash chain** (:data:`CHAIN`, stores made before format 2, and
  backends without a tree): ``hash_n = SHA-256(hash_{n-1} ‖ canonical_bytes(event_n))``.
  The first event chains to :data:`GENESIS` (32 zero bytes). After retention removes
  a prefix, verification starts from the checkpoint hash recorded at the cut.

A store's format is fixed when it is made (``Backend.hash_format``); a copy
recomputes hashes in the destination's format.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Protocol

from ..model import RecordedEvent, VerifyResult
from .canonical import canonical_event_bytes

__all__ = [
    "CHAIN",
    "GENESIS",
    "HASH_FORMATS",
    "LEAF",
    "WalkFailure",
    "bridge",
    "event_leaf_hash",
    "record_hash",
    "verify_chain",
]

GENESIS = bytes(32)
#: Hash format 1: each event's hash chains to its predecessor's.
CHAIN = 1
#: Hash format 2: each event's hash is its RFC 9162 leaf hash (the tree orders them).
LEAF = 2
HASH_FORMATS = {CHAIN: "chain", LEAF: "leaf"}


def record_hash(prev: bytes, event: RecordedEvent, hashes: int = CHAIN) -> bytes:
    """Recompute the stored hash of an event from its fields (in format ``hashes``;
    ``prev``, the hash of the event before it, matters in the chain format only)."""
    if hashes == LEAF:
        return hashlib.sha256(b"\x00" + _canonical(event)).digest()
    return hashlib.sha256(prev + _canonical(event)).digest()


class WalkFailure(Exception):
    """Raised by a ``verify_chain`` observer (``on_event``) to stop the walk: another
    check over the same events failed, at ``position`` (None: at the event walked)."""

    def __init__(self, reason: str, position: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position


def event_leaf_hash(event: RecordedEvent) -> bytes:
    """The event's RFC 9162 leaf hash in the store's Merkle tree: ``SHA-256(0x00 ‖
    canonical bytes)`` — the same bytes the chain hash covers (see :mod:`eventvault.tlog`)."""
    return hashlib.sha256(b"\x00" + _canonical(event)).digest()


class HoleWalker(Protocol):
    """Holes retention left, as receipts recorded them (see :mod:`eventvault.integrity.bridges`)."""

    def walked(self, event_hash: str) -> None: ...

    def covers(self, q: int, s: int) -> bool: ...

    def candidates(
        self, q: int, s: int, mark: int | None = None
    ) -> Iterator[tuple[str, int | None]]: ...


def _canonical(event: RecordedEvent) -> bytes:
    return canonical_event_bytes(
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


def bridge(
    walker: HoleWalker, q: int, event: RecordedEvent, mark: int | None = None
) -> tuple[bytes, int | None, str] | None:
    """The link across a hole: which recorded hash ``event`` (after the stored event at
    ``q``) chains to, as (its own hash, the recorded position of the event before it,
    that event's hash)."""
    canon = _canonical(event)
    for prev_hex, where in walker.candidates(q, event.position, mark):
        digest = hashlib.sha256(bytes.fromhex(prev_hex) + canon).digest()
        if digest.hex() == event.hash:
            return digest, where, prev_hex
    return None


def _unaccounted(last: int, position: int) -> str:
    return (
        f"positions {last + 1}..{position - 1} are missing and no retention receipt "
        "accounts for them"
    )


def verify_chain(
    events: Iterable[RecordedEvent],
    *,
    start: bytes = GENESIS,
    checkpoint: int | None = None,
    bridges: HoleWalker | None = None,
    receipts: int = 0,
    contiguous: bool = True,
    on_event: Callable[[RecordedEvent, bytes, bytes | None], None] | None = None,
    hashes: int = CHAIN,
) -> VerifyResult:
    """Walk ``events`` in position order and report the first one whose hash breaks.

    Also checks what the chain alone cannot: positions strictly increase and
    recorded_at never goes backwards. Where retention removed events, an event that
    does not chain to its stored predecessor may chain across the hole to a hash a
    receipt recorded (``bridges``, see :class:`eventvault.integrity.bridges.Bridges`);
    any other hole breaks the chain. ``contiguous``: the backend numbers 1, 2, 3…, so
    a skipped position is a missing event worth naming.

    In the leaf format (``hashes=LEAF``) each hash covers its event alone: a gap in
    positions is then bridged only by receipts that record every position in it as
    removed (:meth:`HoleWalker.covers`), and the order is the Merkle tree's to check.

    ``on_event(event, canonical_bytes, leaf_hash)`` is called for each event whose
    hash checks out, with the bytes the hash was computed from (so another check —
    the Merkle tree's — needs no second encoding) and, in the leaf format, the leaf
    hash just verified (None in the chain format); it stops the walk by raising
    :class:`WalkFailure`, which is reported like a broken hash.
    """
    leaf_format = hashes == LEAF
    prev = start
    checked = 0
    bridged = 0
    last_pos = 0
    last_time: datetime | None = None
    for ev in events:
        reason = None
        bad_at = ev.position
        good = prev  # the last verified event's hash (prev moves on below)
        if ev.position <= last_pos and checked:
            reason = f"position {ev.position} does not follow {last_pos}"
        elif last_time is not None and ev.recorded_at < last_time:
            reason = "recorded_at goes backwards"
        else:
            canon = _canonical(ev)
            gap = contiguous and ev.position > last_pos + 1
            if leaf_format:
                expect = hashlib.sha256(b"\x00" + canon).digest()
                if expect.hex() != ev.hash:
                    reason = "hash does not match the event's content"
                elif gap:
                    if bridges is not None and bridges.covers(last_pos, ev.position):
                        bridged += 1
                        if not checked:
                            checkpoint = ev.position - 1
                    else:
                        reason = _unaccounted(last_pos, ev.position)
            else:
                expect = hashlib.sha256(prev + canon).digest()
                if expect.hex() != ev.hash and bridges is not None:
                    across = bridge(bridges, last_pos, ev)
                    if across is not None:
                        expect = across[0]
                        bridged += 1
                        if not checked:
                            checkpoint = across[1]
                if expect.hex() != ev.hash:
                    reason = "hash does not match the event's content and its predecessor"
                    if gap:
                        reason += f" ({_unaccounted(last_pos, ev.position)})"
            prev = expect
            if reason is None and on_event is not None:
                try:
                    on_event(ev, canon, expect if leaf_format else None)
                except WalkFailure as exc:
                    reason = exc.reason
                    if exc.position is not None and exc.position != ev.position:
                        bad_at = exc.position
        if reason is not None:
            return VerifyResult(
                ok=False,
                checked=checked,
                head_hash=None,  # (a broken chain has no verified head)
                last_good_hash=good.hex() if checked else None,
                first_bad_position=bad_at,
                reason=reason,
                checkpoint_position=checkpoint,
                bridged=bridged,
                receipts=receipts,
            )
        if bridges is not None:
            bridges.walked(ev.hash)
        checked += 1
        last_pos = ev.position
        last_time = ev.recorded_at
    return VerifyResult(
        ok=True,
        checked=checked,
        head_hash=prev.hex() if checked or start != GENESIS else None,
        last_good_hash=prev.hex() if checked or start != GENESIS else None,
        checkpoint_position=checkpoint,
        bridged=bridged,
        receipts=receipts,
    )
