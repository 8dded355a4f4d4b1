"""Offline audit bundles: selected events, their inclusion proofs and the signed
checkpoint they prove against, in one file an auditor checks with no access to the
store (``eventvault export --bundle``, ``eventvault verify-bundle``).

The format (version 1) is one JSON document (UTF-8)::

    {"format": "eventvault-bundle",
     "version": 1,
     "checkpoint": "<C2SP signed note: the tlog-checkpoint the proofs are against>",
     "events": [
       {"event": {<the event, as `eventvault export` and the HTTP API write it>},
        "proof": {"leaf_index": ..., "tree_size": ..., "leaf_hash": "<hex>",
                  "audit_path": ["<hex>", ...], "root_hash": "<hex>"}},
       ...]}

Checking one (:func:`verify_bundle`) trusts nothing in the file but its JSON: the
checkpoint's signature must be by a key the auditor gives; each event's leaf hash is
*recomputed* from its fields (``SHA-256(0x00 ‖ canonical bytes)``, the store's own
definition) — the ``leaf_hash`` written in the proof is only compared — and its
audit path must lead from that leaf to the signed root, at the signed size. A
changed event, a swapped proof, a changed checkpoint or another key's signature
each fail, naming the first event (or the checkpoint) that does not hold.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import msgspec

from ..errors import CorruptionError, StoreUnavailableError, ValidationError
from ..model import MAX_LIMIT, Query, RecordedEvent
from ..tlog.checkpoint import Checkpoint
from ..tlog.note import NoteError, NoteVerifier, UnverifiedNoteError, open_note
from ..tlog.proofjson import InclusionProof
from ..tlog.proofs import ProofError
from .chain import event_leaf_hash

if TYPE_CHECKING:
    from ..store import EventStore

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "BundleError",
    "BundleReport",
    "read_bundle",
    "verify_bundle",
    "write_bundle",
]

BUNDLE_FORMAT: Final = "eventvault-bundle"
BUNDLE_VERSION: Final = 1
#: Events a bundle may hold (its proofs are built and kept in memory).
MAX_BUNDLE_EVENTS: Final = 1_000_000


class BundleError(CorruptionError):
    """A bundle does not verify: its checkpoint's signature, or one event's proof.
    ``event_id`` / ``leaf_index`` name the first event that failed (None: the
    checkpoint itself)."""

    def __init__(
        self, message: str, *, event_id: str | None = None, leaf_index: int | None = None
    ) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.leaf_index = leaf_index


class _Entry(msgspec.Struct, forbid_unknown_fields=True):
    event: RecordedEvent
    proof: dict[str, Any]


class _Bundle(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    version: int
    checkpoint: str
    events: list[_Entry]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Bundle)


@dataclass(frozen=True, slots=True)
class BundleReport:
    """What :func:`write_bundle` wrote or :func:`verify_bundle` checked."""

    events: int
    tree_size: int
    root_hash: str  # hex
    origin: str
    signed_by: tuple[str, ...] = ()  # the verifier keys' names whose signatures held


#: Events whose proofs are read from the tree together.
_PROOF_CHUNK = 1000


def write_bundle(
    store: EventStore,
    query: Query,
    path: str | os.PathLike[str] | IO[bytes],
    *,
    checkpoint: str | None,
    progress: Callable[[int], None] | None = None,
) -> BundleReport:
    """Write the events ``query`` selects, their inclusion proofs and ``checkpoint``.

    ``checkpoint`` is a signed note of the store's tree (``store.log.checkpoint``)
    or None for the latest one the store keeps; either way it must cover every
    selected event (a ValidationError says to sign a fresh one otherwise). Proofs are
    against the checkpoint's size. A path is written as ``PATH.partial`` and renamed
    when complete."""
    note = checkpoint if checkpoint is not None else store.log.latest_checkpoint()
    if note is None:
        raise ValidationError(
            "the store keeps no signed checkpoint: sign a fresh one for the bundle "
            "(eventvault export --bundle FILE --key SIGNING_KEY)"
        )
    claimed = _unverified(note)
    size = claimed.size
    state = store.log.state()
    if size > state.size:
        raise ValidationError(
            f"the checkpoint is of a tree of {size} leaves, larger than this store's "
            f"({state.size}): it is not this store's checkpoint"
        )
    root = store.log.root(size)
    if root != claimed.root_hash:
        # (checked here so the bundle is refused now, not by whoever receives it)
        raise ValidationError(
            f"the checkpoint's root at tree size {size} is not this store's "
            f"({root.hex()}): it is another store's checkpoint, or this store was rewritten "
            "since it was signed (eventvault verify --checkpoint finds out)"
        )
    entries: list[bytes] = []
    chunk: list[RecordedEvent] = []

    def prove(events: list[RecordedEvent]) -> None:
        # One read of the tree per chunk of events (a round trip on a database).
        for ev, proof in zip(events, store.log.inclusion_proofs(events, size=size), strict=True):
            entries.append(
                b'{"event":' + _encoder.encode(ev) + b',"proof":'
                + _encoder.encode(proof.to_dict()) + b"}"
            )  # fmt: skip
        events.clear()

    for done, event in enumerate(store.iter(msgspec.structs.replace(query, limit=MAX_LIMIT)), 1):
        if done > MAX_BUNDLE_EVENTS:
            raise ValidationError(
                f"more than {MAX_BUNDLE_EVENTS:,} events selected: narrow the query"
            )
        index = event.position - 1 - state.base
        if index >= size:
            raise ValidationError(
                f"event {event.id} (position {event.position}) is newer than the "
                f"checkpoint (tree size {size}): sign a fresh checkpoint for the bundle "
                "(--key SIGNING_KEY)"
            )
        chunk.append(event)
        if len(chunk) >= _PROOF_CHUNK:
            prove(chunk)
        if progress is not None and done % 100 == 0:
            progress(done)
    prove(chunk)
    head = _encoder.encode({"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "checkpoint": note})
    body = head[:-1] + b',"events":[\n' + b",\n".join(entries) + b"\n]}\n"
    _write(path, body)
    origin = note.split("\n", 1)[0]
    return BundleReport(len(entries), size, root.hex(), origin)


def _unverified(note: str) -> Checkpoint:
    """The checkpoint in a signed note, its signature unchecked (the reader's check)."""
    text, sep, _ = note.rpartition("\n\n")
    if not sep:
        raise ValidationError("the checkpoint is not a signed note (no signature lines)")
    try:
        return Checkpoint.from_text(text + "\n")
    except ValidationError as exc:
        raise ValidationError(f"the checkpoint is malformed: {exc}") from None


def _write(path: str | os.PathLike[str] | IO[bytes], body: bytes) -> None:
    if not isinstance(path, str | os.PathLike):
        path.write(body)
        path.flush()
        return
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    try:
        with open(partial, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    except OSError as exc:
        raise StoreUnavailableError(f"writing the bundle {target}: {exc.strerror}") from exc


def read_bundle(
    source: str | os.PathLike[str] | bytes,
) -> tuple[str, list[tuple[RecordedEvent, InclusionProof]]]:
    """The checkpoint note and the (event, proof) pairs of a bundle, parsed and
    type-checked but **not verified** (that is :func:`verify_bundle`)."""
    if isinstance(source, bytes):
        raw = source
    else:
        try:
            raw = Path(source).read_bytes()
        except OSError as exc:
            raise StoreUnavailableError(f"reading the bundle {source}: {exc.strerror}") from exc
    try:
        doc = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"not an eventvault bundle: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ValidationError(f"not an eventvault bundle (not JSON): {exc}") from None
    if doc.format != BUNDLE_FORMAT:
        raise ValidationError(f"not an eventvault bundle: format {doc.format!r}")
    if doc.version != BUNDLE_VERSION:
        raise ValidationError(
            f"bundle version {doc.version} is not one this eventvault reads ({BUNDLE_VERSION}): "
            "upgrade eventvault"
        )
    pairs = []
    for i, entry in enumerate(doc.events):
        try:
            proof = InclusionProof.from_dict(entry.proof)
        except ValidationError as exc:
            raise ValidationError(f"bundle event {i} ({entry.event.id}): {exc}") from None
        pairs.append((entry.event, proof))
    return doc.checkpoint, pairs


def verify_bundle(
    source: str | os.PathLike[str] | bytes, verifiers: Iterable[NoteVerifier]
) -> BundleReport:
    """Check a bundle with no store: the checkpoint's signature by one of
    ``verifiers``, then every event's recomputed leaf hash and inclusion proof against
    the signed root. :class:`BundleError` names the first that fails; a file that is
    not a bundle is a ValidationError."""
    keys: Sequence[NoteVerifier] = list(verifiers)
    if not keys:
        raise ValidationError("verifying a bundle needs at least one verifier key")
    note, pairs = read_bundle(source)
    try:
        opened = open_note(note, keys)
        checkpoint = Checkpoint.from_text(opened.text)
    except ValidationError as exc:
        raise BundleError(f"the bundle's checkpoint is not a checkpoint: {exc}") from None
    except UnverifiedNoteError as exc:
        raise BundleError(f"the bundle's checkpoint is not signed by a key given: {exc}") from None
    except NoteError as exc:
        raise BundleError(f"the bundle's checkpoint does not verify: {exc}") from None
    seen: dict[int, str] = {}
    for event, proof in pairs:
        where = f"event {event.id} (position {event.position}, leaf {proof.leaf_index})"
        if proof.tree_size != checkpoint.size:
            raise BundleError(
                f"{where}: its proof is against a tree of {proof.tree_size} leaves, "
                f"the checkpoint's has {checkpoint.size}",
                event_id=str(event.id),
                leaf_index=proof.leaf_index,
            )
        if proof.leaf_index in seen:
            raise BundleError(
                f"{where}: its leaf is claimed by event {seen[proof.leaf_index]} too",
                event_id=str(event.id),
                leaf_index=proof.leaf_index,
            )
        seen[proof.leaf_index] = str(event.id)
        leaf = event_leaf_hash(event)
        try:
            if leaf != proof.leaf_hash:
                raise ProofError(
                    "its fields do not hash to the leaf its proof names: the event was changed"
                )
            proof.verify(root_hash=checkpoint.root_hash, leaf_hash=leaf)
        except ProofError as exc:
            raise BundleError(
                f"{where} is not proven by the signed checkpoint: {exc}",
                event_id=str(event.id),
                leaf_index=proof.leaf_index,
            ) from None
    signed_by = tuple(f"{s.name}+{s.key_id:08x}" for s in opened.signatures)
    return BundleReport(
        len(pairs), checkpoint.size, checkpoint.root_hash.hex(), checkpoint.origin, signed_by
    )
