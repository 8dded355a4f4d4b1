"""The event model: what producers write, what the store returns, how to ask for it.

The read-side structs are ``gc=False``: they hold only JSON values, strings, UUIDs and
datetimes, which cannot form reference cycles, so the cyclic collector need not
track the millions of them a replay creates.

All classes are frozen ``msgspec.Struct`` s: cheap to build, and the file backend
decodes its JSONL lines straight into :class:`RecordedEvent` without an
intermediate dict.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID, SafeUUID

import msgspec
from uuid_utils import uuid7 as _uuid7

from .errors import ValidationError
from .integrity.canonical import check_unicode, freeze_json_object

__all__ = [
    "ANY",
    "MAX_BATCH",
    "MAX_LIMIT",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "ExpectedRevision",
    "Import",
    "NewEvent",
    "Page",
    "Query",
    "RecordedEvent",
    "StoreStats",
    "VerifyResult",
    "new_event_id",
    "utcnow",
]

#: Event type names: a letter, digit or underscore first, then also ``. : - /``.
#: ``*`` is reserved for query patterns.
TYPE_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/\-]{0,199}")
MAX_NAME = 200
MAX_TEXT = 1000
#: Largest page a single read returns.
MAX_LIMIT = 10_000
#: Largest batch one append takes (larger ones: split them; each part is atomic).
MAX_BATCH = 100_000
#: Largest position (and revision) any backend can hold: a signed 64-bit integer.
MAX_POSITION: Final = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


_new_object = object.__new__
_set_attr = object.__setattr__
_SAFE_UNKNOWN = SafeUUID.unknown


class _Now(datetime):
    """The default ``occurred_at`` (marks a time the producer left to us)."""


def new_event_id() -> UUID:
    """A fresh UUIDv7: time-ordered, so ids of recent events sort together."""
    # uuid_utils makes the value in Rust; building the stdlib UUID around its int
    # directly skips UUID.__init__'s argument checks (a third of the cost per event).
    out = _new_object(UUID)
    _set_attr(out, "int", _uuid7().int)
    _set_attr(out, "is_safe", _SAFE_UNKNOWN)
    return out


class ExpectedRevision(enum.Enum):
    """Symbolic expectations for ``append(..., expected_revision=...)``."""

    ANY = "any"  #: no check (the default)
    NO_STREAM = "no_stream"  #: the stream must not exist yet
    STREAM_EXISTS = "stream_exists"  #: the stream must already have an event

    def __str__(self) -> str:
        return self.name


def parse_expected_revision(value: str) -> int | ExpectedRevision:
    """``"12"``, ``"any"``, ``"no_stream"`` or ``"stream_exists"`` (any case), as
    ``append`` takes it; :class:`ValidationError` otherwise."""
    named = {e.name.lower(): e for e in ExpectedRevision}
    if value.lower() in named:
        return named[value.lower()]
    # (isdigit() alone takes '²', which int() refuses; and positions are 64-bit)
    if value.isascii() and value.isdigit() and len(value) <= 19 and int(value) <= MAX_POSITION:
        return int(value)
    raise ValidationError(
        f"expected revision {value!r}: use a revision number, any, no_stream or stream_exists"
    )


ANY: Final = ExpectedRevision.ANY
NO_STREAM: Final = ExpectedRevision.NO_STREAM
STREAM_EXISTS: Final = ExpectedRevision.STREAM_EXISTS


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    try:
        return value if value.tzinfo is UTC else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise ValidationError(
            f"{name} {value.isoformat()} lies outside the times UTC can express (years 1 to 9999)"
        ) from None


def _check_text(value: object, name: str, limit: int, *, optional: bool) -> None:
    if value is None:
        if optional:
            return
        raise ValidationError(f"{name} is required")
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, got {type(value).__name__}")
    if not value or len(value) > limit:
        raise ValidationError(f"{name} must be 1–{limit} characters, got {len(value)}")
    if _CONTROL.search(value):
        raise ValidationError(f"{name} must not contain control characters: {value!r}")
    if not value.isascii():
        check_unicode(value, name)
        check_visible(value, name)
    elif value.isspace():
        raise ValidationError(f"{name} must not be whitespace only: {value!r}")


#: Unicode categories a name may not hold: controls (C0, DEL, C1), format characters
#: (bidi marks, overrides and isolates, zero-width space/joiners, word joiner, the
#: byte order mark, soft hyphen), line and paragraph separators, surrogates.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def check_visible(value: str, name: str) -> None:
    """The name rule beyond ASCII (docs: README, "Validation at the edge"): a name is
    visible text in NFC — no controls, format characters (bidi, zero-width),
    separators or noncharacters, not whitespace only, and not a decomposed form
    (``e`` + U+0301 is refused: send ``é``), so two names that look the same are the
    same name. Non-NFC text is refused, not rewritten: the store keeps exactly what
    the producer sent (and hashed)."""
    for c in value:
        code = ord(c)
        if code < 0x80:
            continue
        if (
            unicodedata.category(c) in _INVISIBLE
            or 0xFDD0 <= code <= 0xFDEF
            or code & 0xFFFE == 0xFFFE
        ):
            label = unicodedata.name(c, "a noncharacter")
            raise ValidationError(
                f"{name} {value!r} holds U+{code:04X} {label}: names are visible text "
                "(no control, bidi, zero-width, separator or noncharacter code points)"
            )
    if value.isspace():
        raise ValidationError(f"{name} must not be whitespace only: {value!r}")
    if not unicodedata.is_normalized("NFC", value):
        nfc = unicodedata.normalize("NFC", value)
        raise ValidationError(
            f"{name} {value!r} is not in Unicode NFC (the composed form); send {nfc!r}"
        )


#: Values that passed a check already (events repeat types, streams and actors, so
#: most checks become one set lookup). Bounded: cleared when full.
_GOOD_TYPES: set[str] = set()
_GOOD_NAMES: set[str] = set()
_GOOD_CAP = 8192


def _good(cache: set[str], value: str) -> None:
    if len(cache) >= _GOOD_CAP:
        cache.clear()
    cache.add(value)


def check_type_name(value: object) -> None:
    """Raise :class:`ValidationError` unless ``value`` is a valid event type name."""
    if not isinstance(value, str) or not TYPE_RE.fullmatch(value):
        raise ValidationError(
            f"event type {value!r} is invalid: use 1–{MAX_NAME} characters from "
            "letters, digits and _ . : - / (not starting with . : - /), e.g. 'task.completed'"
        )


def type_matches(patterns: Sequence[str], name: str) -> bool:
    """Whether type ``name`` matches any of ``patterns`` (exact, or ``prefix*``)."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


