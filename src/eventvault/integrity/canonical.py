"""JSON payload checks and the canonical byte form that the hash chain covers.

The canonical form must be recomputable from what *any* backend returns later.
PostgreSQL JSONB is the hardest of them: it reorders object keys, and it stores
numbers as ``numeric`` — ``1e300`` comes back as 301 digits (an ``int`` in
Python), ``-0.0`` as ``0.0``, ``1.5e-7`` as ``0.00000015``. So the canonical form

* sorts object keys (by code point), and
* writes every number as the *normalised decimal* of the text that is stored:
  integers and integral floats below 2**53 as plain digits, everything else as
  ``Decimal(repr(x)).normalize()``. Floats are stored as their shortest
  round-trip text, which is exactly the decimal value JSONB keeps, so the
  normalised decimal of the stored value and of the value read back are equal.

Strings containing NUL are rejected: JSONB cannot store them, and every backend
must accept the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from ..errors import ValidationError

__all__ = [
    "CANONICAL_ENCODER",
    "CANONICAL_VERSION",
    "MAX_JSON_DEPTH",
    "canonical_event_bytes",
    "canonical_event_bytes_checked",
    "check_json_object",
    "check_unicode",
    "encodes_as_utf8",
    "format_time",
    "freeze_json_object",
    "payload_bytes",
    "same_payload",
]

#: Bumped if the canonical layout ever changes; it is the first element hashed.
CANONICAL_VERSION = 1
#: Deeper payloads are rejected (each backend and client library has a limit).
MAX_JSON_DEPTH = 64

_EXACT = 2**53  # integers below this are exact in a float, so digits are canonical
#: Python refuses to print (so to encode as JSON) integers over 4,300 digits; a value
#: of at most this many bits has at most 4,000.
_MAX_INT_DIGITS = 4000
_MAX_INT_BITS = 13_287
_encoder = msgspec.json.Encoder(order="sorted")
#: The encoder of the canonical form (object keys sorted).
CANONICAL_ENCODER = _encoder


def _number_text(value: int | float) -> msgspec.Raw:
    if isinstance(value, float):
        if value == 0.0:
            return msgspec.Raw(b"0")  # JSONB has no negative zero
        dec = Decimal(repr(value))
    else:
        dec = Decimal(value)
    return msgspec.Raw(format(dec.normalize(), "").encode())


def check_unicode(value: str, path: str) -> None:
    """Refuse unpaired surrogates: no UTF-8 (so no JSON file or database) can hold them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{path}: holds an unpaired surrogate ({value[exc.start]!r} at {exc.start}); "
            "text must be valid Unicode"
        ) from None


