"""Opaque pagination cursors.

A cursor records where the previous page stopped (a position), the direction
(used with the other direction, it turns round at that position),
which store it came from and a digest of the query's filters, so a cursor used
with another query or another store fails loudly instead of returning a wrong
page. Positions only grow, so a cursor stays valid under concurrent appends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import msgspec

from .errors import ValidationError
from .model import Query

__all__ = ["decode_cursor", "encode_cursor"]


class _Cursor(msgspec.Struct, array_like=True):
    version: int
    position: int
    reverse: bool
    store: str
    filters: str


def _digest(query: Query) -> str:
    return hashlib.sha256(query.filter_key()).hexdigest()[:16]


def encode_cursor(query: Query, position: int, store_id: str) -> str:
    raw = msgspec.json.encode(_Cursor(1, position, query.reverse, store_id[:12], _digest(query)))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, query: Query, store_id: str) -> int:
    """The position the cursor continues from (exclusive), after checking it fits."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        cur = msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, UnicodeError, ValueError, msgspec.DecodeError):
        raise ValidationError("cursor is malformed (truncated or not from eventvault)") from None
    if cur.version != 1 or cur.position < 0:
        raise ValidationError("cursor is malformed (unknown version)")
    if cur.store != store_id[:12]:
        raise ValidationError("cursor comes from another store")
    # (The direction may change: a forward cursor with a reverse query goes back from
    # where its page stopped, and the other way round.)
    if cur.filters != _digest(msgspec.structs.replace(query, reverse=cur.reverse)):
        raise ValidationError("cursor belongs to a different query (the filters changed)")
    return cur.position