class NewEvent(msgspec.Struct, frozen=True, kw_only=True, dict=True, forbid_unknown_fields=True):
    """An event as a producer writes it.

    Decoded from JSON (a line of ``append --file``, an HTTP body), a field it does
    not have is an error, not ignored: ``"strem"`` must not land in ``default``.

    ``id`` and ``occurred_at`` are filled in when the object is built, so appending
    the same ``NewEvent`` again (a retry) is idempotent.
    """

    # ``data`` and ``metadata`` are the event's own deep copies, taken when it is
    # built: a caller who changes the dicts they passed cannot change what was
    # validated. (__dict__ holds ``canonical``: the payloads' canonical bytes from
    # validation, immutable, so appending hashes exactly what was checked and does
    # not walk the payloads a second time.)

    type: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    stream: str = "default"
    actor: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    source: str | None = None
    occurred_at: datetime = msgspec.field(default_factory=lambda: _Now.now(UTC))
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    id: UUID = msgspec.field(default_factory=new_event_id)

    def __post_init__(self) -> None:
        good_names = _GOOD_NAMES
        if type(self.type) is not str or self.type not in _GOOD_TYPES:
            check_type_name(self.type)
            _good(_GOOD_TYPES, self.type)
        for name in ("stream", "actor", "correlation_id", "causation_id"):
            value = getattr(self, name)
            if value is None and name != "stream":
                continue
            if type(value) is not str or value not in good_names:
                _check_text(value, name, MAX_NAME, optional=False)
                _good(good_names, value)
        _check_text(self.source, "source", MAX_TEXT, optional=True)
        set_ = msgspec.structs.force_setattr
        if not isinstance(self.id, UUID):
            try:
                set_(self, "id", UUID(str(self.id)))
            except ValueError:
                raise ValidationError(f"id {self.id!r} is not a UUID") from None
        if not isinstance(self.occurred_at, datetime):
            raise ValidationError("occurred_at must be a datetime")
        if type(self.occurred_at) is _Now:
            # Left to us: a retry of this event (same id) need not repeat the time.
            self.__dict__["occurred_defaulted"] = True
            d = self.occurred_at
            plain = datetime(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, UTC)
            set_(self, "occurred_at", plain)
        set_(self, "occurred_at", _utc(self.occurred_at, "occurred_at"))
        data, cdata = freeze_json_object(self.data, "data")
        metadata, cmeta = freeze_json_object(self.metadata, "metadata")
        set_(self, "data", data)
        set_(self, "metadata", metadata)
        self.__dict__["canonical"] = (msgspec.Raw(cdata), msgspec.Raw(cmeta))

    def __copy__(self) -> NewEvent:
        # msgspec's copy of a ``dict=True`` struct drops __dict__ (the canonical form
        # and the defaulted-time mark); both are immutable, so share them.
        dup = msgspec.structs.replace(self)
        dup.__dict__.update(self.__dict__)
        return dup


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A stored event: the producer's fields plus what the store assigned."""

    position: int
    """Global order in this store: strictly increasing, never reused (not always contiguous)."""
    stream_revision: int
    """0-based index of the event inside its stream."""
    recorded_at: datetime
    """The store's clock at append; non-decreasing in position order."""
    id: UUID
    type: str
    stream: str
    actor: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    source: str | None = None
    occurred_at: datetime
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    hash: str
    """Hex sha256 chaining this event to the one before it."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (UUIDs and datetimes as strings)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    def to_new_event(self) -> NewEvent:
        """The producer-side view of this event (same id), e.g. for copying."""
        return NewEvent(
            type=self.type,
            data=self.data,
            stream=self.stream,
            actor=self.actor,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            source=self.source,
            occurred_at=self.occurred_at,
            metadata=self.metadata,
            id=self.id,
        )


#: The fields of :class:`Query` that hold names (OR within one, AND across them).
NAME_FILTERS: Final = ("types", "actors", "correlation_ids", "streams", "causation_ids")


def _names(value: object, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, list | tuple | set | frozenset):
        raise ValidationError(f"query {field} must be a list of strings")
    out = tuple(dict.fromkeys(value))  # de-duplicated, first-seen order
    for item in out:
        if not isinstance(item, str) or not item:
            raise ValidationError(f"query {field} must hold non-empty strings, got {item!r}")
    return out


class Query(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What to read. Fields combine with AND; values within one field with OR.

    The five name filters (``types``, ``actors``, ``correlation_ids``, ``streams``,
    ``causation_ids``) accept any sequence of strings and are stored as tuples
    (de-duplicated).

    * ``types``: exact names or patterns with a trailing ``*`` (``task.*``; ``*`` = all)
    * ``since`` (inclusive) / ``until`` (exclusive): recorded time, UTC
    * ``after`` / ``before``: positions, both exclusive
    * ``limit``: page size, 1–10,000
    * ``reverse``: newest first
    """

    types: Sequence[str] = ()
    actors: Sequence[str] = ()
    correlation_ids: Sequence[str] = ()
    streams: Sequence[str] = ()
    causation_ids: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    after: int | None = None
    before: int | None = None
    limit: int = 100
    reverse: bool = False
    resolved_at: datetime | None = None
    """Not a filter: the instant relative times (``--since 2h``) were resolved against.
    The CLI and HTTP layers set it and a cursor carries it, so repeating the same
    relative filter with the cursor resolves it to the same bounds (see
    :func:`eventvault.cursor.cursor_resolved_at`)."""

    def __post_init__(self) -> None:
        set_ = msgspec.structs.force_setattr
        for field in NAME_FILTERS:
            set_(self, field, _names(getattr(self, field), field))
        for pattern in self.types:
            body = pattern[:-1] if pattern.endswith("*") else pattern
            if "*" in body:
                raise ValidationError(
                    f"type pattern {pattern!r}: '*' is only allowed at the end, e.g. 'task.*'"
                )
        for field in ("since", "until", "resolved_at"):
            value = getattr(self, field)
            if value is not None:
                if not isinstance(value, datetime):
                    raise ValidationError(f"query {field} must be a datetime")
                set_(self, field, _utc(value, field))
        for field in ("after", "before"):
            value = getattr(self, field)
            if value is not None and (type(value) is not int or not 0 <= value <= MAX_POSITION):
                raise ValidationError(
                    f"query {field} must be a position from 0 to 2**63-1, got {value!r}"
                )
        if type(self.limit) is not int or not 1 <= self.limit <= MAX_LIMIT:
            raise ValidationError(f"query limit must be 1–{MAX_LIMIT}, got {self.limit!r}")

    # -- the reference semantics every backend implements -------------------------

    def type_matches(self, name: str) -> bool:
        return not self.types or type_matches(self.types, name)

    def matches(self, event: RecordedEvent) -> bool:
        """True if ``event`` passes every filter (positions and times included)."""
        if self.after is not None and event.position <= self.after:
            return False
        if self.before is not None and event.position >= self.before:
            return False
        if self.since is not None and event.recorded_at < self.since:
            return False
        if self.until is not None and event.recorded_at >= self.until:
            return False
        if self.streams and event.stream not in self.streams:
            return False
        if self.actors and event.actor not in self.actors:
            return False
        if self.correlation_ids and event.correlation_id not in self.correlation_ids:
            return False
        if self.causation_ids and event.causation_id not in self.causation_ids:
            return False
        return self.type_matches(event.type)

    def filter_key(self) -> bytes:
        """The filters alone (no positions, limit or ``resolved_at``): what a cursor is
        tied to."""
        return msgspec.json.encode(
            [
                sorted(self.types),
                sorted(self.actors),
                sorted(self.correlation_ids),
                sorted(self.streams),
                *([sorted(self.causation_ids)] if self.causation_ids else []),
                self.since,
                self.until,
                self.reverse,
            ]
        )


