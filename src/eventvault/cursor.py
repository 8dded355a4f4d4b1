"""Opaque pagination cursors.

A cursor records where the previous page stopped (a position), the direction
(used with the other direction, it turns round at that position),
which store it came from and a digest of the query's filters, so a cursor used
with another query or another store fails loudly instead of returning a wrong
page. Positions only grow, so a cursor stays valid under concurrent appends.

Relative times (``--since 2h``) resolve to a new instant on every call, which
would make every next page "another query". So a cursor also carries the instant
its query resolved them against (:attr:`Query.resolved_at`); the CLI and HTTP
layers resolve a repeated relative filter against that instant again, getting
the very same bounds. A changed filter (``3h``) still resolves to other bounds,
and is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime

import msgspec

from .errors import ValidationError
from .model import Query
from .timeutil import from_us, to_us

__all__ = ["cursor_resolved_at", "decode_cursor", "encode_cursor"]


class _Cursor(msgspec.Struct, array_like=True):
    version: int
    position: int
    reverse: bool
    store: str
    filters: str
    # When the query's relative times were resolved (µs since the epoch), if set.
    # (Appended with a default: cursors made before it still decode.)
    resolved_at: int | None = None


def _digest(query: Query) -> str:
    return hashlib.sha256(query.filter_key()).hexdigest()[:16]


def encode_cursor(query: Query, position: int, store_id: str) -> str:
    resolved = None if query.resolved_at is None else to_us(query.resolved_at)
    cur = _Cursor(1, position, query.reverse, store_id[:12], _digest(query), resolved)
    raw = msgspec.json.encode(cur)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(cursor: str) -> _Cursor:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        cur = msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, UnicodeError, ValueError, msgspec.DecodeError):
        raise ValidationError("cursor is malformed (truncated or not from eventvault)") from None
    if cur.version != 1 or cur.position < 0:
        raise ValidationError("cursor is malformed (unknown version)")
    return cur


def cursor_resolved_at(cursor: str) -> datetime | None:
    """The instant the cursor's query resolved its relative times against, if any.

    Resolve the same relative filter (``since=2h``) against it to continue the query
    the cursor came from: ``2h`` then names the same bound on every page. (A forged
    value only moves bounds the caller could have given as absolute times.)"""
    value = _decode(cursor).resolved_at
    if value is None:
        return None
    try:
        return from_us(value)
    except (OverflowError, ValueError):
        raise ValidationError("cursor is malformed (its time is out of range)") from None


def decode_cursor(cursor: str, query: Query, store_id: str) -> int:
    """The position the cursor continues from (exclusive), after checking it fits."""
    cur = _decode(cursor)
    if cur.store != store_id[:12]:
        raise ValidationError("cursor comes from another store")
    # (The direction may change: a forward cursor with a reverse query goes back from
    # where its page stopped, and the other way round.)
    if cur.filters != _digest(msgspec.structs.replace(query, reverse=cur.reverse)):
        raise ValidationError("cursor belongs to a different query (the filters changed)")
    return cur.position