def _check(value: Any, path: str, depth: int) -> Any:
    """Validate one JSON value; return it, or a canonical copy where numbers change."""
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            raise ValidationError(f"{path}: strings must not contain NUL (\\u0000)")
        if not value.isascii():
            check_unicode(value, path)
        return value
    if kind is int:
        if -_EXACT < value < _EXACT:
            return value
        if value.bit_length() > _MAX_INT_BITS:
            raise ValidationError(
                f"{path}: an integer of more than {_MAX_INT_DIGITS:,} digits (JSON readers, "
                "Python's included, refuse such numbers)"
            )
        return _number_text(value)
    if kind is float:
        if not math.isfinite(value):
            raise ValidationError(f"{path}: {value!r} is not valid JSON (NaN/Infinity)")
        if value.is_integer() and -_EXACT < value < _EXACT:
            return int(value)
        return _number_text(value)
    if value is None or kind is bool:
        return value
    if depth >= MAX_JSON_DEPTH:
        raise ValidationError(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels")
    if kind is dict:
        out: dict[str, Any] | None = None
        for key, item in value.items():
            if type(key) is not str:
                raise ValidationError(
                    f"{path}: object keys must be strings, got {type(key).__name__} {key!r}"
                )
            if "\x00" in key:
                raise ValidationError(f"{path}: object keys must not contain NUL (\\u0000)")
            if not key.isascii():
                check_unicode(key, f"{path} (a key)")
            canon = _check(item, f"{path}.{key}", depth + 1)
            if canon is not item:
                if out is None:
                    out = dict(value)
                out[key] = canon
        return value if out is None else out
    if kind is list or kind is tuple:
        items: list[Any] | None = None
        for i, item in enumerate(value):
            canon = _check(item, f"{path}[{i}]", depth + 1)
            if canon is not item or kind is tuple:
                if items is None:
                    items = list(value)
                items[i] = canon
        return value if items is None else items
    raise ValidationError(f"{path}: {kind.__name__} is not a JSON type")


def check_json_object(value: Any, name: str) -> Any:
    """Check that ``value`` is a JSON object fit for every backend.

    Returns the canonical form of it (the same object when nothing needs
    normalising, which is the common case and costs no copy).
    """
    if not isinstance(value, Mapping):
        raise ValidationError(f"{name} must be a JSON object, got {type(value).__name__}")
    if type(value) is not dict:
        value = dict(value)
    return _canonical(value, name)


class _Refused(Exception):
    """:func:`_canon` met a value :func:`_check` refuses (which
    then runs to name the path: building paths costs more than the walk itself)."""


def _canon(value: Any, depth: int) -> Any:
    """:func:`_check` without paths: the canonical form of a JSON value (the same
    object where nothing needs normalising); :class:`_Refused` at a bad value."""
    kind = type(value)
    if kind is str:
        if "\x00" in value or (not value.isascii() and not encodes_as_utf8(value)):
            raise _Refused
        return value
    if kind is int:
        if -_EXACT < value < _EXACT:
            return value
        if value.bit_length() > _MAX_INT_BITS:
            raise _Refused  # (_check names it: too many digits for any JSON reader)
        return _number_text(value)
    if kind is float:
        if not math.isfinite(value):
            raise _Refused
        if value.is_integer() and -_EXACT < value < _EXACT:
            return int(value)
        return _number_text(value)
    if value is None or kind is bool:
        return value
    if depth >= MAX_JSON_DEPTH:
        raise _Refused
    if kind is dict:
        out: dict[str, Any] | None = None
        for key, item in value.items():
            if (
                type(key) is not str
                or "\x00" in key
                or (not key.isascii() and not encodes_as_utf8(key))
            ):
                raise _Refused
            canon = _canon(item, depth + 1)
            if canon is not item:
                if out is None:
                    out = dict(value)
                out[key] = canon
        return value if out is None else out
    if kind is list or kind is tuple:
        items: list[Any] | None = None
        for i, item in enumerate(value):
            canon = _canon(item, depth + 1)
            if canon is not item or kind is tuple:
                if items is None:
                    items = list(value)
                items[i] = canon
        return value if items is None else items
    raise _Refused


def _canonical(value: Any, name: str) -> Any:
    """The canonical form of ``value`` (a JSON object's payload), or the
    :class:`ValidationError` that names the first bad path."""
    try:
        return _canon(value, 0)
    except _Refused:
        _check(value, name, 0)
        raise ValidationError(f"{name} is not a JSON object fit for every backend") from None


def encodes_as_utf8(value: str) -> bool:
    """Whether ``value`` can be written as UTF-8 (no unpaired surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_plain_encode = msgspec.json.Encoder().encode
_plain_decode = msgspec.json.Decoder().decode


def freeze_json_object(value: Any, name: str) -> tuple[dict[str, Any], bytes]:
    """Validate ``value`` as :func:`check_json_object` does and take it over: return
    a private deep copy of it (what the store will hold) and its canonical bytes
    (what the chain will cover). Nothing later done to ``value`` reaches either —
    the bytes cannot change at all.

    The copy is a JSON round trip of the validated value: exact for every value
    validation lets through (floats are written as their shortest round-trip text,
    integers of any size as digits), a tuple becomes a list, key order is kept —
    and it is several times faster than walking the value in Python.
    """
    if not isinstance(value, Mapping):
        raise ValidationError(f"{name} must be a JSON object, got {type(value).__name__}")
    if type(value) is not dict:
        value = dict(value)
    canon = _canonical(value, name)
    frozen = _encoder.encode(canon)
    plain: dict[str, Any] = _plain_decode(_plain_encode(value))
    return plain, frozen


def payload_bytes(value: Any, name: str = "data") -> bytes:
    """The canonical bytes of one payload (``data`` or ``metadata``): what the chain
    covers of it, whichever backend returned it."""
    return _encoder.encode(_canonical(value, name))


def same_payload(a: Any, b: Any) -> bool:
    """Whether two payloads are the same to the chain: equal canonical bytes. Python
    equality is wrong across backends — PostgreSQL JSONB returns ``1e23`` as the
    integer ``100000000000000000000000``, which is not ``== 1e23`` in Python but is
    the same JSON number, written the same way in the canonical form; and ``True ==
    1`` in Python, but not in JSON.

    Fast path: the same plain JSON text (one C call each) is the same canonical text.
    """
    return _plain_encode(a) == _plain_encode(b) or payload_bytes(a) == payload_bytes(b)


def format_time(value: datetime) -> str:
    """The canonical text of a UTC datetime, as the chain hashes it: RFC 3339 with
    ``Z``, and six fractional digits unless the microseconds are zero
    (``2026-01-01T00:00:00Z``, ``2026-01-01T00:00:00.120000Z``)."""
    return _encoder.encode(value)[1:-1].decode()


def canonical_event_bytes_checked(
    id: UUID,
    type: str,
    stream: str,
    stream_revision: int,
    actor: str | None,
    correlation_id: str | None,
    causation_id: str | None,
    source: str | None,
    occurred_at: datetime,
    recorded_at: datetime,
    data: Any,
    metadata: Any,
) -> bytes:
    """:func:`canonical_event_bytes` for payloads already in canonical form, as
    :func:`check_json_object` returned them: the append hot path, which has them
    from validating the event. Times must be UTC (msgspec writes them as
    :func:`format_time` says)."""
    return _encoder.encode(
        [
            CANONICAL_VERSION,
            id,  # msgspec writes a UUID as its canonical 36-character text
            type,
            stream,
            stream_revision,
            actor,
            correlation_id,
            causation_id,
            source,
            occurred_at,
            recorded_at,
            data,
            metadata,
        ]
    )


def canonical_event_bytes(
    *,
    id: UUID,
    type: str,
    stream: str,
    stream_revision: int,
    actor: str | None,
    correlation_id: str | None,
    causation_id: str | None,
    source: str | None,
    occurred_at: datetime,
    recorded_at: datetime,
    data: Mapping[str, Any],
    metadata: Mapping[str, Any],
) -> bytes:
    """The bytes the chain hashes for one event.

    Position is deliberately *not* covered: a store copied to a backend that
    numbers differently (EventStoreDB commit positions) keeps the same chain.
    """
    return canonical_event_bytes_checked(
        id,
        type,
        stream,
        stream_revision,
        actor,
        correlation_id,
        causation_id,
        source,
        occurred_at,
        recorded_at,
        _canonical(data, "data"),
        _canonical(metadata, "metadata"),
    )
