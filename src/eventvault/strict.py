"""Strict at the edge: one message for a name nobody knows.

Every place that takes names from outside — the configuration's keys, an event's
fields (JSON lines, HTTP bodies), an HTTP request's query parameters — refuses an
unknown one with the same sentence: the unknown name, the closest known one
("did you mean"), and every known name. A typo must never be ignored: an ignored
``?typ=`` filter answers with every event.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable

import msgspec

from .errors import ValidationError

__all__ = ["check_names", "explain_struct_error", "struct_field_names", "unknown_name"]

_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`(?: - at `([^`]*)`)?")

#: Fields a stored event has and a new one cannot: the store assigns them.
_ASSIGNED = ("position", "stream_revision", "recorded_at", "hash")


def unknown_name(what: str, name: str, known: Iterable[str]) -> str:
    """``unknown <what> 'strem'; did you mean 'stream'? (known <what>s: a, b, c)``."""
    names = list(known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}{hint} (known {what}s: {', '.join(names) or 'none'})"


def check_names(what: str, given: Iterable[str], known: Collection[str]) -> None:
    """Raise :class:`ValidationError` for the first name of ``given`` not in ``known``."""
    for name in given:
        if name not in known:
            raise ValidationError(unknown_name(what, name, known))


def struct_field_names(cls: type[msgspec.Struct]) -> list[str]:
    """The names a struct takes from JSON, in declaration order."""
    return [f.encode_name for f in msgspec.structs.fields(cls)]


def explain_struct_error(
    exc: msgspec.ValidationError, cls: type[msgspec.Struct], what: str = "field"
) -> str:
    """msgspec's message, or — for an unknown field — ours, with the hint and the
    known fields (and where in the document it was, e.g. ``$[3]``)."""
    m = _UNKNOWN.search(str(exc))
    if m is None:
        return str(exc)
    name, where = m.group(1), m.group(2)
    message = unknown_name(what, name, struct_field_names(cls))
    if name in _ASSIGNED and what == "field":
        message += (
            f"; {', '.join(_ASSIGNED)} are assigned by the store (this looks like a stored "
            "event, e.g. a line of `query --format jsonl`)"
        )
    return f"{message} - at `{where}`" if where else message