class Page(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One page of a read: the events, and a cursor for the next page (None at the end)."""

    events: list[RecordedEvent]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[RecordedEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


class AppendResult(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What an append stored (or, for ids already stored, what was there)."""

    events: list[RecordedEvent]
    written: int | None = None
    """How many of ``events`` this append wrote; the others were stored already
    (idempotent retries). :meth:`EventStore.append` always sets it."""

    @property
    def retried(self) -> int:
        """How many of ``events`` were stored already (re-sent: nothing written)."""
        return len(self.events) - (len(self.events) if self.written is None else self.written)

    @property
    def first_position(self) -> int:
        return min(e.position for e in self.events)

    @property
    def last_position(self) -> int:
        return max(e.position for e in self.events)

    @property
    def last_revision(self) -> int:
        """The stream revision of the batch's last event (for the next expected_revision)."""
        return self.events[-1].stream_revision


class StoreStats(msgspec.Struct, frozen=True, kw_only=True):
    """A summary of a store."""

    backend: str
    events: int
    head_position: int
    first_position: int | None
    streams: int | None
    oldest_recorded_at: datetime | None
    newest_recorded_at: datetime | None
    size_bytes: int | None
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of walking the hash chain."""

    ok: bool
    checked: int
    head_hash: str | None
    """The chain head's hash — None when the chain is broken (no head was verified)."""
    first_bad_position: int | None = None
    reason: str | None = None
    checkpoint_position: int | None = None
    """The last position retention removed before the first stored event, if any."""
    bridged: int = 0
    """Holes retention left in the chain, each accounted for by a receipt."""
    receipts: int = 0
    """Retention receipts found (``eventvault.retention.applied``)."""
    last_good_hash: str | None = None
    """The hash of the last event that verified (the head's when ``ok``; just before
    ``first_bad_position`` when broken)."""
    tree_size: int | None = None
    """Leaves of the store's Merkle tree that were regenerated and compared (None:
    the backend keeps no tree)."""
    tree_root: str | None = None
    """The verified root of the Merkle tree (hex), when ``ok``."""
    checkpoints_checked: int = 0
    """Signed checkpoints the tree was found consistent with."""


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
